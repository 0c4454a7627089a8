package wire

import "strconv"

// Error is an AMQP exception: the reply code and text a peer is closed with,
// and the class and method that caused it (zero when none did).
//
// Whether the exception closes a channel or the whole connection follows from
// the code (see Soft).
type Error struct {
	Code     uint16
	Text     string
	ClassID  uint16
	MethodID uint16
}

// Errorf builds an *Error whose text is RabbitMQ-shaped: the reply code's
// name, " - ", then the message ("NOT_FOUND - no queue 'q' in vhost '/'").
func Errorf(code uint16, msg string) *Error {
	return &Error{Code: code, Text: ReplyName(code) + " - " + msg}
}

// Error implements error.
func (e *Error) Error() string {
	return strconv.Itoa(int(e.Code)) + " " + e.Text
}

// Soft reports whether the error is a channel exception (the channel closes)
// rather than a connection exception (the connection closes).
func (e *Error) Soft() bool { return IsSoftError(e.Code) }

// WithMethod returns a copy of e that names the class and method at fault.
func (e *Error) WithMethod(classID, methodID uint16) *Error {
	c := *e
	c.ClassID, c.MethodID = classID, methodID
	return &c
}

// frameErr is a malformed-input error.
func frameErr(msg string) *Error { return Errorf(FrameError, msg) }

// syntaxErr is a field-level decoding error.
func syntaxErr(msg string) *Error { return Errorf(SyntaxError, msg) }
