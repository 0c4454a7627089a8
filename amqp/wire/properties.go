package wire

import (
	"encoding/binary"
	"strconv"
	"time"
)

// Property flag bits of the basic class's content header, high bit first.
const (
	flagContentType     = 1 << 15
	flagContentEncoding = 1 << 14
	flagHeaders         = 1 << 13
	flagDeliveryMode    = 1 << 12
	flagPriority        = 1 << 11
	flagCorrelationID   = 1 << 10
	flagReplyTo         = 1 << 9
	flagExpiration      = 1 << 8
	flagMessageID       = 1 << 7
	flagTimestamp       = 1 << 6
	flagType            = 1 << 5
	flagUserID          = 1 << 4
	flagAppID           = 1 << 3
	flagClusterID       = 1 << 2
	flagContinuation    = 1 << 0
)

// Properties are the 14 basic-class message properties.
type Properties struct {
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
}

// ContentHeader is a parsed content header frame. Props aliases the frame's
// payload: the flags word and the encoded properties, kept raw so a broker
// can re-send them on delivery without decoding.
type ContentHeader struct {
	ClassID  uint16
	BodySize uint64
	Props    RawProperties
}

// ParseContentHeader parses a content header frame's payload and checks that
// its properties are well formed, so later reads of them cannot fail.
func ParseContentHeader(payload []byte) (ContentHeader, error) {
	if len(payload) < 14 {
		return ContentHeader{}, frameErr("content header too short")
	}
	h := ContentHeader{
		ClassID:  binary.BigEndian.Uint16(payload),
		BodySize: binary.BigEndian.Uint64(payload[4:]),
		Props:    RawProperties(payload[12:]),
	}
	if err := h.Props.Validate(); err != nil {
		return ContentHeader{}, err
	}
	return h, nil
}

// RawProperties are encoded basic properties: the flags word followed by the
// present fields in flag order.
type RawProperties []byte

// propertyKinds lists each property's encoding, in flag order (bit 15 down).
var propertyKinds = [14]byte{'s', 's', 'F', 'o', 'o', 's', 's', 's', 's', 'T', 's', 's', 's', 's'}

// Validate checks the structure of p: the flags word, each present field's
// bounds and the headers table's contents.
func (p RawProperties) Validate() error {
	if len(p) < 2 {
		return frameErr("content header properties truncated")
	}
	flags := binary.BigEndian.Uint16(p)
	if flags&(flagContinuation|1<<1) != 0 {
		return frameErr("content header property flags use reserved bits")
	}
	b := p[2:]
	for i, kind := range propertyKinds {
		if flags&(1<<(15-i)) == 0 {
			continue
		}
		n, ok := fieldLen(b, kind)
		if !ok {
			return frameErr("content header properties truncated")
		}
		if kind == 'F' {
			if err := validateTable(b[4:n], 0); err != nil {
				return err
			}
		}
		b = b[n:]
	}
	if len(b) != 0 {
		return frameErr("content header has trailing bytes")
	}
	return nil
}

// fieldLen returns the encoded length of one property of the given kind at
// the start of b.
func fieldLen(b []byte, kind byte) (int, bool) {
	switch kind {
	case 's':
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return 0, false
		}
		return 1 + int(b[0]), true
	case 'F':
		if len(b) < 4 {
			return 0, false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return 0, false
		}
		return 4 + int(n), true
	case 'o':
		return 1, len(b) >= 1
	case 'T':
		return 8, len(b) >= 8
	}
	return 0, false
}

// field returns the raw bytes of property i (0 = content-type), or nil when
// it is absent. p must have passed Validate.
func (p RawProperties) field(i int) []byte {
	if len(p) < 2 {
		return nil
	}
	flags := binary.BigEndian.Uint16(p)
	if flags&(1<<(15-i)) == 0 {
		return nil
	}
	b := p[2:]
	for j := 0; j < i; j++ {
		if flags&(1<<(15-j)) != 0 {
			n, ok := fieldLen(b, propertyKinds[j])
			if !ok {
				return nil
			}
			b = b[n:]
		}
	}
	n, ok := fieldLen(b, propertyKinds[i])
	if !ok {
		return nil
	}
	return b[:n]
}

