package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A connection to the cluster listener opens with the magic, a tag naming
// what it carries, and a mutual proof that both ends know the cluster
// secret (HMAC-SHA256 over both sides' nonces); only then is it handed to
// the tag's consumer. One listener thus carries the metadata group's Raft
// traffic and node-to-node calls (and, later, the quorum queues' groups),
// as rqlite and Consul multiplex theirs.
const (
	magic         = "WRN\x01"
	nonceLen      = 16
	macLen        = sha256.Size
	handshakeTime = 5 * time.Second

	tagRaft byte = 'r' // the metadata group's Raft transport
	tagCall byte = 'c' // node-to-node calls
)

// errSecret is what a dialer gets from a peer that does not know the
// cluster secret (or that refused ours).
var errSecret = errors.New("cluster secret mismatch: the peer does not share this node's cluster secret")

func proof(secret []byte, role string, tag byte, a, b []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(role))
	m.Write([]byte{tag})
	m.Write(a)
	m.Write(b)
	return m.Sum(nil)
}

// dial opens a connection to a peer's cluster listener for tag and proves
// the secret both ways.
func dial(addr string, tag byte, secret []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := clientHandshake(c, tag, secret); err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster handshake with %s: %w", addr, err)
	}
	return c, nil
}

func clientHandshake(c net.Conn, tag byte, secret []byte) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTime))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	hello := make([]byte, len(magic)+1+nonceLen)
	copy(hello, magic)
	hello[len(magic)] = tag
	nonceC := hello[len(magic)+1:]
	_, _ = rand.Read(nonceC)
	if _, err := c.Write(hello); err != nil {
		return err
	}
	reply := make([]byte, nonceLen+macLen)
	if _, err := io.ReadFull(c, reply); err != nil {
		return fmt.Errorf("%w (%v)", errSecret, err)
	}
	nonceS, mac := reply[:nonceLen], reply[nonceLen:]
	if !hmac.Equal(mac, proof(secret, "server", tag, nonceC, nonceS)) {
		return errSecret
	}
	if _, err := c.Write(proof(secret, "client", tag, nonceS, nonceC)); err != nil {
		return err
	}
	var ok [1]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil || ok[0] != 'K' {
		return errSecret
	}
	return nil
}

// serverHandshake reads a connection's opening and checks the peer's proof;
// it returns the tag.
func serverHandshake(c net.Conn, secret []byte) (byte, error) {
	_ = c.SetDeadline(time.Now().Add(handshakeTime))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	hello := make([]byte, len(magic)+1+nonceLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return 0, err
	}
	if string(hello[:len(magic)]) != magic {
		return 0, errors.New("not a Warren cluster connection")
	}
	tag, nonceC := hello[len(magic)], hello[len(magic)+1:]
	reply := make([]byte, nonceLen, nonceLen+macLen)
	_, _ = rand.Read(reply)
	nonceS := slices.Clone(reply)
	reply = append(reply, proof(secret, "server", tag, nonceC, nonceS)...)
	if _, err := c.Write(reply); err != nil {
		return 0, err
	}
	mac := make([]byte, macLen)
	if _, err := io.ReadFull(c, mac); err != nil {
		return 0, err
	}
	if !hmac.Equal(mac, proof(secret, "client", tag, nonceS, nonceC)) {
		return 0, errSecret
	}
	if _, err := c.Write([]byte{'K'}); err != nil {
		return 0, err
	}
	return tag, nil
}

// mux accepts connections on the cluster listener, authenticates them and
// hands each to the listener of its tag.
type mux struct {
	ln     net.Listener
	secret []byte
	log    *slog.Logger

	mu     sync.Mutex
	tags   map[byte]*tagListener
	closed chan struct{}
	wg     sync.WaitGroup
}

func newMux(ln net.Listener, secret []byte, log *slog.Logger) *mux {
	return &mux{ln: ln, secret: secret, log: log, tags: map[byte]*tagListener{}, closed: make(chan struct{})}
}

// fresh returns a new listener for tag's connections, in place of one a
// closed transport closed.
func (m *mux) fresh(tag byte) *tagListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := &tagListener{m: m, tag: tag, conns: make(chan net.Conn, 16), done: make(chan struct{})}
	m.tags[tag] = l
	return l
}

// listener returns the net.Listener of connections tagged tag.
func (m *mux) listener(tag byte) *tagListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.tags[tag]
	if l == nil {
		l = &tagListener{m: m, tag: tag, conns: make(chan net.Conn, 16), done: make(chan struct{})}
		m.tags[tag] = l
	}
	return l
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Error("cluster listener stopped", "err", err)
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.accept(c)
		}()
	}
}

func (m *mux) accept(c net.Conn) {
	tag, err := serverHandshake(c, m.secret)
	if err != nil {
		m.log.Warn("refused a cluster connection", "peer", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	m.mu.Lock()
	l := m.tags[tag]
	m.mu.Unlock()
	if l == nil {
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-m.closed:
		c.Close()
	}
}

func (m *mux) close() {
	select {
	case <-m.closed:
		return
	default:
	}
	close(m.closed)
	m.ln.Close()
	m.wg.Wait()
}

// tagListener is the net.Listener of one tag's connections; as a
// raft.StreamLayer it also dials peers with its tag.
type tagListener struct {
	m         *mux
	tag       byte
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// Accept returns the next authenticated connection of the tag.
func (l *tagListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

// Close stops the tag's accepting.
func (l *tagListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is the cluster listener's address.
func (l *tagListener) Addr() net.Addr { return l.m.ln.Addr() }

// Dial implements raft.StreamLayer.
func (l *tagListener) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dial(string(address), l.tag, l.m.secret, timeout)
}
