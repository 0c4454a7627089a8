package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
	"time"
)

func sampleTable() Table {
	return Table{
		"bool":    true,
		"int8":    int8(-8),
		"uint8":   uint8(8),
		"int16":   int16(-16),
		"uint16":  uint16(16),
		"int32":   int32(-32),
		"uint32":  uint32(32),
		"int64":   int64(-64),
		"float32": float32(3.5),
		"float64": 6.25,
		"decimal": Decimal{Scale: 2, Value: 12345},
		"string":  "hello",
		"bytes":   []byte{0, 1, 2},
		"array":   []any{"a", int32(1), []any{}, Table{"x": nil}},
		"time":    time.Unix(1700000000, 0).UTC(),
		"table":   Table{"nested": Table{"deep": "yes"}},
		"void":    nil,
	}
}

func TestTableRoundTrip(t *testing.T) {
	t.Parallel()
	in := sampleTable()
	b, err := AppendTable(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeTable(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %#v\nout %#v", in, out)
	}
	if err := validateTable(b[4:], 0); err != nil {
		t.Fatalf("validateTable rejects a table AppendTable wrote: %v", err)
	}
}

func TestTableErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
	}{
		{"key runs past end", []byte{5, 'a'}},
		{"no value", []byte{1, 'a'}},
		{"unknown type", []byte{1, 'a', 'Z'}},
		{"short int32", []byte{1, 'a', 'I', 0, 0}},
		{"longstr longer than table", []byte{1, 'a', 'S', 0, 0, 0, 9, 'x'}},
		{"huge longstr length", []byte{1, 'a', 'S', 0xff, 0xff, 0xff, 0xff}},
		{"array runs past end", []byte{1, 'a', 'A', 0, 0, 0, 2, 'I'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeTable(tt.in)
			var we *Error
			if !errors.As(err, &we) || we.Code != SyntaxError {
				t.Fatalf("DecodeTable(%v) = %v, want a SYNTAX_ERROR", tt.in, err)
			}
			if err := validateTable(tt.in, 0); err == nil {
				t.Fatalf("validateTable(%v) accepted malformed input", tt.in)
			}
		})
	}
}

func TestTableDepthLimit(t *testing.T) {
	t.Parallel()
	v := Table{}
	for range maxTableDepth + 2 {
		v = Table{"t": v}
	}
	b, err := AppendTable(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeTable(b[4:]); err == nil {
		t.Fatal("a table nested past the limit decoded")
	}
	if err := validateTable(b[4:], 0); err == nil {
		t.Fatal("a table nested past the limit validated")
	}
}

func TestAppendTableRejects(t *testing.T) {
	t.Parallel()
	long := string(bytes.Repeat([]byte("k"), 256))
	for name, tb := range map[string]Table{
		"long key":    {long: true},
		"bad type":    {"k": struct{}{}},
		"nested type": {"k": []any{complex(1, 2)}},
	} {
		if _, err := AppendTable(nil, tb); err == nil {
			t.Errorf("%s: AppendTable accepted it", name)
		}
	}
}

func TestMethodRoundTrip(t *testing.T) {
	t.Parallel()
	methods := []Method{
		&ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: Table{"product": "Warren"}, Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"},
		&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConnectionOpen{VirtualHost: "/"},
		&ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED - bye", ClassID: 60, MethodID: 40},
		&ConnectionBlocked{Reason: "low on memory"},
		&ConnectionUpdateSecret{NewSecret: "token", Reason: "refresh"},
		&ExchangeDeclare{Exchange: "x", Type: "topic", Durable: true, AutoDelete: true, Internal: true, NoWait: true, Arguments: Table{"alternate-exchange": "ae"}},
		&ExchangeBind{Destination: "d", Source: "s", RoutingKey: "k"},
		&QueueDeclare{Queue: "q", Passive: true, Exclusive: true, Arguments: Table{"x-max-length": int32(5)}},
		&QueueDeclareOk{Queue: "q", MessageCount: 7, ConsumerCount: 2},
		&QueueDelete{Queue: "q", IfUnused: true, IfEmpty: true, NoWait: true},
		&BasicQos{PrefetchSize: 0, PrefetchCount: 100, Global: true},
		&BasicConsume{Queue: "q", ConsumerTag: "ctag", NoLocal: true, NoAck: true, Exclusive: true, NoWait: true, Arguments: Table{"x-priority": int32(3)}},
		&BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b", Mandatory: true, Immediate: true},
		&BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1 << 40, Redelivered: true, Exchange: "e", RoutingKey: "k"},
		&BasicNack{DeliveryTag: 9, Multiple: true, Requeue: true},
		&ConfirmSelect{NoWait: true},
		&TxCommit{},
	}
	for _, m := range methods {
		t.Run(m.Key().String(), func(t *testing.T) {
			b, err := AppendMethodFrame(nil, 3, m)
			if err != nil {
				t.Fatal(err)
			}
			fr := NewFrameReader(bytes.NewReader(b), 4096, 131072)
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != FrameMethod || f.Channel != 3 {
				t.Fatalf("frame type %d channel %d", f.Type, f.Channel)
			}
			got, err := DecodeMethod(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("got %#v, want %#v", got, m)
			}
		})
	}
}

func TestExpectsReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m    Method
		want bool
	}{
		{&QueueDeclare{}, true},
		{&QueueDeclare{NoWait: true}, false},
		{&BasicPublish{}, false},
		{&BasicGet{}, true},
		{&BasicRecover{}, true},
		{&BasicAck{}, false},
		{&TxSelect{}, true},
		{&QueueUnbind{}, true},
		{&ChannelClose{}, true},
	}
	for _, tt := range tests {
		if got := tt.m.ExpectsReply(); got != tt.want {
			t.Errorf("%v.ExpectsReply() = %v, want %v", tt.m.Key(), got, tt.want)
		}
	}
}

func TestSoftErrors(t *testing.T) {
	t.Parallel()
	for code, soft := range map[uint16]bool{403: true, 404: true, 405: true, 406: true, 312: true, 320: false, 501: false, 504: false, 530: false, 540: false, 541: false} {
		if IsSoftError(code) != soft {
			t.Errorf("IsSoftError(%d) = %v", code, !soft)
		}
	}
	if e := Errorf(NotFound, "no queue 'q' in vhost '/'"); e.Text != "NOT_FOUND - no queue 'q' in vhost '/'" || !e.Soft() {
		t.Errorf("Errorf = %+v", e)
	}
}

func TestDecodeMethodErrors(t *testing.T) {
	t.Parallel()
	var e *Error
	if _, err := DecodeMethod([]byte{0, 60, 3, 231}); !errors.As(err, &e) || e.Code != CommandInvalid {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := DecodeMethod([]byte{0, 60}); !errors.As(err, &e) || e.Code != FrameError {
		t.Errorf("short payload: %v", err)
	}
	pub, _ := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "abc", RoutingKey: "key"})
	payload := pub[FrameHeaderSize : len(pub)-1]
	for n := 4; n < len(payload); n++ {
		if _, err := DecodeMethod(payload[:n]); !errors.As(err, &e) || e.Code != FrameError || e.ClassID != 60 || e.MethodID != 40 {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	t.Parallel()
	good := AppendHeartbeat(nil)
	badEnd := append([]byte(nil), good...)
	badEnd[len(badEnd)-1] = 0
	big := appendFrameStart(nil, FrameBody, 1)
	big[3], big[4] = 0, 0x10 // 1 MiB payload announced
	tests := []struct {
		name string
		in   []byte
		code uint16
		err  error
	}{
		{"bad end octet", badEnd, FrameError, nil},
		{"over frame_max", big, FrameError, nil},
		{"eof at start", nil, 0, io.EOF},
		{"eof in header", good[:3], 0, io.ErrUnexpectedEOF},
		{"eof in payload", AppendBodyFrames(nil, 1, []byte("body"), 4096)[:9], 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tt.in), 4096, 131072)
			_, err := fr.ReadFrame()
			var e *Error
			switch {
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("err = %v, want %v", err, tt.err)
			case tt.err == nil && (!errors.As(err, &e) || e.Code != tt.code):
				t.Fatalf("err = %v, want code %d", err, tt.code)
			}
		})
	}
}

func TestLargeFrameThroughScratch(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("0123456789"), 5000)
	b := AppendBodyFrames(nil, 7, body, 131072)
	b = AppendHeartbeat(b)
	fr := NewFrameReader(bytes.NewReader(b), 4096, 131072)
	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameBody || f.Channel != 7 || !bytes.Equal(f.Payload, body) {
		t.Fatalf("large frame: %v %d %d %d", err, f.Type, f.Channel, len(f.Payload))
	}
	if f, err = fr.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatalf("frame after large one: %v %v", f, err)
	}
}

