package amqp

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/warrenmq/warren/amqp/wire"
)

// errBadMechanism is a start-ok with a mechanism the server did not offer
// or a response the mechanism cannot parse.
var errBadMechanism = errors.New("unsupported mechanism or malformed response")

// mechanisms returns the SASL mechanisms to offer the client, and the user
// its certificate names when EXTERNAL is among them: EXTERNAL is offered
// only to a client that presented a certificate the TLS listener verified.
func (c *conn) mechanisms() (offered []string, certUser string) {
	for _, m := range c.srv.cfg.AuthMechanisms {
		if m == "EXTERNAL" {
			if certUser = c.certUser(); certUser == "" {
				continue
			}
		}
		offered = append(offered, m)
	}
	return offered, certUser
}

// certUser is the user name in the client's verified certificate, or "".
func (c *conn) certUser() string {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	subject := st.PeerCertificates[0].Subject
	if c.srv.cfg.CertLoginFrom == CertLoginCN {
		return subject.CommonName
	}
	return subject.String()
}

// login checks a start-ok's credentials with the mechanism it chose,
// which must be one offered.
func (c *conn) login(offered []string, certUser, mechanism string, resp []byte) (string, error) {
	if !slices.Contains(offered, mechanism) {
		return "", errBadMechanism
	}
	var err error
	if mechanism == "EXTERNAL" {
		c.user, err = c.srv.users.AuthenticateExternal(certUser, c.nc.RemoteAddr())
		return certUser, err
	}
	user, pass, err := parseSASL(mechanism, resp)
	if err == nil {
		c.user, err = c.srv.users.Authenticate(user, pass, c.nc.RemoteAddr())
	}
	return user, err
}

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
