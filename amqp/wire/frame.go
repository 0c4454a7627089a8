package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// Frame types and framing constants.
const (
	FrameMethod    = 1
	FrameHeader    = 2
	FrameBody      = 3
	FrameHeartbeat = 8

	// FrameEnd is the octet that closes every frame.
	FrameEnd = 0xCE
	// FrameHeaderSize is the type, channel and size prefix of a frame.
	FrameHeaderSize = 7
	// FrameOverhead is what a frame adds to its payload: header and end octet.
	FrameOverhead = FrameHeaderSize + 1
	// FrameMinSize is the smallest frame_max a peer may negotiate.
	FrameMinSize = 4096
)

// ProtocolHeader opens every AMQP 0-9-1 connection; a server that does not
// speak the version a client asks for answers with it and closes.
const ProtocolHeader = "AMQP\x00\x00\x09\x01"

// Frame is one frame read from a peer. Its Payload aliases the reader's
// buffer and is valid only until the next ReadFrame.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames from a stream, checking each frame's size against
// the negotiated frame_max before reading its payload, and its end octet.
type FrameReader struct {
	r       *bufio.Reader
	max     uint32
	scratch []byte
}

// NewFrameReader reads frames from r through a buffer of bufSize bytes.
// Frames that fit the buffer are returned without copying; larger ones go
// through a scratch buffer that grows to the largest frame seen. maxFrame is
// the largest whole frame (frame_max) accepted.
func NewFrameReader(r io.Reader, bufSize int, maxFrame uint32) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, bufSize), max: maxFrame}
}

// SetMaxFrame changes the largest whole frame accepted (frame_max, header and
// end octet included).
func (fr *FrameReader) SetMaxFrame(n uint32) { fr.max = n }

// Buffered returns the number of bytes read from the stream but not yet
// consumed as frames.
func (fr *FrameReader) Buffered() int { return fr.r.Buffered() }

// ReadFull reads exactly len(p) raw bytes, for the protocol header.
func (fr *FrameReader) ReadFull(p []byte) error {
	_, err := io.ReadFull(fr.r, p)
	return err
}

// ErrFrameTooLarge is wrapped by the *Error a frame over frame_max yields.
var ErrFrameTooLarge = errors.New("frame too large")

// ReadFrame reads the next frame. I/O errors are returned as they are (io.EOF
// and deadline errors included); a malformed frame yields an *Error with
// FRAME_ERROR.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	hdr, err := fr.r.Peek(FrameHeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	f := Frame{Type: hdr[0], Channel: binary.BigEndian.Uint16(hdr[1:])}
	size := binary.BigEndian.Uint32(hdr[3:])
	if uint64(size)+FrameOverhead > uint64(fr.max) {
		return Frame{}, FrameErrorf(FrameError, f.Type, nil, "{frame_too_large,"+
			strconv.FormatUint(uint64(size), 10)+","+strconv.FormatUint(uint64(fr.max)-FrameOverhead, 10)+"}")
	}
	total := int(size) + FrameOverhead
	var end byte
	if total <= fr.r.Size() {
		buf, err := fr.r.Peek(total)
		if err != nil {
			return Frame{}, unexpectedEOF(err)
		}
		f.Payload, end = buf[FrameHeaderSize:total-1], buf[total-1]
		_, _ = fr.r.Discard(total)
	} else {
		_, _ = fr.r.Discard(FrameHeaderSize)
		if cap(fr.scratch) < int(size)+1 {
			fr.scratch = make([]byte, int(size)+1)
		}
		buf := fr.scratch[:size+1]
		if _, err := io.ReadFull(fr.r, buf); err != nil {
			return Frame{}, unexpectedEOF(err)
		}
		f.Payload, end = buf[:size], buf[size]
	}
	if end != FrameEnd {
		return Frame{}, FrameErrorf(FrameError, f.Type, f.Payload, "{invalid_frame_end_marker,"+strconv.Itoa(int(end))+"}")
	}
	return f, nil
}

// FrameErrorf builds the error for a frame the server cannot accept, with
// RabbitMQ's text: "type 3, all octets = <<...>>: reason" (": reason" left
// out when reason is empty).
func FrameErrorf(code uint16, frameType uint8, payload []byte, reason string) *Error {
	label := "all octets = "
	if len(payload) > 16 {
		label, payload = "first 16 octets = ", payload[:16]
	}
	text := "type " + strconv.Itoa(int(frameType)) + ", " + label + ErlangBinary(payload)
	if reason != "" {
		text += ": " + reason
	}
	return Errorf(code, text)
}

// ErlangBinary renders bytes the way RabbitMQ's reply texts show them: a
// quoted string when every byte is printable, else decimal octets.
func ErlangBinary(p []byte) string {
	printable := len(p) > 0
	for _, c := range p {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\t' && c != '\r' {
			printable = false
			break
		}
	}
	b := []byte("<<")
	if printable {
		b = append(b, '"')
		for _, c := range p {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, c)
			}
		}
		b = append(b, '"')
	} else {
		for i, c := range p {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
	}
	return string(append(b, ">>"...))
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFrameStart appends a frame header whose size is filled in by
// finishFrame.
func appendFrameStart(b []byte, typ uint8, channel uint16) []byte {
	return append(b, typ, byte(channel>>8), byte(channel), 0, 0, 0, 0)
}

// finishFrame writes the size of the frame that starts at start and appends
// the end octet.
func finishFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start+3:], uint32(len(b)-start-FrameHeaderSize))
	return append(b, FrameEnd)
}