func TestBodyFramesSplit(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte{7}, 10000)
	b := AppendBodyFrames(nil, 1, body, 4096)
	fr := NewFrameReader(bytes.NewReader(b), 8192, 4096)
	var got []byte
	for len(got) < len(body) {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Payload) > 4096-FrameOverhead {
			t.Fatalf("body frame of %d bytes exceeds frame_max", len(f.Payload))
		}
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("reassembled body differs")
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	t.Parallel()
	in := Properties{
		ContentType: "application/json", ContentEncoding: "gzip",
		Headers:      Table{"x-death": []any{Table{"count": int64(1)}}, "k": "v"},
		DeliveryMode: 2, Priority: 9, CorrelationID: "corr", ReplyTo: "amq.rabbitmq.reply-to",
		Expiration: "60000", MessageID: "id-1", Timestamp: time.Unix(1700000000, 0).UTC(),
		Type: "t", UserID: "guest", AppID: "app", ClusterID: "c",
	}
	raw, err := in.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := AppendHeaderFrame(nil, 1, ClassBasic, 42, raw)
	ch, err := ParseContentHeader(h[FrameHeaderSize : len(h)-1])
	if err != nil {
		t.Fatal(err)
	}
	if ch.ClassID != ClassBasic || ch.BodySize != 42 {
		t.Fatalf("header %+v", ch)
	}
	out, err := ch.Props.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("\n in %#v\nout %#v", in, out)
	}
	if ch.Props.DeliveryMode() != 2 {
		t.Error("DeliveryMode")
	}
	if p, ok := ch.Props.Priority(); !ok || p != 9 {
		t.Error("Priority")
	}
	if e, ok := ch.Props.Expiration(); !ok || e != "60000" {
		t.Error("Expiration")
	}
	if ch.Props.ReplyTo() != "amq.rabbitmq.reply-to" {
		t.Error("ReplyTo")
	}
	if u, ok := ch.Props.UserID(); !ok || u != "guest" {
		t.Error("UserID")
	}
	empty, _ := (&Properties{}).Append(nil)
	if len(empty) != 2 || RawProperties(empty).DeliveryMode() != 0 || RawProperties(empty).HasHeaders() {
		t.Errorf("empty properties %v", empty)
	}
}

func TestPropertiesValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  []byte
	}{
		{"no flags", []byte{0}},
		{"reserved bit", []byte{0, 1}},
		{"missing field", []byte{0x80, 0}},
		{"short string past end", []byte{0x80, 0, 5, 'a'}},
		{"bad headers", []byte{0x20, 0, 0, 0, 0, 3, 1, 'a', 'Z'}},
		{"trailing bytes", []byte{0, 0, 1}},
	}
	for _, tt := range tests {
		if err := RawProperties(tt.raw).Validate(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestFloatEncodings(t *testing.T) {
	t.Parallel()
	b, _ := AppendTable(nil, Table{"nan": math.NaN()})
	tb, err := DecodeTable(b[4:])
	if err != nil || !math.IsNaN(tb["nan"].(float64)) {
		t.Fatal("NaN lost")
	}
}

func TestExpirationMillis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		exp     string
		absent  bool
		ms      int64
		problem string
	}{
		{absent: true},
		{exp: "0", ms: 0},
		{exp: "60000", ms: 60000},
		{exp: "+5", ms: 5},
		{exp: "-0", ms: 0},
		{exp: "007", ms: 7},
		{exp: "315360000000", ms: MaxExpiration},
		{exp: "315360000001", problem: "{value_too_large,315360000001}"},
		{exp: "999999999999", problem: "{value_too_large,999999999999}"},
		{exp: "1000000000000", problem: "{value_too_large,1000000000000}"},
		{exp: "0099999999999999999999999", problem: "{value_too_large,99999999999999999999999}"},
		{exp: "-99999999999999999999999", problem: "{value_negative,-99999999999999999999999}"},
		{exp: "", problem: "no_integer"},
		{exp: "abc", problem: "no_integer"},
		{exp: "-", problem: "no_integer"},
		{exp: "-5", problem: "{value_negative,-5}"},
		{exp: "10s", problem: `{leftover_string,"s"}`},
		{exp: "1.5", problem: `{leftover_string,".5"}`},
	}
	for _, tt := range tests {
		t.Run(tt.exp, func(t *testing.T) {
			t.Parallel()
			var raw RawProperties
			if tt.exp == "" && !tt.absent {
				raw = withEmptyExpiration(t) // Append leaves an empty string out
			} else {
				b, err := (&Properties{Expiration: tt.exp}).Append(nil)
				if err != nil {
					t.Fatal(err)
				}
				raw = b
			}
			ms, present, problem := raw.ExpirationMillis()
			if present == tt.absent || ms != tt.ms || problem != tt.problem {
				t.Fatalf("ExpirationMillis() = %d, %v, %q; want %d, %v, %q", ms, present, problem, tt.ms, !tt.absent, tt.problem)
			}
		})
	}
}

// withEmptyExpiration returns properties holding only an empty expiration
// (Append leaves empty strings out).
func withEmptyExpiration(t *testing.T) RawProperties {
	t.Helper()
	return RawProperties{0x01, 0x00, 0} // flag bit 8 (expiration), shortstr of length 0
}
