// Package tlsconf builds the TLS configuration of Warren's listeners from
// the files rabbitmq.conf names (ssl_options.certfile, .keyfile,
// .cacertfile) and its peer-verification options, and reloads the files
// on demand (SIGHUP) without dropping connections: a reload changes what
// new handshakes use. It offers TLS 1.2 and 1.3 only, and for TLS 1.2
// only forward-secret AEAD cipher suites.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Options are a listener's TLS settings.
type Options struct {
	CertFile, KeyFile string // the server's certificate chain and key (PEM)
	CAFile            string // CAs that client certificates must chain to (PEM)
	// VerifyPeer asks clients for a certificate and verifies one given
	// against CAFile (ssl_options.verify = verify_peer);
	// FailIfNoPeerCert also refuses clients that give none
	// (ssl_options.fail_if_no_peer_cert = true).
	VerifyPeer       bool
	FailIfNoPeerCert bool
}

// Validate reports settings that cannot work.
func (o Options) Validate() error {
	var errs []error
	if o.CertFile == "" || o.KeyFile == "" {
		errs = append(errs, errors.New("TLS needs a certificate file and a key file"))
	}
	if o.VerifyPeer && o.CAFile == "" {
		errs = append(errs, errors.New("verify_peer needs a CA certificate file to verify clients against"))
	}
	if o.FailIfNoPeerCert && !o.VerifyPeer {
		errs = append(errs, errors.New("fail_if_no_peer_cert needs verify_peer"))
	}
	return errors.Join(errs...)
}

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange and AEAD
// ciphers only. (TLS 1.3's suites are not configurable and all fit this.)
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Files is a listener's TLS configuration, loaded from its files.
type Files struct {
	opts    Options
	current atomic.Pointer[tls.Config]
}

// Load reads the files named in o.
func Load(o Options) (*Files, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	f := &Files{opts: o}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again. New handshakes use them; connections
// already established go on. On an error the previous files stay in use.
func (f *Files) Reload() error {
	cert, err := tls.LoadX509KeyPair(f.opts.CertFile, f.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate and key: %w", err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if f.opts.CAFile != "" {
		pem, err := os.ReadFile(f.opts.CAFile)
		if err != nil {
			return fmt.Errorf("TLS CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("TLS CA certificates: no PEM certificate in %s", f.opts.CAFile)
		}
		c.ClientCAs = pool
	}
	switch {
	case f.opts.FailIfNoPeerCert:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case f.opts.VerifyPeer:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	f.current.Store(c)
	return nil
}

// Config returns the configuration for a listener: each handshake takes
// the files loaded last.
func (f *Files) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.current.Load(), nil
		},
	}
}
