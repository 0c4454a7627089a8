package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

// frameReader reads frames back from bytes with the client's own reader.
func frameReader(b []byte) *client {
	return &client{r: bufio.NewReader(bytes.NewReader(b)), frameMax: clientFrameMax, buf: make([]byte, clientFrameMax+1)}
}

func TestEncodePublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		size, frameMax        int
		mandatory, persistent bool
		wantBodyFrames        int
	}{
		{name: "empty body", size: 0, frameMax: clientFrameMax, wantBodyFrames: 0},
		{name: "16 bytes, mandatory", size: 16, frameMax: clientFrameMax, mandatory: true, wantBodyFrames: 1},
		{name: "64 KiB persistent", size: 65536, frameMax: clientFrameMax, persistent: true, wantBodyFrames: 1},
		{name: "split at frame_max", size: 10000, frameMax: 4096, wantBodyFrames: 3},
		{name: "exactly one full frame", size: 4088, frameMax: 4096, wantBodyFrames: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			frames, bodyAt := encodePublish("ex", "a.b", tt.mandatory, tt.persistent, tt.size, tt.frameMax)
			if tt.size >= headerSize {
				encodeBody(frames[bodyAt:bodyAt+headerSize], 7, 42, 99)
			}
			c := frameReader(frames)

			typ, ch, p, err := c.readFrame()
			if err != nil || typ != frameMethod || ch != 1 || binary.BigEndian.Uint32(p) != basicPublish {
				t.Fatalf("method frame: type %d channel %d err %v", typ, ch, err)
			}
			exchange, rest := readShortstr(p[6:])
			key, rest := readShortstr(rest)
			if exchange != "ex" || key != "a.b" || len(rest) != 1 || rest[0] != bitsOf(tt.mandatory) {
				t.Errorf("publish args: exchange %q key %q rest %x", exchange, key, rest)
			}

			typ, _, p, err = c.readFrame()
			if err != nil || typ != frameHeader {
				t.Fatalf("header frame: type %d err %v", typ, err)
			}
			if cls, size := binary.BigEndian.Uint16(p), binary.BigEndian.Uint64(p[4:]); cls != 60 || size != uint64(tt.size) {
				t.Errorf("header class %d size %d", cls, size)
			}
			wantProps := []byte{0, 0}
			if tt.persistent {
				wantProps = []byte{0x10, 0, 2}
			}
			if !bytes.Equal(p[12:], wantProps) {
				t.Errorf("properties %x, want %x", p[12:], wantProps)
			}

			var body []byte
			for n := 0; n < tt.wantBodyFrames; n++ {
				typ, _, p, err = c.readFrame()
				if err != nil || typ != frameBody || len(p) > tt.frameMax-8 {
					t.Fatalf("body frame %d: type %d len %d err %v", n, typ, len(p), err)
				}
				body = append(body, p...)
			}
			if len(body) != tt.size {
				t.Errorf("body %d bytes, want %d", len(body), tt.size)
			}
			if _, err := c.r.Peek(1); err == nil {
				t.Error("bytes left after the message")
			}
			if tt.size >= headerSize {
				if got := decodeBody(body); got.producer != 7 || got.seq != 42 || got.sentNano != 99 {
					t.Errorf("stamped body decodes to %+v", got)
				}
			}
		})
	}
}

func TestAppendTable(t *testing.T) {
	t.Parallel()
	got := appendTable(nil, map[string]any{"b": true, "a": int64(-2), "c": "x", "d": map[string]any{}})
	want := []byte{0, 0, 0, 30,
		1, 'a', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		1, 'b', 't', 1,
		1, 'c', 'S', 0, 0, 0, 1, 'x',
		1, 'd', 'F', 0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Errorf("appendTable =\n%x\nwant\n%x", got, want)
	}
}

func TestAppendAck(t *testing.T) {
	t.Parallel()
	c := frameReader(appendAck(nil, 1<<40, true))
	typ, ch, p, err := c.readFrame()
	if err != nil || typ != frameMethod || ch != 1 {
		t.Fatalf("type %d channel %d err %v", typ, ch, err)
	}
	if id, tag, bits := binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), p[12]; id != basicAck || tag != 1<<40 || bits != 1 || len(p) != 13 {
		t.Errorf("ack id %x tag %d bits %d len %d", id, tag, bits, len(p))
	}
}