// AppendMethodFrame appends a method frame carrying m on channel.
func AppendMethodFrame(b []byte, channel uint16, m Method) ([]byte, error) {
	start := len(b)
	b = appendFrameStart(b, FrameMethod, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Key()))
	b, err := m.AppendArgs(b)
	if err != nil {
		return b[:start], err
	}
	return finishFrame(b, start), nil
}

// AppendHeaderFrame appends a content header frame for a body of bodySize
// bytes whose properties (flags word included) are already encoded in props.
func AppendHeaderFrame(b []byte, channel uint16, classID uint16, bodySize uint64, props []byte) []byte {
	start := len(b)
	b = appendFrameStart(b, FrameHeader, channel)
	b = binary.BigEndian.AppendUint16(b, classID)
	b = append(b, 0, 0) // weight
	b = binary.BigEndian.AppendUint64(b, bodySize)
	b = append(b, props...)
	return finishFrame(b, start)
}

// AppendBodyFrames appends body as body frames of at most frameMax bytes
// each (frame overhead included). An empty body yields no frame.
func AppendBodyFrames(b []byte, channel uint16, body []byte, frameMax uint32) []byte {
	chunk := int(frameMax) - FrameOverhead
	for len(body) > 0 {
		n := min(len(body), chunk)
		start := len(b)
		b = appendFrameStart(b, FrameBody, channel)
		b = append(b, body[:n]...)
		b = finishFrame(b, start)
		body = body[n:]
	}
	return b
}

// AppendBodyFrameHeader appends the 7-byte header of a body frame of n
// payload bytes, for a caller that sends the payload and the end octet
// itself (to write a large body without copying it).
func AppendBodyFrameHeader(b []byte, channel uint16, n int) []byte {
	return binary.BigEndian.AppendUint32(append(b, FrameBody, byte(channel>>8), byte(channel)), uint32(n))
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(b []byte) []byte {
	return append(b, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// AppendDeliver appends a basic.deliver method frame. The strings must be
// at most 255 bytes, as they are when they came from decoded short strings.
func AppendDeliver(b []byte, channel uint16, consumerTag string, deliveryTag uint64, redelivered bool, exchange, routingKey string) []byte {
	start := len(b)
	b = appendFrameStart(b, FrameMethod, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(MethodBasicDeliver))
	b = appendShortstr(b, consumerTag)
	b = binary.BigEndian.AppendUint64(b, deliveryTag)
	b = append(b, bit(redelivered, 1))
	b = appendShortstr(b, exchange)
	b = appendShortstr(b, routingKey)
	return finishFrame(b, start)
}

// AppendGetOk appends a basic.get-ok method frame; the strings as for
// AppendDeliver.
func AppendGetOk(b []byte, channel uint16, deliveryTag uint64, redelivered bool, exchange, routingKey string, messageCount uint32) []byte {
	start := len(b)
	b = appendFrameStart(b, FrameMethod, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(MethodBasicGetOk))
	b = binary.BigEndian.AppendUint64(b, deliveryTag)
	b = append(b, bit(redelivered, 1))
	b = appendShortstr(b, exchange)
	b = appendShortstr(b, routingKey)
	b = binary.BigEndian.AppendUint32(b, messageCount)
	return finishFrame(b, start)
}

// AppendReturn appends a basic.return method frame; the strings as for
// AppendDeliver.
func AppendReturn(b []byte, channel uint16, replyCode uint16, replyText, exchange, routingKey string) []byte {
	start := len(b)
	b = appendFrameStart(b, FrameMethod, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(MethodBasicReturn))
	b = binary.BigEndian.AppendUint16(b, replyCode)
	b = appendShortstr(b, replyText)
	b = appendShortstr(b, exchange)
	b = appendShortstr(b, routingKey)
	return finishFrame(b, start)
}

// AppendConfirm appends a publisher confirm: basic.ack, or basic.nack when
// nack is set.
func AppendConfirm(b []byte, channel uint16, deliveryTag uint64, multiple, nack bool) []byte {
	start := len(b)
	b = appendFrameStart(b, FrameMethod, channel)
	if nack {
		b = binary.BigEndian.AppendUint32(b, uint32(MethodBasicNack))
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(MethodBasicAck))
	}
	b = binary.BigEndian.AppendUint64(b, deliveryTag)
	b = append(b, bit(multiple, 1))
	return finishFrame(b, start)
}

// appendShortstr appends a short string whose length the caller has bounded
// to 255 bytes; the bound is applied again here only so that a caller's bug
// cannot corrupt the frame.
func appendShortstr(b []byte, s string) []byte {
	n := min(len(s), 255)
	return append(append(b, byte(n)), s[:n]...)
}
