package quorum

import (
	"encoding/binary"
	"errors"
)

// errCorrupt is a command or snapshot that does not decode.
var errCorrupt = errors.New("quorum: malformed command or snapshot")

// enc appends the fields of commands and snapshots: unsigned varints,
// signed varints and length-prefixed bytes.
type enc []byte

func (e *enc) u(v uint64)     { *e = binary.AppendUvarint(*e, v) }
func (e *enc) i(v int64)      { *e = binary.AppendVarint(*e, v) }
func (e *enc) bytes(b []byte) { e.u(uint64(len(b))); *e = append(*e, b...) }
func (e *enc) str(s string)   { e.u(uint64(len(s))); *e = append(*e, s...) }
func (e *enc) bool(b bool) {
	if b {
		*e = append(*e, 1)
	} else {
		*e = append(*e, 0)
	}
}

// dec reads what enc wrote. The first error sticks: every later read
// returns zero, and err says what went wrong, so a decoder reads every
// field and checks once.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err, d.b = errCorrupt, nil }

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must not exceed the bytes left (each counted
// item takes at least one byte), so a corrupt length cannot make a reader
// allocate more than the input's size.
func (d *dec) count() int {
	n := d.u()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) bool() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail()
	}
	return v == 1
}
