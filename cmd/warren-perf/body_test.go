package main

import (
	"bytes"
	"testing"
)

func TestBodyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		size     int
		producer uint16
		seq      uint64
		nano     int64
		want     bodyInfo
	}{
		{name: "empty", size: 0, producer: 3, seq: 9, nano: 77, want: bodyInfo{}},
		{name: "7 bytes, nothing fits", size: 7, producer: 3, seq: 9, nano: 77, want: bodyInfo{}},
		{name: "8 bytes, id only", size: 8, producer: 3, seq: 9, nano: 77,
			want: bodyInfo{producer: 3, seq: 9, hasID: true}},
		{name: "15 bytes, id only", size: 15, producer: 65535, seq: maxSeq, nano: 77,
			want: bodyInfo{producer: 65535, seq: maxSeq, hasID: true}},
		{name: "16 bytes, full", size: 16, producer: 1, seq: 1 << 40, nano: 1_700_000_000_123_456_789,
			want: bodyInfo{producer: 1, seq: 1 << 40, sentNano: 1_700_000_000_123_456_789, hasID: true, hasTime: true}},
		{name: "64 KiB, full", size: 65536, producer: 200, seq: 0, nano: 1,
			want: bodyInfo{producer: 200, seq: 0, sentNano: 1, hasID: true, hasTime: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := make([]byte, tt.size)
			encodeBody(body, tt.producer, tt.seq, tt.nano)
			if got := decodeBody(body); got != tt.want {
				t.Errorf("decodeBody = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodeBodyLeavesPadding(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte{0xAB}, 40)
	encodeBody(body, 1, 2, 3)
	if !bytes.Equal(body[headerSize:], bytes.Repeat([]byte{0xAB}, 40-headerSize)) {
		t.Errorf("padding changed: %x", body[headerSize:])
	}
	want := []byte{0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3}
	if !bytes.Equal(body[:headerSize], want) {
		t.Errorf("header = %x, want %x", body[:headerSize], want)
	}
}
