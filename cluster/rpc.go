package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Node-to-node calls: a request names a method and carries bytes; the
// answer is bytes or an error's text. Each peer address has one connection
// at a time, on which calls are pipelined and answered in any order.
//
// A frame is: length (4, of what follows) | kind (1) | call id (8) |
// method (1) | payload.
const (
	frameRequest  byte = 1
	frameResponse byte = 2
	frameError    byte = 3
	frameCast     byte = 4 // a request without an answer, handled in order

	frameHeader = 1 + 8 + 1
	// maxCallFrame is above the largest message a client may publish
	// (max_message_size is at most 512 MiB), which a forwarded publish
	// carries whole.
	maxCallFrame = 600 << 20
	// writeTimeout bounds a write to a peer that stopped reading.
	writeTimeout = 10 * time.Second
)

// Method numbers a kind of call. The cluster's own calls are below 32;
// the broker registers the rest.
type Method byte

// The cluster's own methods.
const (
	methodHello Method = iota + 1
	methodApply
	methodJoin
	methodRemove
	methodAwait
	methodSees
	methodGroup // a Raft group's RPC (group.go)
	// methodGroupHeartbeat is a Raft group's heartbeat, a methodGroup
	// call whose frames (request and answer) may wait for a shared flush.
	methodGroupHeartbeat
)

// lazyFlush is how long a frame of a method that may wait sits in its
// connection's buffer at most: every group's leader heartbeats each
// follower 10 times a second, and heartbeats that fall within one window
// share one write instead of paying one each.
const lazyFlush = 5 * time.Millisecond

// waits reports whether m's frames may wait for a shared flush.
func (m Method) waits() bool { return m == methodGroupHeartbeat }

// Handler answers a call. It runs on its own goroutine for a call, and on
// the connection's reader, in the order they were sent, for casts (whose
// answer is dropped): a handler of casts must not block.
type Handler func(payload []byte) ([]byte, error)

// RemoteError is an error a peer's handler returned.
type RemoteError struct{ Text string }

func (e *RemoteError) Error() string { return e.Text }

// errPeerGone is a call's error when its connection closes first.
var errPeerGone = errors.New("connection to the peer closed")

// caller keeps one connection per peer and matches answers to calls.
type caller struct {
	secret []byte
	mu     sync.Mutex
	peers  map[string]*peerConn
	closed bool
}

type peerConn struct {
	c       net.Conn
	w       *frameWriter
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan callResult
	err     error // set once the connection is dead
}

type callResult struct {
	data []byte
	err  error
}

func newCaller(secret []byte) *caller {
	return &caller{secret: secret, peers: map[string]*peerConn{}}
}

// call sends a request to addr and waits for its answer until ctx ends.
func (k *caller) call(ctx context.Context, addr string, m Method, payload []byte) ([]byte, error) {
	p, err := k.peer(ctx, addr)
	if err != nil {
		return nil, err
	}
	ch := make(chan callResult, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return nil, p.err
	}
	p.next++
	id := p.next
	p.pending[id] = ch
	p.mu.Unlock()
	if err := p.send(frameRequest, id, m, payload); err != nil {
		p.fail(err)
		k.drop(addr, p)
		return nil, err
	}
	select {
	case r := <-ch:
		return r.data, r.err
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
		return nil, ctx.Err()
	}
}

// cast sends a request that gets no answer; casts from one goroutine to
// one peer are handled there in the order they were sent.
func (k *caller) cast(ctx context.Context, addr string, m Method, payload []byte) error {
	p, err := k.peer(ctx, addr)
	if err != nil {
		return err
	}
	if err := p.send(frameCast, 0, m, payload); err != nil {
		p.fail(err)
		k.drop(addr, p)
		return err
	}
	return nil
}

// peer returns the connection to addr, dialling one when there is none.
func (k *caller) peer(ctx context.Context, addr string) (*peerConn, error) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil, net.ErrClosed
	}
	p := k.peers[addr]
	k.mu.Unlock()
	if p != nil {
		return p, nil
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	c, err := dial(addr, tagCall, k.secret, timeout)
	if err != nil {
		return nil, err
	}
	p = &peerConn{c: c, w: newFrameWriter(c), pending: map[uint64]chan callResult{}}
	k.mu.Lock()
	if old := k.peers[addr]; old != nil || k.closed {
		k.mu.Unlock()
		c.Close()
		if old == nil {
			return nil, net.ErrClosed
		}
		return old, nil
	}
	k.peers[addr] = p
	k.mu.Unlock()
	go func() {
		p.fail(p.readAnswers())
		k.drop(addr, p)
	}()
	return p, nil
}

func (k *caller) drop(addr string, p *peerConn) {
	k.mu.Lock()
	if k.peers[addr] == p {
		delete(k.peers, addr)
	}
	k.mu.Unlock()
	p.c.Close()
}

func (k *caller) close() {
	k.mu.Lock()
	k.closed = true
	peers := k.peers
	k.peers = map[string]*peerConn{}
	k.mu.Unlock()
	for _, p := range peers {
		p.fail(errPeerGone)
		p.c.Close()
	}
}

func (p *peerConn) send(kind byte, id uint64, m Method, payload []byte) error {
	return p.w.write(kind, id, m, payload)
}

