package cluster

import (
	"encoding/binary"
	"errors"
)

// Fields is the compact binary form of the fields the users of node-to-node
// calls send (and the quorum queues keep in their logs): unsigned and
// signed integers as varints, booleans as one byte, bytes and strings with
// a uvarint length. Each method appends a field and returns f, so calls
// chain.
type Fields []byte

// Uint appends an unsigned integer.
func (f *Fields) Uint(v uint64) *Fields { *f = binary.AppendUvarint(*f, v); return f }

// Int appends a signed integer.
func (f *Fields) Int(v int64) *Fields { *f = binary.AppendVarint(*f, v); return f }

// Bin appends bytes.
func (f *Fields) Bin(b []byte) *Fields { f.Uint(uint64(len(b))); *f = append(*f, b...); return f }

// Str appends a string.
func (f *Fields) Str(s string) *Fields { f.Uint(uint64(len(s))); *f = append(*f, s...); return f }

// Bool appends a boolean.
func (f *Fields) Bool(v bool) *Fields {
	if v {
		*f = append(*f, 1)
	} else {
		*f = append(*f, 0)
	}
	return f
}

// ErrMalformed is a FieldReader's error for input that is not what Fields
// wrote.
var ErrMalformed = errors.New("malformed fields")

// FieldReader reads what Fields wrote. Its first error sticks: every later
// read returns zero, so a reader reads all the fields and checks Err once.
// Bytes it returns share the input.
type FieldReader struct {
	b   []byte
	err error
}

// ReadFields returns a reader of b.
func ReadFields(b []byte) *FieldReader { return &FieldReader{b: b} }

// Err returns the first error, nil when every read so far succeeded.
func (r *FieldReader) Err() error { return r.err }

// Left returns how many bytes are left unread.
func (r *FieldReader) Left() int { return len(r.b) }

// Fail makes the input malformed (a field read well but its value is
// not one the caller takes).
func (r *FieldReader) Fail() { r.err, r.b = ErrMalformed, nil }

// Uint reads an unsigned integer.
func (r *FieldReader) Uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Int reads a signed integer.
func (r *FieldReader) Int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Count reads the length of a list whose items take a byte or more each:
// no more than the bytes left, so a corrupt length cannot make the caller
// allocate more than the input's size.
func (r *FieldReader) Count() int {
	n := r.Uint()
	if n > uint64(len(r.b)) {
		r.Fail()
		return 0
	}
	return int(n)
}

// Bin reads bytes.
func (r *FieldReader) Bin() []byte {
	n := r.Count()
	if r.err != nil {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Str reads a string.
func (r *FieldReader) Str() string { return string(r.Bin()) }

// Bool reads a boolean.
func (r *FieldReader) Bool() bool {
	if len(r.b) == 0 {
		r.Fail()
		return false
	}
	v := r.b[0]
	r.b = r.b[1:]
	if v > 1 {
		r.Fail()
	}
	return v == 1
}

// Bytes returns the fields appended so far.
func (f *Fields) Bytes() []byte { return *f }
