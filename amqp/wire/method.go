package wire

import (
	"encoding/binary"
	"strconv"
)

// MethodKey identifies a method: class id in the high 16 bits, method id in
// the low 16, as the two appear at the start of a method frame's payload.
type MethodKey uint32

// Class returns the class id.
func (k MethodKey) Class() uint16 { return uint16(k >> 16) }

// ID returns the method id within its class.
func (k MethodKey) ID() uint16 { return uint16(k) }

func (k MethodKey) idString() string {
	return strconv.Itoa(int(k.Class())) + "/" + strconv.Itoa(int(k.ID()))
}

// Method is one AMQP method's arguments.
type Method interface {
	// Key returns the method's class and method ids.
	Key() MethodKey
	// HasContent reports whether a content header and body follow the method.
	HasContent() bool
	// ExpectsReply reports whether the peer must answer (a synchronous
	// request whose no-wait bit, if any, is clear).
	ExpectsReply() bool
	// Decode reads the method's arguments (the payload after the ids).
	// Strings equal to the ones already held are kept, so decoding the same
	// method into the same struct again does not allocate.
	Decode(args []byte) error
	// AppendArgs appends the method's arguments to b.
	AppendArgs(b []byte) ([]byte, error)
}

// ReadMethodKey splits a method frame's payload into its key and arguments.
func ReadMethodKey(payload []byte) (MethodKey, []byte, error) {
	if len(payload) < 4 {
		return 0, nil, frameErr("method frame too short to hold class and method ids")
	}
	return MethodKey(binary.BigEndian.Uint32(payload)), payload[4:], nil
}

// DecodeMethod decodes a method frame's payload into a new Method.
func DecodeMethod(payload []byte) (Method, error) {
	k, args, err := ReadMethodKey(payload)
	if err != nil {
		return nil, err
	}
	m := NewMethod(k)
	if m == nil {
		return nil, UnknownMethodError(k)
	}
	if err := m.Decode(args); err != nil {
		return nil, err
	}
	return m, nil
}

// UnknownMethodError is the error for a method key the protocol lacks.
func UnknownMethodError(k MethodKey) *Error {
	return Errorf(CommandInvalid, "unknown method "+k.idString())
}

// decoder reads method arguments from a byte slice. Reads past the end set
// bad and return zero values; done turns that into one error.
type decoder struct {
	b   []byte
	all []byte // the whole argument bytes, for the error text
	bad bool
	err *Error
}

func (d *decoder) take(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) octet() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) short() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) long() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) longlong() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) shortstr(prev string) string {
	v := d.take(int(d.octet()))
	if string(v) == prev {
		return prev
	}
	return string(v)
}

func (d *decoder) longstr(prev string) string {
	n := d.long()
	if uint64(n) > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	v := d.take(int(n))
	if string(v) == prev {
		return prev
	}
	return string(v)
}

func (d *decoder) table() Table {
	n := d.long()
	if uint64(n) > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.take(int(n))
	if d.bad {
		return nil
	}
	t, err := DecodeTable(v)
	if err != nil && d.err == nil {
		d.err = err.(*Error)
	}
	return t
}

func (d *decoder) skipShort()    { d.take(2) }
func (d *decoder) skipShortstr() { d.take(int(d.octet())) }
func (d *decoder) skipLongstr()  { d.longstr("") }

func (d *decoder) done(k MethodKey) error {
	if d.err != nil {
		return d.err.WithMethod(k.Class(), k.ID())
	}
	if d.bad {
		return Errorf(FrameError, "cannot decode "+ErlangBinary(d.all)).WithMethod(k.Class(), k.ID())
	}
	return nil
}

// encoder appends method arguments; the first error sticks.
type encoder struct {
	b   []byte
	err error
}

func bit(v bool, mask uint8) uint8 {
	if v {
		return mask
	}
	return 0
}

func (e *encoder) octet(v uint8)     { e.b = append(e.b, v) }
func (e *encoder) short(v uint16)    { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) long(v uint32)     { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) longlong(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *encoder) shortstr(s string) {
	if len(s) > 255 {
		if e.err == nil {
			e.err = syntaxErr("short string longer than 255 bytes")
		}
		return
	}
	e.b = append(append(e.b, byte(len(s))), s...)
}

func (e *encoder) longstr(s string) {
	e.b = append(binary.BigEndian.AppendUint32(e.b, uint32(len(s))), s...)
}

func (e *encoder) table(t Table) {
	if e.err != nil {
		return
	}
	e.b, e.err = AppendTable(e.b, t)
}
