package queue

import (
	"bytes"
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	persistent, err := (&wire.Properties{DeliveryMode: 2, ContentType: "text/plain", Headers: wire.Table{"h": "v"}}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	transient, err := (&wire.Properties{DeliveryMode: 1}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		exchange, routingKey string
		props                wire.RawProperties
		body                 []byte
		persistent           bool
	}{
		{"empty everything", "", "", nil, nil, false},
		{"default exchange", "", "queue", transient, []byte("hello"), false},
		{"persistent with headers", "amq.topic", "a.b.c", persistent, []byte("payload"), true},
		{"longest names", strings.Repeat("x", 255), strings.Repeat("k", 255), transient, bytes.Repeat([]byte{0}, 1000), false},
		{"binary body", "x", "k", persistent, []byte{0, 1, 2, 0xff, 0xce}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, off := AllocMessage(tt.exchange, tt.routingKey, len(tt.props), len(tt.body))
			if want := 1 + 1 + len(tt.exchange) + 1 + len(tt.routingKey) + 4; off != want {
				t.Fatalf("properties offset %d, want %d", off, want)
			}
			if len(b) != off+len(tt.props)+len(tt.body) {
				t.Fatalf("buffer of %d bytes, want %d", len(b), off+len(tt.props)+len(tt.body))
			}
			copy(b[off:], tt.props)
			copy(b[off+len(tt.props):], tt.body)
			for _, hint := range []struct{ ex, rk string }{{tt.exchange, tt.routingKey}, {"other", "other"}} {
				m, err := DecodeMessage(b, hint.ex, hint.rk)
				if err != nil {
					t.Fatalf("DecodeMessage: %v", err)
				}
				if m.Exchange != tt.exchange || m.RoutingKey != tt.routingKey {
					t.Fatalf("exchange %q key %q, want %q %q", m.Exchange, m.RoutingKey, tt.exchange, tt.routingKey)
				}
				if !bytes.Equal(m.Props, tt.props) || !bytes.Equal(m.Body, tt.body) {
					t.Fatalf("props %x body %x, want %x %x", m.Props, m.Body, tt.props, tt.body)
				}
				if m.Persistent() != tt.persistent || m.Size() != len(tt.body) || m.ID != 0 {
					t.Fatalf("persistent %v size %d id %d", m.Persistent(), m.Size(), m.ID)
				}
				if &m.Data()[0] != &b[0] || len(m.Data()) != len(b) {
					t.Fatal("the message does not keep the buffer it was decoded from")
				}
				// Props are capped: appending to them must not overwrite the body.
				if cap(m.Props) != len(m.Props) {
					t.Fatalf("props capacity %d beyond their length %d", cap(m.Props), len(m.Props))
				}
			}
			built := BuildMessage(tt.exchange, tt.routingKey, tt.props, tt.body)
			if !bytes.Equal(built.Data(), b) {
				t.Fatalf("BuildMessage encoded %x, want %x", built.Data(), b)
			}
		})
	}
}

func TestDecodeMessageReusesHintStrings(t *testing.T) { // not parallel: AllocsPerRun
	m := BuildMessage("exchange", "key", nil, []byte("b"))
	ex, rk := "exchange", "key"
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeMessage(m.Data(), ex, rk); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 { // the *Message itself
		t.Fatalf("DecodeMessage with matching hints: %.0f allocs, want 1", allocs)
	}
}

func TestDecodeMessageRejectsMalformed(t *testing.T) {
	t.Parallel()
	good := BuildMessage("ex", "rk", wire.RawProperties{0, 0}, []byte("body")).Data()
	// good: 01 02 'e' 'x' 02 'r' 'k' 00 00 00 02 00 00 'b' 'o' 'd' 'y'
	with := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"shorter than any message", good[:6]},
		{"unknown format", with(0, 3)},
		{"format zero", with(0, 0)},
		{"exchange length past the end", with(1, 200)},
		{"routing key length past the end", with(4, 200)},
		{"properties length past the end", with(10, 7)},
		{"properties length huge", with(7, 0xff)},
		{"cut inside the routing key", good[:7]},
		{"cut inside the properties length", good[:9]},
		{"cut inside the properties", good[:12]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if m, err := DecodeMessage(tt.data, "", ""); err == nil {
				t.Fatalf("DecodeMessage(%x) = %+v, want an error", tt.data, m)
			}
		})
	}
	// A message cut inside the body is not detectable (the body runs to the
	// end); it decodes with a shorter body.
	if m, err := DecodeMessage(good[:len(good)-1], "", ""); err != nil || string(m.Body) != "bod" {
		t.Fatalf("DecodeMessage(cut body) = %v, %v", m, err)
	}
}

// FuzzDecodeMessage checks that DecodeMessage never panics and that what it
// accepts re-encodes to the same bytes, the format byte aside, which
// DeadLettered reports.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(BuildMessage("ex", "rk", wire.RawProperties{0, 0}, []byte("body")).Data())
	f.Add(BuildMessage("", "", nil, nil).Data())
	p, _ := (&wire.Properties{DeliveryMode: 2, Headers: wire.Table{"a": int32(1)}}).Append(nil)
	f.Add(BuildMessage("amq.direct", "key", p, []byte{1, 2, 3}).Data())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data, "ex", "rk")
		if err != nil {
			return
		}
		again := BuildMessage(m.Exchange, m.RoutingKey, m.Props, m.Body)
		if !bytes.Equal(again.Data()[1:], data[1:]) {
			t.Fatalf("re-encoded %x, decoded from %x", again.Data(), data)
		}
		if m.DeadLettered() != (data[0] == formatDeadLettered) {
			t.Fatalf("DeadLettered() = %v for format byte %d", m.DeadLettered(), data[0])
		}
		_ = m.Persistent() // reading delivery-mode of arbitrary props must not panic
	})
}

// A dead-lettered copy says so, also once stored and read back, and what
// is made from it keeps the mark; a published message does not have it.
func TestDeadLetteredMark(t *testing.T) {
	t.Parallel()
	props, err := (&wire.Properties{}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := BuildMessage("ex", "rk", props, []byte("body"))
	keep := func(*wire.Properties) {}
	dm, err := RewriteDeadLettered(m, "dlx", "rk", keep)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Rewrite(dm, "ex", "rk", keep)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := DecodeMessage(append([]byte(nil), again.Data()...), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if m.DeadLettered() || !dm.DeadLettered() || !again.DeadLettered() || !stored.DeadLettered() {
		t.Fatalf("marks: published %v, dead-lettered %v, rewritten %v, read back %v",
			m.DeadLettered(), dm.DeadLettered(), again.DeadLettered(), stored.DeadLettered())
	}
	if string(stored.Body) != "body" || stored.Exchange != "ex" {
		t.Fatalf("read back %q via %q", stored.Body, stored.Exchange)
	}
}
