package wire

import (
	"bytes"
	"testing"
)

// publishStream is one basic.publish with its content header and a 16-byte
// body, as a client sends it.
func publishStream(b *testing.B) []byte {
	props, err := (&Properties{DeliveryMode: 1, ContentType: "text/plain"}).Append(nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "amq.direct", RoutingKey: "bench.key"})
	if err != nil {
		b.Fatal(err)
	}
	s = AppendHeaderFrame(s, 1, ClassBasic, 16, props)
	return AppendBodyFrames(s, 1, []byte("0123456789abcdef"), 131072)
}

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// sink keeps the benchmark's message buffer on the heap, as a broker's is.
var sink []byte

// BenchmarkDecodePublish reads and decodes a basic.publish, its content
// header and a 16-byte body, and copies properties and body into one new
// buffer, as a broker does: one allocation per message, the body itself.
func BenchmarkDecodePublish(b *testing.B) {
	stream := publishStream(b)
	fr := NewFrameReader(&repeatReader{data: stream}, 64*1024, 131072)
	var pub BasicPublish
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		k, args, _ := ReadMethodKey(f.Payload)
		if k != MethodBasicPublish {
			b.Fatal("not a publish")
		}
		if err := pub.Decode(args); err != nil {
			b.Fatal(err)
		}
		f, err = fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		h, err := ParseContentHeader(f.Payload)
		if err != nil {
			b.Fatal(err)
		}
		msg := make([]byte, len(h.Props)+int(h.BodySize))
		n := copy(msg, h.Props)
		f, err = fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		copy(msg[n:], f.Payload)
		sink = msg
		if h.Props.DeliveryMode() != 1 {
			b.Fatal("delivery mode")
		}
	}
}

// BenchmarkEncodeDeliver appends a basic.deliver, its content header (raw
// properties) and a 16-byte body to a reused buffer.
func BenchmarkEncodeDeliver(b *testing.B) {
	props, _ := (&Properties{DeliveryMode: 1, ContentType: "text/plain"}).Append(nil)
	body := []byte("0123456789abcdef")
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendDeliver(buf[:0], 1, "amq.ctag-abcdefghijklmnopqrstuv", uint64(i), false, "amq.direct", "bench.key")
		buf = AppendHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), props)
		buf = AppendBodyFrames(buf, 1, body, 131072)
	}
	b.SetBytes(int64(len(buf)))
	if !bytes.Contains(buf, body) {
		b.Fatal("body missing")
	}
}