// frameWriter writes frames to one connection for any number of
// goroutines. Writers that come together share a flush: a writer that
// sees another waiting leaves the flush to it (the last one flushes), so
// a burst of calls (a thousand groups' heartbeats) costs one write
// syscall, not one each. A frame of a method that may wait is flushed
// within lazyFlush, by a timer, unless another frame flushes it first.
type frameWriter struct {
	c       net.Conn // nil in tests that write to a buffer
	mu      sync.Mutex
	w       *bufio.Writer
	waiting atomic.Int32
	later   *time.Timer // the lazy flush; armed says it is set
	armed   bool
}

func newFrameWriter(c net.Conn) *frameWriter {
	return &frameWriter{c: c, w: bufio.NewWriterSize(c, 64<<10)}
}

// write writes one frame; a peer that does not take it within
// writeTimeout fails the write.
func (f *frameWriter) write(kind byte, id uint64, m Method, payload []byte) error {
	var hdr [4 + frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(frameHeader+len(payload)))
	hdr[4] = kind
	binary.BigEndian.PutUint64(hdr[5:], id)
	hdr[13] = byte(m)
	f.waiting.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	others := f.waiting.Add(-1)
	if f.c != nil {
		_ = f.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := f.w.Write(payload); err != nil {
		return err
	}
	if others > 0 {
		return nil // the next writer flushes
	}
	if m.waits() {
		if !f.armed {
			f.armed = true
			if f.later == nil {
				f.later = time.AfterFunc(lazyFlush, f.flushLater)
			} else {
				f.later.Reset(lazyFlush)
			}
		}
		return nil
	}
	return f.w.Flush()
}

// flushLater is the lazy flush: it writes what waits in the buffer.
func (f *frameWriter) flushLater() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
	if f.w.Buffered() == 0 {
		return
	}
	if f.c != nil {
		_ = f.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if err := f.w.Flush(); err != nil && f.c != nil {
		f.c.Close() // its reader ends, and with it the calls waiting on it
	}
}

// readFrame reads one frame.
func readFrame(r *bufio.Reader) (kind byte, id uint64, m Method, payload []byte, err error) {
	var hdr [4 + frameHeader]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < frameHeader || n > maxCallFrame {
		err = fmt.Errorf("cluster call frame of %d bytes", n)
		return
	}
	// The payload is allocated as its bytes arrive, not as the header
	// claims: a frame that claims hundreds of MiB and stops short costs
	// what it sent, not the claim.
	size := int(n - frameHeader)
	payload = make([]byte, 0, min(size, frameChunk))
	for len(payload) < size {
		if len(payload) == cap(payload) {
			payload = slices.Grow(payload, min(cap(payload), size-len(payload)))
		}
		k, rerr := io.ReadFull(r, payload[len(payload):min(cap(payload), size)])
		payload = payload[:len(payload)+k]
		if rerr != nil {
			return 0, 0, 0, nil, rerr
		}
	}
	return hdr[4], binary.BigEndian.Uint64(hdr[5:]), Method(hdr[13]), payload, nil
}

// frameChunk is how much of a frame's payload is allocated before any of
// it has arrived; a larger one grows as it comes.
const frameChunk = 64 << 10

func (p *peerConn) readAnswers() error {
	r := bufio.NewReaderSize(p.c, 64<<10)
	for {
		kind, id, _, payload, err := readFrame(r)
		if err != nil {
			return err
		}
		p.mu.Lock()
		ch := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		if ch == nil {
			continue
		}
		switch kind {
		case frameResponse:
			ch <- callResult{data: payload}
		case frameError:
			ch <- callResult{err: &RemoteError{Text: string(payload)}}
		}
	}
}

func (p *peerConn) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = fmt.Errorf("%w: %v", errPeerGone, err)
	}
	for id, ch := range p.pending {
		ch <- callResult{err: p.err}
		delete(p.pending, id)
	}
}

// callServer answers the calls of connections tagged tagCall.
type callServer struct {
	ln  net.Listener
	log *slog.Logger

	mu       sync.RWMutex
	handlers map[Method]Handler
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newCallServer(ln net.Listener, log *slog.Logger) *callServer {
	return &callServer{ln: ln, log: log, handlers: map[Method]Handler{}, conns: map[net.Conn]struct{}{}}
}

func (s *callServer) handle(m Method, h Handler) {
	s.mu.Lock()
	s.handlers[m] = h
	s.mu.Unlock()
}

func (s *callServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *callServer) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := newFrameWriter(c)
	var calls sync.WaitGroup
	defer calls.Wait()
	for {
		kind, id, m, payload, err := readFrame(r)
		if err != nil {
			return
		}
		if kind != frameRequest && kind != frameCast {
			continue
		}
		s.mu.RLock()
		h := s.handlers[m]
		s.mu.RUnlock()
		if kind == frameCast {
			if h != nil {
				_, _ = h(payload)
			}
			continue
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			var out []byte
			err := fmt.Errorf("unknown cluster method %d", m)
			if h != nil {
				out, err = h(payload)
			}
			if err != nil {
				_ = w.write(frameError, id, m, []byte(err.Error()))
				return
			}
			_ = w.write(frameResponse, id, m, out)
		}()
	}
}

func (s *callServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
