package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// seedFrames returns frames a client sends, as seeds for the fuzzers.
func seedFrames(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, m := range []Method{
		&ConnectionStartOk{ClientProperties: Table{"product": "amqp091-go", "capabilities": Table{"basic.nack": true}}, Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"},
		&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 10},
		&ConnectionOpen{VirtualHost: "/"},
		&ChannelOpen{},
		&QueueDeclare{Queue: "q", Durable: true, Arguments: Table{"x-queue-type": "quorum", "x-max-length": int64(10)}},
		&BasicConsume{Queue: "q", ConsumerTag: "c", Arguments: Table{"x-priority": int32(1)}},
		&BasicPublish{Exchange: "amq.direct", RoutingKey: "k", Mandatory: true},
		&BasicAck{DeliveryTag: 5, Multiple: true},
	} {
		b, err := AppendMethodFrame(nil, 1, m)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	props, _ := (&Properties{DeliveryMode: 2, Headers: Table{"a": []any{"b", int32(1)}}, MessageID: "m"}).Append(nil)
	seeds = append(seeds, AppendHeaderFrame(nil, 1, ClassBasic, 5, props))
	seeds = append(seeds, AppendBodyFrames(nil, 1, []byte("hello"), 131072))
	seeds = append(seeds, AppendHeartbeat(nil))
	return seeds
}

// halfReader returns at most half of what is asked for, to exercise short reads.
type halfReader struct{ r io.Reader }

func (h halfReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:len(p)/2]
	}
	return h.r.Read(p)
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range []io.Reader{bytes.NewReader(data), halfReader{bytes.NewReader(data)}} {
			fr := NewFrameReader(r, 64, 4096)
			for {
				fr0, err := fr.ReadFrame()
				if err != nil {
					var e *Error
					if !errors.As(err, &e) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("unexpected error type %T: %v", err, err)
					}
					break
				}
				if len(fr0.Payload)+FrameOverhead > 4096 {
					t.Fatalf("frame of %d bytes passed a 4096 limit", len(fr0.Payload))
				}
				switch fr0.Type {
				case FrameMethod:
					_, _ = DecodeMethod(fr0.Payload)
				case FrameHeader:
					if h, err := ParseContentHeader(fr0.Payload); err == nil {
						if _, err := h.Props.Decode(); err != nil {
							t.Fatalf("validated properties failed to decode: %v", err)
						}
						h.Props.DeliveryMode()
						exp, hasExp := h.Props.Expiration()
						ms, present, problem := h.Props.ExpirationMillis()
						if present != hasExp || problem == "" && (ms < 0 || ms > MaxExpiration) || problem != "" && ms != 0 {
							t.Fatalf("expiration %q read as %d, %v, %q", exp, ms, present, problem)
						}
					}
				}
			}
		}
	})
}

func FuzzDecodeMethod(f *testing.F) {
	for _, s := range seedFrames(f) {
		if s[0] == FrameMethod {
			f.Add(s[FrameHeaderSize : len(s)-1])
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodeMethod(payload)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			return
		}
		// What decoded must encode and decode to the same bytes.
		b1, err := AppendMethodFrame(nil, 1, m)
		if err != nil {
			t.Fatalf("re-encoding %v: %v", m.Key(), err)
		}
		m2, err := DecodeMethod(b1[FrameHeaderSize : len(b1)-1])
		if err != nil {
			t.Fatalf("decoding re-encoded %v: %v", m.Key(), err)
		}
		b2, _ := AppendMethodFrame(nil, 1, m2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("%v does not round-trip", m.Key())
		}
	})
}

func FuzzTableRoundTrip(f *testing.F) {
	b, _ := AppendTable(nil, sampleTable())
	f.Add(b[4:])
	f.Add([]byte{1, 'a', 'V'})
	f.Add([]byte{1, 'a', 'A', 0, 0, 0, 2, 't', 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := DecodeTable(data)
		verr := validateTable(data, 0)
		if (err == nil) != (verr == nil) {
			t.Fatalf("DecodeTable error %v but validateTable error %v", err, verr)
		}
		if err != nil {
			return
		}
		b1, err := AppendTable(nil, tb)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		tb2, err := DecodeTable(b1[4:])
		if err != nil {
			t.Fatalf("decoding re-encoded table: %v", err)
		}
		b2, err := AppendTable(nil, tb2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("table does not round-trip: %v", err)
		}
	})
}
