package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/tlsconf/tlsconftest"
)

// tlsBroker starts a broker with a TLS listener whose certificate the CA
// signed, verifying client certificates against it.
func tlsBroker(t *testing.T, ca *tlsconftest.CA, server tlsconftest.Pair, extra ...string) *broker {
	t.Helper()
	args := append([]string{"--tls-listen", "127.0.0.1:0", "--tls-cert", server.CertFile, "--tls-key", server.KeyFile,
		"--tls-ca", ca.CertFile, "--tls-verify", "verify_peer"}, extra...)
	b := startBroker(t, args...)
	if b.TLSAddr == "" {
		t.Fatalf("no TLS listener in the start line:\n%s", b.log.String())
	}
	return b
}

// tlsRoundTrip connects over TLS with cfg, declares a queue, publishes to
// it and gets the message back.
func tlsRoundTrip(b *broker, cfg *tls.Config) error {
	conn, err := amqp091.DialTLS("amqps://guest:guest@"+b.TLSAddr+"/", cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	if err := ch.Publish("", q.Name, false, false, amqp091.Publishing{Body: []byte("over tls")}); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, ok, err := ch.Get(q.Name, true)
		if err != nil || ok {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return os.ErrDeadlineExceeded
}

// amqp091-go connects over TLS with and without a client certificate;
// TLS 1.0 and 1.1 are refused, and so is a client without a certificate
// when fail_if_no_peer_cert is set; the plain listener can be off; a
// SIGHUP makes new handshakes use new certificate files while
// established connections go on.
func TestTLSListener(t *testing.T) {
	ca := tlsconftest.NewCA(t, "e2e")
	server := ca.Server(t, "warren")
	alice := ca.Client(t, "alice")
	b := tlsBroker(t, ca, server)
	base := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{alice.TLS}

	if err := tlsRoundTrip(b, base); err != nil {
		t.Fatalf("without a client certificate: %v", err)
	}
	if err := tlsRoundTrip(b, withCert); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		old := withCert.Clone()
		old.MinVersion, old.MaxVersion = v, v
		if err := tlsRoundTrip(b, old); err == nil {
			t.Errorf("TLS version %x was accepted", v)
		}
	}
	// openssl sees TLS 1.2 and 1.3 only.
	for _, c := range []struct {
		flag string
		ok   bool
	}{{"-tls1_3", true}, {"-tls1_2", true}, {"-tls1_1", false}, {"-tls1", false}} {
		cmd := exec.Command("openssl", "s_client", "-connect", b.TLSAddr, c.flag, "-CAfile", ca.CertFile)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("openssl s_client %s: %v, want success %v\n%s", c.flag, err, c.ok, out)
		}
	}
	if err := tlsRoundTrip(b, withCert); err != nil {
		t.Fatalf("after refused handshakes: %v", err)
	}

	// warren-perf speaks amqps too (for the TLS benchmarks).
	perf := exec.Command(perfBin.get(t, "warren-perf", "./cmd/warren-perf"), "-h", "amqps://guest:guest@"+b.TLSAddr,
		"-x", "1", "-y", "1", "-u", "tls-perf", "-s", "1024", "-C", "2000", "-c", "100", "--json")
	if out, err := perf.CombinedOutput(); err != nil || !strings.Contains(string(out), `"lost":0`) || !strings.Contains(string(out), `"received":2000`) {
		t.Errorf("warren-perf over TLS: %v\n%s", err, out)
	}

	// A held connection survives a reload; new ones see the new certificate.
	held, err := amqp091.DialTLS("amqps://guest:guest@"+b.TLSAddr+"/", base)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	renewed := ca.Server(t, "warren-renewed")
	for src, dst := range map[string]string{renewed.CertFile: server.CertFile, renewed.KeyFile: server.KeyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(b.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		c, err := tls.Dial("tcp", b.TLSAddr, base)
		if err != nil {
			return err
		}
		defer c.Close()
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "warren-renewed" {
			return fmt.Errorf("the server's certificate is still %q", cn)
		}
		return nil
	})
	ch, err := held.Channel()
	if err != nil {
		t.Fatalf("the connection opened before the reload: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("the connection opened before the reload: %v", err)
	}

	// fail_if_no_peer_cert, and no plain listener.
	strict := tlsBroker(t, ca, ca.Server(t, "strict"), "--tls-fail-if-no-peer-cert", "true", "--listen", "none")
	if strict.Addr != "" {
		t.Errorf("a plain listener at %s with listeners.tcp = none", strict.Addr)
	}
	if err := tlsRoundTrip(strict, base); err == nil {
		t.Error("a client without a certificate was let in with fail_if_no_peer_cert")
	}
	if err := tlsRoundTrip(strict, withCert); err != nil {
		t.Errorf("with a certificate, fail_if_no_peer_cert: %v", err)
	}
}

// SASL EXTERNAL: with auth_mechanisms listing it, a client with a
// verified certificate logs in as the user its subject names (the common
// name here, ssl_cert_login_from = common_name), with no password; a
// certificate naming no user is refused, and a client without a
// certificate is not offered EXTERNAL.
func TestExternalLogin(t *testing.T) {
	ca := tlsconftest.NewCA(t, "e2e-external")
	b := tlsBroker(t, ca, ca.Server(t, "warren"), "--auth-mechanisms", "PLAIN,EXTERNAL", "--ssl-cert-login-from", "common_name")
	if st, body := b.api(t, "PUT", "/api/users/carol", map[string]any{"password": "unused-s3cret", "tags": ""}); st/100 != 2 {
		t.Fatalf("creating carol: %d %s", st, body)
	}
	if st, body := b.api(t, "PUT", "/api/permissions/%2F/carol", map[string]any{"configure": ".*", "write": ".*", "read": ".*"}); st/100 != 2 {
		t.Fatalf("carol's permissions: %d %s", st, body)
	}
	external := func(cn string) (*amqp091.Connection, error) {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
		if cn != "" {
			cfg.Certificates = []tls.Certificate{ca.Client(t, cn).TLS}
		}
		return amqp091.DialConfig("amqps://"+b.TLSAddr+"/", amqp091.Config{
			SASL: []amqp091.Authentication{&amqp091.ExternalAuth{}}, TLSClientConfig: cfg})
	}
	conn, err := external("carol")
	if err != nil {
		t.Fatalf("EXTERNAL as carol: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("carols", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		_, body := b.api(t, "GET", "/api/connections", nil)
		for _, want := range []string{`"user":"carol"`, `"ssl":true`, `"peer_cert_subject":"CN=carol,O=Warren tests"`, `"ssl_protocol":"tlsv1.3"`} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("no %s in the connections: %s", want, body)
			}
		}
		return nil
	})
	conn.Close()
	if c, err := external("nobody"); err == nil {
		c.Close()
		t.Error("a certificate naming no user logged in")
	}
	if c, err := external(""); err == nil {
		c.Close()
		t.Error("EXTERNAL without a certificate logged in")
	}
	// PLAIN still works beside it.
	if err := tlsRoundTrip(b, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}); err != nil {
		t.Errorf("PLAIN over TLS: %v", err)
	}
}