// Property indexes in flag order.
const (
	propHeaders      = 2
	propDeliveryMode = 3
	propPriority     = 4
	propReplyTo      = 6
	propExpiration   = 7
	propUserID       = 11
)

// DeliveryMode returns the delivery-mode property (2 = persistent), 0 if absent.
func (p RawProperties) DeliveryMode() uint8 {
	if f := p.field(propDeliveryMode); f != nil {
		return f[0]
	}
	return 0
}

// Priority returns the priority property and whether it is present.
func (p RawProperties) Priority() (uint8, bool) {
	if f := p.field(propPriority); f != nil {
		return f[0], true
	}
	return 0, false
}

// Expiration returns the expiration property and whether it is present.
func (p RawProperties) Expiration() (string, bool) {
	if f := p.field(propExpiration); f != nil {
		return string(f[1:]), true
	}
	return "", false
}

// MaxExpiration is the longest time to live RabbitMQ takes, in
// milliseconds (ten years, rabbit_misc's limit as 3.10 probes show it),
// for the expiration property as for x-message-ttl and x-expires.
const MaxExpiration = 315360000000

// ExpirationMillis reads the expiration property as RabbitMQ does
// (rabbit_basic:parse_expiration): a decimal number of milliseconds,
// optionally signed, at most MaxExpiration. present is false when the
// property is absent; problem, when not "", is RabbitMQ's term for an
// invalid value (no_integer, {value_too_large,N}, {value_negative,N} or
// {leftover_string,"..."}). It does not allocate for a valid value.
func (p RawProperties) ExpirationMillis() (ms int64, present bool, problem string) {
	f := p.field(propExpiration)
	if f == nil {
		return 0, false, ""
	}
	s := f[1:]
	i, neg := 0, false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits := s[start:i]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:] // as Erlang prints the integer
	}
	big := len(digits) > 12 // past MaxExpiration (and any int64 worry)
	if !big {
		for _, d := range digits {
			ms = ms*10 + int64(d-'0')
		}
	}
	switch {
	case i == start:
		return 0, true, "no_integer"
	case i < len(s):
		return 0, true, "{leftover_string," + strconv.Quote(string(s[i:])) + "}"
	case !neg && (big || ms > MaxExpiration):
		return 0, true, "{value_too_large," + string(digits) + "}"
	case neg && (big || ms != 0):
		return 0, true, "{value_negative,-" + string(digits) + "}"
	}
	return ms, true, ""
}

// ReplyTo returns the reply-to property, "" if absent.
func (p RawProperties) ReplyTo() string {
	if f := p.field(propReplyTo); f != nil {
		return string(f[1:])
	}
	return ""
}

// UserID returns the user-id property and whether it is present.
func (p RawProperties) UserID() (string, bool) {
	if f := p.field(propUserID); f != nil {
		return string(f[1:]), true
	}
	return "", false
}

// HasHeaders reports whether the headers property is present.
func (p RawProperties) HasHeaders() bool { return p.field(propHeaders) != nil }

// Headers decodes the headers property; nil when absent.
func (p RawProperties) Headers() (Table, error) {
	f := p.field(propHeaders)
	if f == nil {
		return nil, nil
	}
	return DecodeTable(f[4:])
}

