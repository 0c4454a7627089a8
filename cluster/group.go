package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Raft groups other than the metadata one (the quorum queues', a thousand
// or more on a node) do not each get connections of their own: their RPCs
// are calls (methodGroup) on the node's one connection per peer, tagged
// with the group's number. A group costs its transport a map entry and two
// channels; no goroutine and no timer of its own.
//
// A group call's payload is: group (uvarint) | RPC type (1) | request,
// then, for InstallSnapshot, the snapshot's bytes. The answer is the
// encoded response, or an error.

// The RPC types a group call carries.
const (
	groupAppendEntries byte = iota
	groupRequestVote
	groupRequestPreVote
	groupInstallSnapshot
	groupTimeoutNow
)

const (
	// groupCallTimeout bounds a group call (and the receiver's wait for its
	// Raft's answer), but for snapshots.
	groupCallTimeout = 5 * time.Second
	// snapshotRate is the slowest transfer (bytes a second) a snapshot's
	// call allows for, on top of groupCallTimeout.
	snapshotRate = 1 << 20
	// unreachableFor is how long group calls to a peer that could not be
	// reached fail at once, before one of them tries again.
	unreachableFor = 250 * time.Millisecond
)

// GroupTransport is a raft.Transport for one Raft group, over the node's
// cluster connections. It implements raft.WithClose and raft.WithPreVote.
type GroupTransport struct {
	node     *Node
	group    uint64
	consumer chan raft.RPC
	// heartbeat is raft's fast path for heartbeats, when it set one.
	heartbeat atomic.Pointer[func(raft.RPC)]
	// ctx ends when the transport closes: it stops the receiving and the
	// calls in flight.
	ctx    context.Context
	cancel context.CancelFunc
}

var (
	_ raft.Transport   = (*GroupTransport)(nil)
	_ raft.WithClose   = (*GroupTransport)(nil)
	_ raft.WithPreVote = (*GroupTransport)(nil)
)

// groups are the Raft groups' transports open on a node, and the peers
// their calls could not reach lately.
type groups struct {
	mu     sync.RWMutex
	open   map[uint64]*GroupTransport
	closed bool // the node closed

	downMu sync.RWMutex
	down   map[string]*unreachable // by cluster address
}

// unreachable is a peer whose connection could not be made.
type unreachable struct {
	until   time.Time // calls fail at once until then
	retrier bool      // one call is trying the peer again
	err     error
}

// GroupTransport returns the raft.Transport of the Raft group numbered
// group on this node: its RPCs travel over the node's cluster connections,
// tagged with the group. Server addresses are the nodes' cluster addresses
// (Node.Addr), server ids are whatever the group's user chooses (the quorum
// queues will use node names). Closing it (it implements raft.WithClose)
// stops it receiving; RPCs for a group with no open transport on the
// receiving node fail with an error. Opening a group's transport again
// closes the one opened before; after the node closed, the transport
// returned is closed.
func (n *Node) GroupTransport(group uint64) *GroupTransport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &GroupTransport{node: n, group: group, consumer: make(chan raft.RPC), ctx: ctx, cancel: cancel}
	g := &n.groups
	g.mu.Lock()
	old := g.open[group]
	if g.closed {
		cancel()
	} else {
		if g.open == nil {
			g.open = map[uint64]*GroupTransport{}
		}
		g.open[group] = t
	}
	g.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return t
}

// lookup returns the open transport of group, or nil.
func (g *groups) lookup(group uint64) *GroupTransport {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.open[group]
}

// close closes every group's transport: the node is closing.
func (g *groups) close() {
	g.mu.Lock()
	g.closed = true
	open := g.open
	g.open = nil
	g.mu.Unlock()
	for _, t := range open {
		t.cancel()
	}
}

// admit lets a call to addr go unless the peer could not be reached
// lately; once unreachableFor has passed, one call (retry) tries again
// while the others still fail.
func (g *groups) admit(addr string) (retry bool, err error) {
	g.downMu.RLock()
	u := g.down[addr]
	g.downMu.RUnlock()
	if u == nil {
		return false, nil
	}
	g.downMu.Lock()
	defer g.downMu.Unlock()
	if u = g.down[addr]; u == nil {
		return false, nil
	}
	if u.retrier || time.Now().Before(u.until) {
		return false, u.err
	}
	u.retrier = true
	return true, nil
}

