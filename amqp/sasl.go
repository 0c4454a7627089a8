package amqp

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/warrenmq/warren/amqp/wire"
)

// errBadMechanism is a start-ok with a mechanism the server did not offer
// or a response the mechanism cannot parse.
var errBadMechanism = errors.New("unsupported mechanism or malformed response")

// parseSASL extracts a user name and password from a start-ok response.
// PLAIN is "authzid NUL user NUL password"; AMQPLAIN is a field table with
// LOGIN and PASSWORD, sent without its length prefix by most clients and
// with it by a few.
func parseSASL(mechanism string, resp []byte) (user, pass string, err error) {
	switch mechanism {
	case "PLAIN":
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 {
			return "", "", errBadMechanism
		}
		return string(parts[1]), string(parts[2]), nil
	case "AMQPLAIN":
		t, err := wire.DecodeTable(resp)
		if err != nil && len(resp) >= 4 && int(binary.BigEndian.Uint32(resp)) == len(resp)-4 {
			t, err = wire.DecodeTable(resp[4:])
		}
		if err != nil {
			return "", "", errBadMechanism
		}
		u, ok1 := t["LOGIN"].(string)
		p, ok2 := t["PASSWORD"].(string)
		if !ok1 || !ok2 {
			return "", "", errBadMechanism
		}
		return u, p, nil
	}
	return "", "", errBadMechanism
}
