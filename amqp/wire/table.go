package wire

import (
	"encoding/binary"
	"math"
	"slices"
	"time"
)

// Table is an AMQP field table in RabbitMQ's dialect. Values have these Go
// types, one per type code:
//
//	t bool      b int8     B uint8    s int16    u uint16
//	I int32     i uint32   l int64    f float32  d float64
//	D Decimal   S string   x []byte   A []any    T time.Time
//	F Table     V nil
//
// A decoded 'L' (which RabbitMQ reads as a signed 64-bit integer) becomes
// int64. When encoding, int is written as 'l'; other types are refused.
type Table map[string]any

// Decimal is the AMQP decimal field value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// maxTableDepth bounds the nesting of tables and arrays a peer may send, so
// hostile input cannot drive decoding into deep recursion.
const maxTableDepth = 64

// DecodeTable decodes a field table's contents (without the leading length).
// An empty input yields a nil Table.
func DecodeTable(b []byte) (Table, error) {
	return decodeTable(b, 0)
}

func decodeTable(b []byte, depth int) (Table, error) {
	if depth > maxTableDepth {
		return nil, syntaxErr("field table nested too deeply")
	}
	if len(b) == 0 {
		return nil, nil
	}
	t := make(Table)
	for len(b) > 0 {
		n := int(b[0])
		if len(b) < 1+n+1 {
			return nil, syntaxErr("truncated field table")
		}
		key := string(b[1 : 1+n])
		v, rest, err := decodeValue(b[1+n:], depth)
		if err != nil {
			return nil, err
		}
		t[key] = v
		b = rest
	}
	return t, nil
}

// decodeValue decodes one type code and value from b and returns the rest.
func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) < 1 {
		return nil, nil, syntaxErr("truncated field value")
	}
	code, b := b[0], b[1:]
	need := func(n int) bool { return len(b) >= n }
	switch code {
	case 't':
		if !need(1) {
			break
		}
		return b[0] != 0, b[1:], nil
	case 'b':
		if !need(1) {
			break
		}
		return int8(b[0]), b[1:], nil
	case 'B':
		if !need(1) {
			break
		}
		return b[0], b[1:], nil
	case 's':
		if !need(2) {
			break
		}
		return int16(binary.BigEndian.Uint16(b)), b[2:], nil
	case 'u':
		if !need(2) {
			break
		}
		return binary.BigEndian.Uint16(b), b[2:], nil
	case 'I':
		if !need(4) {
			break
		}
		return int32(binary.BigEndian.Uint32(b)), b[4:], nil
	case 'i':
		if !need(4) {
			break
		}
		return binary.BigEndian.Uint32(b), b[4:], nil
	case 'l', 'L':
		if !need(8) {
			break
		}
		return int64(binary.BigEndian.Uint64(b)), b[8:], nil
	case 'f':
		if !need(4) {
			break
		}
		return math.Float32frombits(binary.BigEndian.Uint32(b)), b[4:], nil
	case 'd':
		if !need(8) {
			break
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case 'D':
		if !need(5) {
			break
		}
		return Decimal{Scale: b[0], Value: int32(binary.BigEndian.Uint32(b[1:]))}, b[5:], nil
	case 'S', 'x':
		if !need(4) {
			break
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			break
		}
		v := b[4 : 4+n]
		if code == 'S' {
			return string(v), b[4+n:], nil
		}
		return slices.Clone(v), b[4+n:], nil
	case 'A':
		if !need(4) {
			break
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			break
		}
		a, err := decodeArray(b[4:4+n], depth+1)
		if err != nil {
			return nil, nil, err
		}
		return a, b[4+n:], nil
	case 'T':
		if !need(8) {
			break
		}
		return time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC(), b[8:], nil
	case 'F':
		if !need(4) {
			break
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			break
		}
		t, err := decodeTable(b[4:4+n], depth+1)
		if err != nil {
			return nil, nil, err
		}
		if t == nil {
			t = Table{}
		}
		return t, b[4+n:], nil
	case 'V':
		return nil, b, nil
	default:
		return nil, nil, syntaxErr("unknown field type '" + string(rune(code)) + "'")
	}
	return nil, nil, syntaxErr("truncated field value")
}

func decodeArray(b []byte, depth int) ([]any, error) {
	if depth > maxTableDepth {
		return nil, syntaxErr("field array nested too deeply")
	}
	a := []any{}
	for len(b) > 0 {
		v, rest, err := decodeValue(b, depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		b = rest
	}
	return a, nil
}

// AppendTable appends t as a field table, with its 4-byte length, keys in
// sorted order so that equal tables encode to equal bytes. It fails on a key
// longer than 255 bytes or a value of a type Table does not list.
func AppendTable(b []byte, t Table) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(k) > 255 {
			return b[:start], syntaxErr("field table key longer than 255 bytes")
		}
		b = append(b, byte(len(k)))
		b = append(b, k...)
		var err error
		if b, err = appendValue(b, t[k]); err != nil {
			return b[:start], err
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case bool:
		x := byte(0)
		if v {
			x = 1
		}
		return append(b, 't', x), nil
	case int8:
		return append(b, 'b', byte(v)), nil
	case uint8:
		return append(b, 'B', v), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(b, 's'), uint16(v)), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, 'u'), v), nil
	case int32:
		return binary.BigEndian.AppendUint32(append(b, 'I'), uint32(v)), nil
	case uint32:
		return binary.BigEndian.AppendUint32(append(b, 'i'), v), nil
	case int64:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v)), nil
	case int:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(b, 'f'), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 'd'), math.Float64bits(v)), nil
	case Decimal:
		return binary.BigEndian.AppendUint32(append(b, 'D', v.Scale), uint32(v.Value)), nil
	case string:
		b = binary.BigEndian.AppendUint32(append(b, 'S'), uint32(len(v)))
		return append(b, v...), nil
	case []byte:
		b = binary.BigEndian.AppendUint32(append(b, 'x'), uint32(len(v)))
		return append(b, v...), nil
	case []any:
		b = append(b, 'A')
		start := len(b)
		b = append(b, 0, 0, 0, 0)
		for _, e := range v {
			var err error
			if b, err = appendValue(b, e); err != nil {
				return b, err
			}
		}
		binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
		return b, nil
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, 'T'), uint64(v.Unix())), nil
	case Table:
		return AppendTable(append(b, 'F'), v)
	case nil:
		return append(b, 'V'), nil
	}
	return b, syntaxErr("unsupported field table value type")
}

// Int returns an integer field value of any width as an int64.
func Int(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case uint8:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

// TypeName is RabbitMQ's name for a field value's type, as its reply texts
// show it ("longstr", "signedint", "void"...).
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case bool:
		return "bool"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case int16:
		return "short"
	case uint16:
		return "unsignedshort"
	case int32:
		return "signedint"
	case uint32:
		return "unsignedint"
	case int64, int:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case Decimal:
		return "decimal"
	case string:
		return "longstr"
	case []byte:
		return "binary"
	case time.Time:
		return "timestamp"
	case []any:
		return "array"
	case Table, map[string]any:
		return "table"
	}
	return "undefined"
}
