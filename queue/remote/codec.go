package remote

import (
	"encoding/binary"
	"errors"
)

// The calls between nodes carry their fields in a compact binary form:
// integers as uvarints, strings and bytes with a uvarint length.

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) *encoder  { e.b = binary.AppendUvarint(e.b, v); return e }
func (e *encoder) str(s string) *encoder   { e.uint(uint64(len(s))); e.b = append(e.b, s...); return e }
func (e *encoder) bytes(b []byte) *encoder { e.uint(uint64(len(b))); e.b = append(e.b, b...); return e }
func (e *encoder) bool(v bool) *encoder {
	if v {
		return e.uint(1)
	}
	return e.uint(0)
}

var errShort = errors.New("malformed call between nodes")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

// count reads the length of a list of uvarints: no more than the bytes
// left could hold.
func (d *decoder) count() uint64 {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return n
}
func (d *decoder) bool() bool { return d.uint() != 0 }