// settle notes what a call admitted to addr learnt of the peer: reached
// (it answered, or a connection to it is up), or not.
func (g *groups) settle(addr string, retry, reached bool, err error) {
	if reached && !retry {
		return
	}
	g.downMu.Lock()
	defer g.downMu.Unlock()
	if reached {
		delete(g.down, addr)
		return
	}
	if g.down == nil {
		g.down = map[string]*unreachable{}
	}
	g.down[addr] = &unreachable{until: time.Now().Add(unreachableFor),
		err: fmt.Errorf("cluster: %s unreachable: %w", addr, err)}
}

// connected reports whether the caller has a connection to addr.
func (k *caller) connected(addr string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.peers[addr] != nil
}

// groupCall sends a group call (methodGroup, or methodGroupHeartbeat) to
// the node at addr; a peer that could not be reached lately is not
// dialled again by every group at once.
func (n *Node) groupCall(ctx context.Context, addr string, m Method, payload []byte) ([]byte, error) {
	retry, err := n.groups.admit(addr)
	if err != nil {
		return nil, err
	}
	out, err := n.caller.call(ctx, addr, m, payload)
	// A call that failed on a connection that is up (a slow peer, a
	// group not open there) reached the peer.
	reached := err == nil || isRemote(err) || n.caller.connected(addr)
	n.groups.settle(addr, retry, reached, err)
	return out, err
}

func isRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}

// onGroupCall answers a group call: the group's Raft answers the RPC.
func (n *Node) onGroupCall(payload []byte) ([]byte, error) {
	group, rpc, timeout, err := parseGroupCall(payload)
	if err != nil {
		return nil, err
	}
	t := n.groups.lookup(group)
	if t == nil {
		return nil, fmt.Errorf("raft group %d is not open on node %s", group, n.cfg.Name)
	}
	return t.serve(rpc, timeout)
}

// parseGroupCall decodes a group call's payload into the RPC it carries,
// and how long its receiver waits for its Raft's answer.
func parseGroupCall(payload []byte) (group uint64, rpc raft.RPC, timeout time.Duration, err error) {
	r := wireReader{b: payload}
	group = r.uvarint()
	typ := r.byte()
	req := newRequest(typ)
	if r.err == nil && req == nil {
		return 0, rpc, 0, fmt.Errorf("unknown raft RPC type %d", typ)
	}
	r.fields(wireFields(req))
	if r.err != nil {
		return 0, rpc, 0, r.err
	}
	rpc.Command, timeout = req, groupCallTimeout
	if snap, ok := req.(*raft.InstallSnapshotRequest); ok {
		if snap.Size != int64(len(r.b)) {
			return 0, rpc, 0, fmt.Errorf("%w: a snapshot of %d bytes carries %d", errMalformed, snap.Size, len(r.b))
		}
		rpc.Reader, timeout = bytes.NewReader(r.b), snapshotTimeout(snap.Size)
	} else if len(r.b) > 0 {
		return 0, rpc, 0, errTrailing
	}
	return group, rpc, timeout, nil
}

func newRequest(typ byte) any {
	switch typ {
	case groupAppendEntries:
		return new(raft.AppendEntriesRequest)
	case groupRequestVote:
		return new(raft.RequestVoteRequest)
	case groupRequestPreVote:
		return new(raft.RequestPreVoteRequest)
	case groupInstallSnapshot:
		return new(raft.InstallSnapshotRequest)
	case groupTimeoutNow:
		return new(raft.TimeoutNowRequest)
	}
	return nil
}

func snapshotTimeout(size int64) time.Duration {
	return groupCallTimeout + time.Duration(size/snapshotRate)*time.Second
}

// errGroupTimeout answers an RPC the group's Raft did not answer in time.
var errGroupTimeout = errors.New("the raft group did not answer in time")

// serve hands rpc to the group's Raft and waits for its answer, for at
// most timeout or until the transport closes.
func (t *GroupTransport) serve(rpc raft.RPC, timeout time.Duration) ([]byte, error) {
	answer := make(chan raft.RPCResponse, 1) // Raft never blocks on an answer we gave up on
	rpc.RespChan = answer
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	if err := t.deliver(rpc, timer.C); err != nil {
		return nil, err
	}
	select {
	case res := <-answer:
		if res.Error != nil {
			return nil, res.Error
		}
		return encodeResponse(res.Response)
	case <-t.ctx.Done():
		return nil, raft.ErrTransportShutdown
	case <-timer.C:
		return nil, errGroupTimeout
	}
}

