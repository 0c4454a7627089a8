package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"github.com/warrenmq/warren/tlsconf"
	"github.com/warrenmq/warren/tlsconf/tlsconftest"
)

// serve accepts TLS connections on a loopback listener with f's
// configuration, completing each handshake and echoing one byte.
func serve(t *testing.T, f *tlsconf.Files) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", f.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					_, _ = c.Write(b[:])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip handshakes with cfg and echoes a byte.
func roundTrip(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{'x'}); err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, err
	}
	st := c.ConnectionState()
	return &st, nil
}

func TestVersionsAndClientCertificates(t *testing.T) {
	ca := tlsconftest.NewCA(t, "test")
	srv := ca.Server(t, "server")
	client := ca.Client(t, "alice")
	other := tlsconftest.NewCA(t, "other").Client(t, "mallory")

	required, err := tlsconf.Load(tlsconf.Options{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile,
		VerifyPeer: true, FailIfNoPeerCert: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, required)
	base := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	with := func(edit func(*tls.Config)) *tls.Config { c := base.Clone(); edit(c); return c }
	// Go's client sends no certificate the server's CAs did not sign;
	// other clients do, and this one is made to.
	foreign := func(c *tls.Config) {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other.TLS, nil }
	}

	st, err := roundTrip(addr, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{client.TLS} }))
	if err != nil || st.Version < tls.VersionTLS12 || len(st.PeerCertificates) == 0 {
		t.Fatalf("client with a certificate: %v %+v", err, st)
	}
	if _, err := roundTrip(addr, base); err == nil {
		t.Error("a client without a certificate was let in (fail_if_no_peer_cert)")
	}
	if _, err := roundTrip(addr, with(foreign)); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if _, err := roundTrip(addr, with(func(c *tls.Config) {
			c.Certificates = []tls.Certificate{client.TLS}
			c.MinVersion, c.MaxVersion = v, v
		})); err == nil {
			t.Errorf("a TLS %x handshake succeeded", v)
		}
	}
	// TLS 1.2 with a weak suite is refused; with a modern one it works.
	if _, err := roundTrip(addr, with(func(c *tls.Config) {
		c.Certificates = []tls.Certificate{client.TLS}
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	})); err == nil {
		t.Error("a CBC cipher suite was accepted")
	}
	if st, err := roundTrip(addr, with(func(c *tls.Config) {
		c.Certificates = []tls.Certificate{client.TLS}
		c.MaxVersion = tls.VersionTLS12
	})); err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2: %v", err)
	}

	// verify_peer without fail_if_no_peer_cert: a certificate is checked
	// when given, none is needed.
	optional, err := tlsconf.Load(tlsconf.Options{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile, VerifyPeer: true})
	if err != nil {
		t.Fatal(err)
	}
	addr = serve(t, optional)
	if _, err := roundTrip(addr, base); err != nil {
		t.Errorf("verify_peer, no certificate: %v", err)
	}
	if _, err := roundTrip(addr, with(foreign)); err == nil {
		t.Error("verify_peer: a certificate from another CA was accepted")
	}
}

// A reload takes new files for new handshakes; a failed one keeps the old.
func TestReload(t *testing.T) {
	ca := tlsconftest.NewCA(t, "test")
	first := ca.Server(t, "first")
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	install := func(p tlsconftest.Pair) {
		for src, dst := range map[string]string{p.CertFile: certFile, p.KeyFile: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first)
	f, err := tlsconf.Load(tlsconf.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, f)
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	subject := func() string {
		t.Helper()
		st, err := roundTrip(addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].Subject.CommonName
	}
	// An established connection outlives the reload.
	open, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got := subject(); got != "first" {
		t.Fatalf("server certificate %q", got)
	}
	install(ca.Server(t, "second"))
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := subject(); got != "second" {
		t.Fatalf("after reload: %q", got)
	}
	if _, err := open.Write([]byte{'y'}); err != nil {
		t.Fatalf("established connection after reload: %v", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(open, b[:]); err != nil || b[0] != 'y' {
		t.Fatalf("established connection after reload: %v", err)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Fatal("reloading a bad key succeeded")
	}
	if got := subject(); got != "second" {
		t.Fatalf("after a failed reload: %q", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []tlsconf.Options{
		{},
		{CertFile: "c"},
		{CertFile: "c", KeyFile: "k", VerifyPeer: true},
		{CertFile: "c", KeyFile: "k", CAFile: "ca", FailIfNoPeerCert: true},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
	if _, err := tlsconf.Load(tlsconf.Options{CertFile: "/no/such", KeyFile: "/no/such"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing files: %v", err)
	}
}

// A listener's connections batch writes when asked: what is written in a
// batch arrives at Flush, and a write outside a batch goes straight out.
func TestBatchedListener(t *testing.T) {
	ca := tlsconftest.NewCA(t, "test")
	srv := ca.Server(t, "server")
	f, err := tlsconf.Load(tlsconf.Options{CertFile: srv.CertFile, KeyFile: srv.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := f.Listener(ln)
	defer tln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			served <- err
			return
		}
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			served <- err
			return
		}
		b, ok := tc.NetConn().(tlsconf.Batcher)
		if !ok {
			served <- errors.New("the connection under TLS is not a Batcher")
			return
		}
		b.Batch()
		if _, err := tc.Write([]byte("first")); err != nil {
			served <- err
			return
		}
		if err := b.Flush(); err != nil {
			served <- err
			return
		}
		if _, err := tc.Write([]byte("second")); err != nil {
			served <- err
			return
		}
		served <- tc.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "firstsecond" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
