package exchange

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp/wire"
)

// Error texts quote field values the way RabbitMQ's Erlang formats them
// (io_lib ~tp), so that clients see the same reply texts.

// erlType returns the name RabbitMQ gives v's AMQP field type.
func erlType(v any) string { return wire.TypeName(v) }

// erlTerm formats a field value as ~tp prints RabbitMQ's representation of
// it: binaries as <<"...">>, integers in decimal, void as undefined, arrays
// and tables as lists of typed tuples.
func erlTerm(v any) string {
	var b strings.Builder
	writeTerm(&b, v)
	return b.String()
}

func writeTerm(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("undefined")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int8:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint8:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int16:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint16:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float32:
		b.WriteString(erlFloat(float64(v)))
	case float64:
		b.WriteString(erlFloat(v))
	case wire.Decimal:
		b.WriteString("{" + strconv.Itoa(int(v.Scale)) + "," + strconv.FormatUint(uint64(uint32(v.Value)), 10) + "}")
	case string:
		writeBinary(b, v)
	case []byte:
		writeBinary(b, string(v))
	case time.Time:
		b.WriteString(strconv.FormatInt(v.Unix(), 10))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("{" + erlType(e) + ",")
			writeTerm(b, e)
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case wire.Table:
		writeTable(b, v)
	case map[string]any:
		writeTable(b, v)
	default:
		b.WriteString("undefined")
	}
}

func writeTable(b *strings.Builder, t map[string]any) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteByte('[')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		writeBinary(b, k)
		b.WriteString("," + erlType(t[k]) + ",")
		writeTerm(b, t[k])
		b.WriteByte('}')
	}
	b.WriteByte(']')
}

// writeBinary writes s as an Erlang binary: <<"abc">> when printable ASCII,
// <<"héllo"/utf8>> when printable Unicode, and a list of bytes otherwise.
func writeBinary(b *strings.Builder, s string) {
	if s == "" {
		b.WriteString("<<>>")
		return
	}
	ascii, printable := true, utf8.ValidString(s)
	for _, r := range s {
		if r >= utf8.RuneSelf {
			ascii = false
		}
		if !unicode.IsPrint(r) && !strings.ContainsRune("\n\r\t\v\b\f\x1b", r) {
			printable = false
		}
	}
	if !printable {
		b.WriteString("<<")
		for i := 0; i < len(s); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(s[i])))
		}
		b.WriteString(">>")
		return
	}
	b.WriteString(`<<"`)
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\x1b':
			b.WriteString(`\e`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	if !ascii {
		b.WriteString("/utf8")
	}
	b.WriteString(">>")
}

// erlFloat formats f roughly as Erlang's shortest float printing does:
// always with a fraction ("1.0") and an unsigned exponent ("1.0e20").
func erlFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.ContainsAny(mant, ".") && !strings.ContainsAny(mant, "IN") {
		mant += ".0"
	}
	if !hasExp {
		return mant
	}
	neg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(exp, "+-0")
	if neg {
		exp = "-" + exp
	}
	return mant + "e" + exp
}
