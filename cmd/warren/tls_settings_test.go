package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// rabbitmq.conf's TLS keys set the TLS listener; auth_mechanisms.N lists
// the mechanisms in the file's order; listeners.tcp = none turns the
// plain listener off.
func TestTLSConfigKeys(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "rabbitmq.conf")
	conf := `listeners.tcp = none
listeners.ssl.default = 5671
ssl_options.certfile = /etc/warren/server.pem
ssl_options.keyfile = /etc/warren/server-key.pem
ssl_options.cacertfile = /etc/warren/ca.pem
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.2
auth_mechanisms.1 = EXTERNAL
auth_mechanisms.2 = PLAIN
ssl_cert_login_from = common_name
`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o, ignored, err := parse([]string{"--config", file}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := o.broker
	if b.Listen != "" || b.TLSListen != ":5671" || b.TLS.CertFile != "/etc/warren/server.pem" || b.TLS.KeyFile != "/etc/warren/server-key.pem" ||
		b.TLS.CAFile != "/etc/warren/ca.pem" || !b.TLS.VerifyPeer || !b.TLS.FailIfNoPeerCert {
		t.Errorf("listeners: %q, %q, %+v", b.Listen, b.TLSListen, b.TLS)
	}
	if !slices.Equal(b.AMQP.AuthMechanisms, []string{"EXTERNAL", "PLAIN"}) || b.AMQP.CertLoginFrom != "common_name" {
		t.Errorf("mechanisms %v, login from %q", b.AMQP.AuthMechanisms, b.AMQP.CertLoginFrom)
	}
	if !slices.Equal(ignored, []string{"ssl_options.versions.1"}) {
		t.Errorf("ignored keys %v", ignored)
	}
	if err := b.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
