package main

import (
	"encoding/binary"
	"math"
)

// Message body layout written by producers and read by consumers:
//
//	bytes 0..1   producer id (uint16, big-endian)
//	bytes 2..7   sequence number (uint48, big-endian, from 0)
//	bytes 8..15  publish timestamp (int64 nanoseconds since the Unix epoch)
//	bytes 16..   padding (zeros) up to the body size given with -s
//
// A body of 8 to 15 bytes carries the id and the sequence number only (no
// latency); a body under 8 bytes carries nothing and is only counted.
const (
	idSize     = 8  // producer id + sequence number
	headerSize = 16 // id, sequence and timestamp

	// maxSeq is the largest sequence number the body can carry.
	maxSeq = 1<<48 - 1
)

// bodyInfo is what a consumer can read back from a body.
type bodyInfo struct {
	producer uint16
	seq      uint64
	sentNano int64
	hasID    bool // producer and seq are valid
	hasTime  bool // sentNano is valid
}

// encodeBody writes the producer id, sequence number and timestamp into the
// start of body, as far as it has room. The rest of body is left alone, so a
// producer fills its padding once and then only stamps each message.
func encodeBody(body []byte, producer uint16, seq uint64, nowNano int64) {
	if len(body) < idSize {
		return
	}
	binary.BigEndian.PutUint64(body, uint64(producer)<<48|seq&maxSeq)
	if len(body) < headerSize {
		return
	}
	binary.BigEndian.PutUint64(body[idSize:], uint64(nowNano))
}

// decodeBody reads back what encodeBody wrote.
func decodeBody(body []byte) bodyInfo {
	if len(body) < idSize {
		return bodyInfo{}
	}
	v := binary.BigEndian.Uint64(body)
	bi := bodyInfo{producer: uint16(v >> 48), seq: v & maxSeq, hasID: true}
	if len(body) >= headerSize {
		t := binary.BigEndian.Uint64(body[idSize:])
		if t <= math.MaxInt64 {
			bi.sentNano = int64(t)
			bi.hasTime = true
		}
	}
	return bi
}
