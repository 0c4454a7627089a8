package persistence

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"

	"github.com/hashicorp/raft"
)

// A record of the Raft write-ahead log (raftwal.go), in a segment:
//
//	offset size
//	0      4    CRC-32C (Castagnoli) of bytes 4 to the end of the record
//	4      4    payload length
//	8      4    segment id: a record is valid only in the segment it was
//	            written to (segment files are reused; their old records
//	            carry older ids)
//	12     1    kind: walEntry, walBounds or walSeal
//	13     8    group
//	21     8    index: the Raft index of an entry; 0 for the other kinds
//	29     8    first  } the group's first and last index once this record
//	37     8    last   } is applied (0, 0: the group's log is empty)
//	45     -    payload: an entry's encoding (appendRaftLog); empty for the
//	            other kinds
//
// Integers are big-endian. A group's latest record says its bounds, so a
// deletion needs no record of its own to be replayed (its bounds record, or
// any later record of the group, carries the result); within the bounds,
// the latest entry record of an index is its entry.

const (
	walHeaderLen = 45

	// maxWALPayload bounds a record's payload: a length beyond it is
	// corruption, not a record.
	maxWALPayload = 1 << 30
)

// Record kinds.
const (
	// walEntry holds one Raft log entry of a group.
	walEntry byte = 1
	// walBounds sets a group's bounds: written by DeleteRange and when a
	// group is dropped (0, 0), and by compaction to move a group's latest
	// record forward.
	walBounds byte = 2
	// walSeal ends a segment: the next record is in the next segment. A
	// segment other than the last must end with one; if it does not, the
	// segments after it were written after a tear and are discarded.
	walSeal byte = 3
)

// walRecord is a record's header.
type walRecord struct {
	seg         uint32
	kind        byte
	group       uint64
	index       uint64
	first, last uint64
	size        uint32 // of the payload
}

// len is the record's length in its segment.
func (r *walRecord) len() int64 { return walHeaderLen + int64(r.size) }

// appendWALRecord appends the record r with payload: the entry l, encoded,
// for walEntry (r.size is set from it), nothing for the other kinds.
func appendWALRecord(dst []byte, r walRecord, l *raft.Log) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, 8)...) // CRC and length, set below
	dst = binary.BigEndian.AppendUint32(dst, r.seg)
	dst = append(dst, r.kind)
	dst = binary.BigEndian.AppendUint64(dst, r.group)
	dst = binary.BigEndian.AppendUint64(dst, r.index)
	dst = binary.BigEndian.AppendUint64(dst, r.first)
	dst = binary.BigEndian.AppendUint64(dst, r.last)
	if l != nil {
		dst = appendRaftLog(dst, l)
	}
	binary.BigEndian.PutUint32(dst[start+4:], uint32(len(dst)-start-walHeaderLen))
	binary.BigEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], castagnoli))
	return dst
}

// rewriteWALHeader sets the segment id and bounds of the encoded record rec
// (a copy moved by compaction) and its checksum again.
func rewriteWALHeader(rec []byte, seg uint32, first, last uint64) {
	binary.BigEndian.PutUint32(rec[8:], seg)
	binary.BigEndian.PutUint64(rec[29:], first)
	binary.BigEndian.PutUint64(rec[37:], last)
	binary.BigEndian.PutUint32(rec, crc32.Checksum(rec[4:], castagnoli))
}

// parseWALHeader decodes the header h (walHeaderLen bytes) of a record of
// segment seg and returns it with the checksum it declares, or false if it
// cannot be a record's: another segment's, an unknown kind, bounds that
// are not bounds, or fields a kind does not have.
func parseWALHeader(h []byte, seg uint32) (walRecord, uint32, bool) {
	r := walRecord{
		size:  binary.BigEndian.Uint32(h[4:]),
		seg:   binary.BigEndian.Uint32(h[8:]),
		kind:  h[12],
		group: binary.BigEndian.Uint64(h[13:]),
		index: binary.BigEndian.Uint64(h[21:]),
		first: binary.BigEndian.Uint64(h[29:]),
		last:  binary.BigEndian.Uint64(h[37:]),
	}
	ok := r.seg == seg && r.size <= maxWALPayload && (r.first == 0) == (r.last == 0) && r.first <= r.last
	switch r.kind {
	case walEntry:
		ok = ok && r.index != 0 && r.first <= r.index && r.index <= r.last && r.size > 0
	case walBounds:
		ok = ok && r.index == 0 && r.size == 0
	case walSeal:
		ok = ok && r.group == 0 && r.index == 0 && r.first == 0 && r.size == 0
	default:
		ok = false
	}
	return r, binary.BigEndian.Uint32(h), ok
}

// scanSegment reads the records of segment seg from rd, size bytes at most
// (it sizes its buffer by it), calling fn with
// each valid one and its offset, in order. It stops at the end of the data,
// at the first record that is not valid (torn or corrupt: a bad header,
// a short payload, a checksum mismatch) or after a seal. It returns the
// offset just after the last valid record and whether that record is a
// seal. Only read errors and fn's are returned: invalid data only ends the
// scan.
func scanSegment(rd io.Reader, size int64, seg uint32, fn func(r walRecord, off int64) error) (end int64, sealed bool, err error) {
	br := bufio.NewReaderSize(rd, int(min(max(size, 4<<10), 1<<20)))
	var h [walHeaderLen]byte
	crc := crc32.New(castagnoli)
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return end, false, eofIsEnd(err)
		}
		r, sum, ok := parseWALHeader(h[:], seg)
		if !ok {
			return end, false, nil
		}
		crc.Reset()
		crc.Write(h[4:])
		if n, err := io.CopyN(crc, br, int64(r.size)); err != nil || n != int64(r.size) {
			return end, false, eofIsEnd(err)
		}
		if crc.Sum32() != sum {
			return end, false, nil
		}
		if r.kind == walSeal {
			return end + r.len(), true, nil
		}
		if err := fn(r, end); err != nil {
			return end, false, err
		}
		end += r.len()
	}
}

// eofIsEnd returns nil for the errors that mean the data ended (mid-record
// or not), err otherwise.
func eofIsEnd(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}