// deliver passes rpc to the heartbeat handler when it is a heartbeat and
// raft set one, and to the consumer channel otherwise.
func (t *GroupTransport) deliver(rpc raft.RPC, timeout <-chan time.Time) error {
	if isHeartbeat(rpc.Command) {
		if fn := t.heartbeat.Load(); fn != nil {
			(*fn)(rpc)
			return nil
		}
	}
	select {
	case t.consumer <- rpc:
		return nil
	case <-t.ctx.Done():
		return raft.ErrTransportShutdown
	case <-timeout:
		return errGroupTimeout
	}
}

// isHeartbeat reports whether cmd is what raft's leader sends as a
// heartbeat: an AppendEntries with a term and a leader and nothing else
// (NetworkTransport's test).
func isHeartbeat(cmd any) bool {
	req, ok := cmd.(*raft.AppendEntriesRequest)
	if !ok {
		return false
	}
	leader := req.Addr
	if len(leader) == 0 {
		//lint:ignore SA1019 an old leader names itself there only
		leader = req.Leader
	}
	return req.Term != 0 && leader != nil && req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// encodeResponse encodes the response a group's Raft gave.
func encodeResponse(resp any) ([]byte, error) {
	fields := wireFields(resp)
	if fields == nil {
		return nil, fmt.Errorf("raft answered a %T", resp)
	}
	return appendFields(make([]byte, 0, wireSize(fields)), fields), nil
}

// request encodes a group call carrying the request args of type typ,
// with room for extra bytes more.
func (t *GroupTransport) request(typ byte, args any, extra int) []byte {
	fields := wireFields(args)
	b := make([]byte, 0, binary.MaxVarintLen64+1+wireSize(fields)+extra)
	b = binary.AppendUvarint(b, t.group)
	b = append(b, typ)
	return appendFields(b, fields)
}

// roundTrip sends a group call (method m) to target and decodes its
// answer into resp.
func (t *GroupTransport) roundTrip(target raft.ServerAddress, m Method, payload []byte, resp any, timeout time.Duration) error {
	if t.ctx.Err() != nil {
		return raft.ErrTransportShutdown
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	out, err := t.node.groupCall(ctx, string(target), m, payload)
	if err != nil {
		return err
	}
	return decodeMessage(out, resp)
}

// Consumer implements raft.Transport.
func (t *GroupTransport) Consumer() <-chan raft.RPC { return t.consumer }

// LocalAddr implements raft.Transport: the node's cluster address.
func (t *GroupTransport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(t.node.addr) }

// AppendEntriesPipeline implements raft.Transport: pipelining is not
// supported, so raft sends one AppendEntries (a batch of up to
// MaxAppendEntries entries) at a time to each follower. A pipeline over
// the calls (answers delivered in order, the receiver handing requests to
// raft in order) committed a third fewer commands per second in
// BenchmarkGroupApply: raft then sends smaller batches.
func (t *GroupTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries implements raft.Transport.
func (t *GroupTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	m := methodGroup
	if isHeartbeat(args) {
		m = methodGroupHeartbeat // may wait a few milliseconds for company
	}
	return t.roundTrip(target, m, t.request(groupAppendEntries, args, 0), resp, groupCallTimeout)
}

// RequestVote implements raft.Transport.
func (t *GroupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.roundTrip(target, methodGroup, t.request(groupRequestVote, args, 0), resp, groupCallTimeout)
}

// RequestPreVote implements raft.WithPreVote.
func (t *GroupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.roundTrip(target, methodGroup, t.request(groupRequestPreVote, args, 0), resp, groupCallTimeout)
}

// TimeoutNow implements raft.Transport.
func (t *GroupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.roundTrip(target, methodGroup, t.request(groupTimeoutNow, args, 0), resp, groupCallTimeout)
}

// InstallSnapshot implements raft.Transport: the snapshot (args.Size
// bytes of data) travels whole in the call.
func (t *GroupTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if args.Size < 0 || args.Size > maxCallFrame {
		return fmt.Errorf("a snapshot of %d bytes is more than a cluster call carries", args.Size)
	}
	payload := t.request(groupInstallSnapshot, args, int(args.Size))
	if len(payload)+int(args.Size) > maxCallFrame-frameHeader {
		return fmt.Errorf("a snapshot of %d bytes is more than a cluster call carries", args.Size)
	}
	head := len(payload)
	payload = append(payload, make([]byte, args.Size)...)
	if _, err := io.ReadFull(data, payload[head:]); err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	return t.roundTrip(target, methodGroup, payload, resp, snapshotTimeout(args.Size))
}

// EncodePeer implements raft.Transport: a peer is its cluster address.
func (t *GroupTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (t *GroupTransport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport: heartbeats go to cb, on
// the call's goroutine, rather than to the consumer channel.
func (t *GroupTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.heartbeat.Store(nil)
		return
	}
	t.heartbeat.Store(&cb)
}

// Close implements raft.WithClose: the transport stops receiving, and its
// calls in flight fail.
func (t *GroupTransport) Close() error {
	t.cancel()
	g := &t.node.groups
	g.mu.Lock()
	if g.open[t.group] == t {
		delete(g.open, t.group)
	}
	g.mu.Unlock()
	return nil
}

// The wire form of raft's messages: every field in order, unsigned
// integers as uvarints, signed as varints, booleans as a byte, byte slices
// as their length plus one (0 is nil) and their bytes. Log entries are a
// count plus one (0 is nil), then each entry's index and term as varints
// of their difference from the previous entry's (the first's from 0), its
// type, data and extensions, and its AppendedAt (see appendTime).

var (
	errMalformed = errors.New("malformed raft group message")
	errTrailing  = fmt.Errorf("%w: trailing bytes", errMalformed)
)

// minLogBytes is the fewest bytes a log entry takes on the wire: a
// decoder allocates entries only for as many as the bytes left can hold.
const minLogBytes = 6

// wireFields returns pointers to a message's fields in their wire order,
// nil for a value that is not one of raft's messages.
func wireFields(m any) []any {
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		//lint:ignore SA1019 raft still sets it: every field travels
		return withHeader(&m.RPCHeader, &m.Term, &m.Leader, &m.PrevLogEntry, &m.PrevLogTerm, &m.Entries, &m.LeaderCommitIndex)
	case *raft.AppendEntriesResponse:
		return withHeader(&m.RPCHeader, &m.Term, &m.LastLog, &m.Success, &m.NoRetryBackoff)
	case *raft.RequestVoteRequest:
		//lint:ignore SA1019 raft still sets it: every field travels
		return withHeader(&m.RPCHeader, &m.Term, &m.Candidate, &m.LastLogIndex, &m.LastLogTerm, &m.LeadershipTransfer)
	case *raft.RequestVoteResponse:
		return withHeader(&m.RPCHeader, &m.Term, &m.Peers, &m.Granted)
	case *raft.RequestPreVoteRequest:
		return withHeader(&m.RPCHeader, &m.Term, &m.LastLogIndex, &m.LastLogTerm)
	case *raft.RequestPreVoteResponse:
		return withHeader(&m.RPCHeader, &m.Term, &m.Granted)
	case *raft.InstallSnapshotRequest:
		return withHeader(&m.RPCHeader, &m.SnapshotVersion, &m.Term, &m.Leader, &m.LastLogIndex, &m.LastLogTerm,
			&m.Peers, &m.Configuration, &m.ConfigurationIndex, &m.Size)
	case *raft.InstallSnapshotResponse:
		return withHeader(&m.RPCHeader, &m.Term, &m.Success)
	case *raft.TimeoutNowRequest:
		return withHeader(&m.RPCHeader)
	case *raft.TimeoutNowResponse:
		return withHeader(&m.RPCHeader)
	}
	return nil
}

func withHeader(h *raft.RPCHeader, rest ...any) []any {
	return append(append(make([]any, 0, 3+len(rest)), &h.ProtocolVersion, &h.ID, &h.Addr), rest...)
}

// wireSize is at least the size of fields' wire form.
func wireSize(fields []any) int {
	size := 0
	for _, f := range fields {
		size += binary.MaxVarintLen64
		switch f := f.(type) {
		case *[]byte:
			size += len(*f)
		case *[]*raft.Log:
			for _, l := range *f {
				size += 4*binary.MaxVarintLen64 + 2 + len(l.Data) + len(l.Extensions)
			}
		}
	}
	return size
}

// appendFields appends the wire form of fields (from wireFields) to b.
func appendFields(b []byte, fields []any) []byte {
	for _, f := range fields {
		switch f := f.(type) {
		case *uint64:
			b = binary.AppendUvarint(b, *f)
		case *int64:
			b = binary.AppendVarint(b, *f)
		case *raft.ProtocolVersion:
			b = binary.AppendVarint(b, int64(*f))
		case *raft.SnapshotVersion:
			b = binary.AppendVarint(b, int64(*f))
		case *bool:
			b = appendBool(b, *f)
		case *[]byte:
			b = appendBytes(b, *f)
		case *[]*raft.Log:
			b = appendLogs(b, *f)
		default:
			panic(fmt.Sprintf("cluster: no wire form for %T", f))
		}
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendLogs(b []byte, logs []*raft.Log) []byte {
	if logs == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(logs))+1)
	var prev raft.Log
	for _, l := range logs {
		b = binary.AppendVarint(b, int64(l.Index-prev.Index))
		b = binary.AppendVarint(b, int64(l.Term-prev.Term))
		b = append(b, byte(l.Type))
		b = appendBytes(b, l.Data)
		b = appendBytes(b, l.Extensions)
		b = appendTime(b, l.AppendedAt, prev.AppendedAt)
		prev = *l
	}
	return b
}

// An entry's AppendedAt is one byte when it is zero or the previous
// entry's (raft appends a batch at one time), and otherwise Unix seconds
// and nanoseconds after it. Its monotonic reading and location are lost.
const (
	timeZero byte = iota
	timeSame
	timeAt
)

func appendTime(b []byte, t, prev time.Time) []byte {
	switch {
	case t.IsZero():
		return append(b, timeZero)
	case t.Equal(prev):
		return append(b, timeSame)
	}
	b = append(b, timeAt)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decodeMessage decodes the whole of b into m, one of raft's messages.
func decodeMessage(b []byte, m any) error {
	fields := wireFields(m)
	if fields == nil {
		return fmt.Errorf("cluster: no wire form for %T", m)
	}
	r := wireReader{b: b}
	r.fields(fields)
	if r.err == nil && len(r.b) > 0 {
		r.err = errTrailing
	}
	return r.err
}

// wireReader decodes the wire form; its first error sticks. Byte slices
// it returns share the input's bytes.
type wireReader struct {
	b   []byte
	err error
}

// fields decodes into fields (from wireFields) in order.
func (r *wireReader) fields(fields []any) {
	for _, f := range fields {
		switch f := f.(type) {
		case *uint64:
			*f = r.uvarint()
		case *int64:
			*f = r.varint()
		case *raft.ProtocolVersion:
			*f = raft.ProtocolVersion(r.varint())
		case *raft.SnapshotVersion:
			*f = raft.SnapshotVersion(r.varint())
		case *bool:
			*f = r.bool()
		case *[]byte:
			*f = r.bytes()
		case *[]*raft.Log:
			*f = r.logs()
		default:
			panic(fmt.Sprintf("cluster: no wire form for %T", f))
		}
	}
}

func (r *wireReader) fail() { r.err = errMalformed }

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *wireReader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail()
	return false
}

func (r *wireReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) logs() []*raft.Log {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(r.b)/minLogBytes) {
		r.fail()
		return nil
	}
	logs := make([]raft.Log, n)
	out := make([]*raft.Log, n)
	var prev raft.Log
	for i := range logs {
		l := &logs[i]
		l.Index = prev.Index + uint64(r.varint())
		l.Term = prev.Term + uint64(r.varint())
		l.Type = raft.LogType(r.byte())
		l.Data = r.bytes()
		l.Extensions = r.bytes()
		l.AppendedAt = r.time(prev.AppendedAt)
		out[i], prev = l, *l
	}
	if r.err != nil {
		return nil
	}
	return out
}

func (r *wireReader) time(prev time.Time) time.Time {
	switch r.byte() {
	case timeZero:
		return time.Time{}
	case timeSame:
		return prev
	case timeAt:
		sec, nsec := r.varint(), r.uvarint()
		if nsec >= uint64(time.Second) {
			r.fail()
		}
		if r.err != nil {
			return time.Time{}
		}
		if t := time.Unix(sec, int64(nsec)); !t.IsZero() {
			return t
		}
		return time.Time{}
	}
	r.fail()
	return time.Time{}
}