// pika (ssl_options) and amqplib (amqps:// with ca, cert and key) connect
// over TLS without and with a client certificate, and log in with
// EXTERNAL as the user their certificate names.
func TestTLSClients(t *testing.T) {
	ca := tlsconftest.NewCA(t, "e2e-clients")
	b := tlsBroker(t, ca, ca.Server(t, "warren"), "--auth-mechanisms", "AMQPLAIN,PLAIN,EXTERNAL")
	dave := ca.Client(t, "dave")
	// The default ssl_cert_login_from is the subject's distinguished name.
	user := "CN=dave,O=Warren tests"
	if st, body := b.api(t, "PUT", "/api/users/"+url.PathEscape(user), map[string]any{"password": "unused-s3cret", "tags": ""}); st/100 != 2 {
		t.Fatalf("creating %s: %d %s", user, st, body)
	}
	if st, body := b.api(t, "PUT", "/api/permissions/%2F/"+url.PathEscape(user), map[string]any{"configure": ".*", "write": ".*", "read": ".*"}); st/100 != 2 {
		t.Fatalf("permissions: %d %s", st, body)
	}
	for _, script := range []string{"python/tls.py", "node/tls.js"} {
		if out := clientScript(t, b, 60*time.Second, script, ca.CertFile, dave.CertFile, dave.KeyFile, user); !strings.Contains(out, "ok") {
			t.Errorf("%s: %s", script, out)
		}
	}
}

// The management API and the metrics serve HTTPS on their TLS listeners
// (management.ssl.*, prometheus.ssl.*), TLS 1.2 and 1.3 only.
func TestHTTPSListeners(t *testing.T) {
	ca := tlsconftest.NewCA(t, "e2e-https")
	srv := ca.Server(t, "warren-https")
	b := startBroker(t, "--mgmt-tls-listen", "127.0.0.1:0", "--mgmt-tls-cert", srv.CertFile, "--mgmt-tls-key", srv.KeyFile,
		"--prometheus-tls-listen", "127.0.0.1:0", "--prometheus-tls-cert", srv.CertFile, "--prometheus-tls-key", srv.KeyFile)
	addr := func(key string) string {
		m := regexp.MustCompile(` ` + regexp.QuoteMeta(key) + `=(\S+)`).FindStringSubmatch(b.log.String())
		if m == nil {
			t.Fatalf("no %s listener in the log:\n%s", key, b.log.String())
		}
		return m[1]
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}, DisableKeepAlives: true}}
	get := func(url string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := get("https://" + addr("https") + "/api/overview"); st != 200 || !strings.Contains(body, `"management_version"`) {
		t.Errorf("GET /api/overview over HTTPS: %d %s", st, body)
	}
	if st, body := get("https://" + addr("https/prometheus") + "/metrics"); st != 200 || !strings.Contains(body, "rabbitmq_connections") {
		t.Errorf("GET /metrics over HTTPS: %d %.200s", st, body)
	}
	old := client.Transport.(*http.Transport).TLSClientConfig
	old.MaxVersion = tls.VersionTLS11
	if _, err := client.Get("https://" + addr("https") + "/api/overview"); err == nil {
		t.Error("a TLS 1.1 client reached the management API")
	}
}