// Decode decodes every property.
func (p RawProperties) Decode() (Properties, error) {
	var out Properties
	if err := p.Validate(); err != nil {
		return out, err
	}
	str := func(i int) string {
		if f := p.field(i); f != nil {
			return string(f[1:])
		}
		return ""
	}
	out.ContentType = str(0)
	out.ContentEncoding = str(1)
	h, err := p.Headers()
	if err != nil {
		return out, err
	}
	out.Headers = h
	out.DeliveryMode = p.DeliveryMode()
	out.Priority, _ = p.Priority()
	out.CorrelationID = str(5)
	out.ReplyTo = str(6)
	out.Expiration = str(7)
	out.MessageID = str(8)
	if f := p.field(9); f != nil {
		out.Timestamp = time.Unix(int64(binary.BigEndian.Uint64(f)), 0).UTC()
	}
	out.Type = str(10)
	out.UserID = str(11)
	out.AppID = str(12)
	out.ClusterID = str(13)
	return out, nil
}

// Append encodes the properties (flags word first) onto b. Empty strings,
// zero numbers, a nil table and a zero time are left out.
func (p *Properties) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0)
	var flags uint16
	e := encoder{b: b}
	str := func(flag uint16, s string) {
		if s != "" {
			flags |= flag
			e.shortstr(s)
		}
	}
	str(flagContentType, p.ContentType)
	str(flagContentEncoding, p.ContentEncoding)
	if p.Headers != nil {
		flags |= flagHeaders
		e.table(p.Headers)
	}
	if p.DeliveryMode != 0 {
		flags |= flagDeliveryMode
		e.octet(p.DeliveryMode)
	}
	if p.Priority != 0 {
		flags |= flagPriority
		e.octet(p.Priority)
	}
	str(flagCorrelationID, p.CorrelationID)
	str(flagReplyTo, p.ReplyTo)
	str(flagExpiration, p.Expiration)
	str(flagMessageID, p.MessageID)
	if !p.Timestamp.IsZero() {
		flags |= flagTimestamp
		e.longlong(uint64(p.Timestamp.Unix()))
	}
	str(flagType, p.Type)
	str(flagUserID, p.UserID)
	str(flagAppID, p.AppID)
	str(flagClusterID, p.ClusterID)
	if e.err != nil {
		return e.b[:start], e.err
	}
	binary.BigEndian.PutUint16(e.b[start:], flags)
	return e.b, nil
}

// validateTable checks a field table's structure without building it.
func validateTable(b []byte, depth int) error {
	if depth > maxTableDepth {
		return syntaxErr("field table nested too deeply")
	}
	for len(b) > 0 {
		n := int(b[0])
		if len(b) < 1+n+1 {
			return syntaxErr("truncated field table")
		}
		rest, err := skipValue(b[1+n:], depth)
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// skipValue checks one field value at the start of b and returns the rest.
func skipValue(b []byte, depth int) ([]byte, error) {
	if len(b) < 1 {
		return nil, syntaxErr("truncated field value")
	}
	code, b := b[0], b[1:]
	fixed := 0
	switch code {
	case 't', 'b', 'B':
		fixed = 1
	case 's', 'u':
		fixed = 2
	case 'I', 'i', 'f':
		fixed = 4
	case 'l', 'L', 'd', 'T':
		fixed = 8
	case 'D':
		fixed = 5
	case 'V':
		return b, nil
	case 'S', 'x', 'A', 'F':
		if len(b) < 4 {
			return nil, syntaxErr("truncated field value")
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, syntaxErr("truncated field value")
		}
		inner := b[4 : 4+n]
		switch code {
		case 'F':
			if err := validateTable(inner, depth+1); err != nil {
				return nil, err
			}
		case 'A':
			if depth+1 > maxTableDepth {
				return nil, syntaxErr("field array nested too deeply")
			}
			for len(inner) > 0 {
				var err error
				if inner, err = skipValue(inner, depth+1); err != nil {
					return nil, err
				}
			}
		}
		return b[4+n:], nil
	default:
		return nil, syntaxErr("unknown field type '" + string(rune(code)) + "'")
	}
	if len(b) < fixed {
		return nil, syntaxErr("truncated field value")
	}
	return b[fixed:], nil
}
