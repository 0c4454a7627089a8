package quorum

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// op is a command on its way to the queue's group.
type op struct {
	cmd []byte
	// pos is an enqueue's ledger position, reported when the command is
	// applied (or fails).
	pos uint64
	// done receives the command's result, for a caller that waits.
	done chan result
	// retry: the command is proposed again when it fails for want of a
	// leader (settlements, attach, detach: applying one twice changes
	// nothing more), until retryFor passes.
	retry   bool
	expires time.Time
	// settle, until the batch is made, is a settlement not yet encoded:
	// settlements of one consumer that follow one another become one
	// command (a consumer acking message by message costs one log entry
	// per batch, not one per ack).
	settle *settlement
}

type settlement struct {
	key  ConsumerKey
	how  queue.Settlement
	seqs []uint64
}

type result struct {
	fx  *Effects
	err error
}

// The proposer's timing.
const (
	leaderWait = 5 * time.Second       // for a group to have a leader
	applyWait  = 10 * time.Second      // for a batch to be applied
	retryFor   = 60 * time.Second      // how long a retried command is tried
	retryPause = 50 * time.Millisecond // between tries
)

var (
	errNoLeader = errors.New("the queue's group has no leader")
	errStopped  = errors.New("the queue stopped on this node")
)

// proposer sends a queue's commands from this node to the group's leader
// in the order they were made: one batch at a time, by one goroutine that
// runs while there are commands. The leader's Raft batches them further
// (one log write for many publishes).
type proposer struct {
	q       *Queue
	mu      sync.Mutex
	ops     []op
	running bool
	closed  bool
	hint    string // the leader, as last learned (for a node that is not a member)
	// inflight holds a token per batch the leader applies and has yet to
	// hear the outcome of.
	inflight chan struct{}
	// ask is the member a node without a replica asks next for the leader
	// (only the proposer's goroutine uses it).
	ask int
}

// submit queues a command.
func (p *proposer) submit(o op) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.finish(o, result{err: errStopped})
		return
	}
	p.ops = append(p.ops, o)
	if p.inflight == nil {
		p.inflight = make(chan struct{}, maxInflight)
	}
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
}

// settle queues a settlement (tried again until applied).
func (p *proposer) settle(key ConsumerKey, how queue.Settlement, seqs []uint64) {
	p.submit(op{settle: &settlement{key: key, how: how, seqs: seqs}, retry: true})
}

// coalesce merges the settlements of a batch that follow one another for
// the same consumer and outcome, and encodes them.
func coalesce(batch []op) []op {
	out := batch[:0]
	for _, o := range batch {
		if o.settle != nil && len(out) > 0 {
			if prev := out[len(out)-1].settle; prev != nil && prev.key == o.settle.key && prev.how == o.settle.how {
				prev.seqs = append(prev.seqs, o.settle.seqs...)
				continue
			}
		}
		out = append(out, o)
	}
	for i := range out {
		if st := out[i].settle; st != nil {
			out[i].cmd = SettleCommand(now(), st.key, st.how, st.seqs)
			out[i].settle = nil
		}
	}
	return out
}

// call proposes a command and waits for its result.
func (p *proposer) call(cmd []byte) (*Effects, error) {
	return p.callAgain(cmd, 0)
}

// callAgain is call for a command that applying twice changes nothing
// more: one that fails for want of a leader (an election, a leadership
// transfer) is proposed again, for up to again.
func (p *proposer) callAgain(cmd []byte, again time.Duration) (*Effects, error) {
	done := make(chan result, 1)
	o := op{cmd: cmd, done: done}
	if again > 0 {
		o.retry, o.expires = true, time.Now().Add(again)
	}
	p.submit(o)
	r := <-done
	return r.fx, r.err
}

// close fails the commands not yet proposed; those in flight end as they
// do.
func (p *proposer) close() {
	p.mu.Lock()
	p.closed = true
	ops := p.ops
	p.ops = nil
	p.mu.Unlock()
	for _, o := range ops {
		p.finish(o, result{err: errStopped})
	}
}

func (p *proposer) leaderHint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hint
}

// maxBatch bounds the commands sent at once.
const maxBatch = 1024

func (p *proposer) run() {
	for {
		p.mu.Lock()
		n := min(len(p.ops), maxBatch)
		if n == 0 || p.closed {
			p.running = false
			p.mu.Unlock()
			return
		}
		batch := make([]op, n)
		copy(batch, p.ops)
		p.ops = append(p.ops[:0], p.ops[n:]...)
		p.mu.Unlock()
		batch = coalesce(batch)

		if r := p.q.raftOf(); r != nil && r.State() == raft.Leader {
			// Raft keeps the order of what the leader applies: the next
			// batch goes in while this one is replicated.
			futures := make([]raft.ApplyFuture, len(batch))
			for i, o := range batch {
				futures[i] = r.Apply(o.cmd, applyWait)
			}
			p.inflight <- struct{}{}
			go func() {
				defer func() { <-p.inflight }()
				p.conclude(batch, awaitAll(futures, make([]result, len(batch))))
				p.q.sendNudge()
			}()
			continue
		}
		p.conclude(batch, p.propose(batch))
	}
}

// maxInflight bounds the batches a leader has in flight.
const maxInflight = 64

// conclude ends a batch's commands with their results: those to retry go
// back to the front of the queue.
func (p *proposer) conclude(batch []op, results []result) {
	var again []op
	for i, o := range batch {
		r := results[i]
		if r.err != nil && o.retry && retryable(r.err) {
			if o.expires.IsZero() {
				o.expires = time.Now().Add(retryFor)
			}
			if time.Now().Before(o.expires) {
				again = append(again, o)
				continue
			}
		}
		p.finish(o, r)
	}
	if len(again) == 0 {
		return
	}
	time.Sleep(retryPause)
	p.mu.Lock()
	p.ops = append(again, p.ops...)
	if !p.running && !p.closed {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
}

// finish reports a command's result to whoever waits for it.
func (p *proposer) finish(o op, r result) {
	if o.pos != 0 {
		err := r.err
		switch {
		case err != nil:
			err = fmt.Errorf("%w: %v", queue.ErrRefused, err)
		case r.fx.Published == queue.Rejected:
			err = queue.ErrRefused
		}
		p.q.ledger.Report([]uint64{o.pos}, err)
	}
	if o.done != nil {
		o.done <- r
	}
	if r.err != nil && o.done == nil && o.pos == 0 {
		p.q.k.log.Warn("quorum queue: a command was not applied", "queue", p.q.cfg.Name, "err", r.err)
	}
}

// retryable reports whether a command may succeed if proposed again.
func retryable(err error) bool {
	return !errors.Is(err, errStopped)
}

// propose applies a batch through the leader and returns each command's
// result.
func (p *proposer) propose(batch []op) []result {
	results := make([]result, len(batch))
	fail := func(err error) []result {
		for i := range results {
			results[i].err = err
		}
		return results
	}
	deadline := time.Now().Add(leaderWait)
	for {
		leader := ""
		if r := p.q.raftOf(); r != nil {
			if r.State() == raft.Leader {
				return applyLocal(r, batch, results)
			}
			_, id := r.LeaderWithID()
			leader = string(id)
		} else if p.q.Deleted() {
			return fail(errStopped)
		} else {
			leader = p.findLeader()
		}
		if leader != "" {
			p.forward(leader, batch, results)
			// A member that does not lead applied nothing: try again
			// (the group may be electing, or have just elected).
			if !notLeader(results[0].err) || time.Now().After(deadline) {
				return results
			}
		}
		if time.Now().After(deadline) {
			return fail(errNoLeader)
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return fail(errStopped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// applyLocal applies a batch on this node, the leader.
func applyLocal(r *raft.Raft, batch []op, results []result) []result {
	futures := make([]raft.ApplyFuture, len(batch))
	for i, o := range batch {
		futures[i] = r.Apply(o.cmd, applyWait)
	}
	return awaitAll(futures, results)
}

// awaitAll waits for applied commands' results.
func awaitAll(futures []raft.ApplyFuture, results []result) []result {
	for i, f := range futures {
		if err := f.Error(); err != nil {
			results[i].err = err
			continue
		}
		fx, _ := f.Response().(*Effects)
		if fx == nil {
			results[i].err = errStopped
			continue
		}
		results[i].fx = fx
	}
	return results
}

// findLeader asks the queue's members which of them leads (for a node
// that is not a member).
func (p *proposer) findLeader() string {
	if h := p.leaderHint(); h != "" {
		return h
	}
	// Ask the running members in turn: each answers, or names the leader
	// when it knows it.
	n := len(p.q.cfg.Members)
	for i := range n {
		m := p.q.cfg.Members[(p.ask+i)%n]
		if p.q.k.o.Cluster != nil && p.q.k.o.Cluster.Running(m) {
			p.ask = (p.ask + i + 1) % n
			return m
		}
	}
	return ""
}

// forward sends a batch to the leader and returns the results it answers.
func (p *proposer) forward(leader string, batch []op, results []result) []result {
	clear(results) // from an earlier try
	c := p.q.k.o.Cluster
	if c == nil {
		for i := range results {
			results[i].err = errNoLeader
		}
		return results
	}
	e := cluster.Fields{}
	e.Uint(p.q.cfg.ID)
	e.Uint(uint64(len(batch)))
	for _, o := range batch {
		e.Bin(o.cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyWait)
	defer cancel()
	if r := p.q.raftOf(); r != nil {
		// A member gives up on a leader its group has replaced (one cut
		// off from the others may never answer).
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if _, id := r.LeaderWithID(); id != "" && string(id) != leader {
						cancel()
						return
					}
				}
			}
		}()
	}
	answer, err := c.Call(ctx, leader, methodApply, e)
	if err == nil {
		err = decodeResults(answer, results)
	}
	if err != nil {
		p.mu.Lock()
		p.hint = ""
		if hint, ok := strings.CutPrefix(err.Error(), notLeaderText); ok && hint != "" && hint != leader {
			p.hint = hint
		}
		p.mu.Unlock()
		for i := range results {
			results[i].err = err
		}
		return results
	}
	p.mu.Lock()
	p.hint = leader
	p.mu.Unlock()
	return results
}

// notLeader reports whether err is a member's answer that it does not
// lead (so it applied nothing).
func notLeader(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), notLeaderText)
}

// notLeaderText starts the error a member that does not lead answers,
// followed by the leader's name when it knows it.
const notLeaderText = "quorum: not the leader; leader: "

// onApply answers a forwarded batch on the leader.
func (k *Kind) onApply(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	id := d.Uint()
	n := d.Count()
	batch := make([]op, 0, n)
	for range n {
		batch = append(batch, op{cmd: d.Bin()})
	}
	if d.Err() != nil || d.Left() != 0 {
		return nil, cluster.ErrMalformed
	}
	q := k.queue(id)
	if q == nil {
		return nil, fmt.Errorf("quorum: no queue %d here", id)
	}
	r := q.raftOf()
	if r == nil {
		return nil, errors.New(notLeaderText)
	}
	if r.State() != raft.Leader {
		_, leader := r.LeaderWithID()
		return nil, errors.New(notLeaderText + string(leader))
	}
	results := applyLocal(r, batch, make([]result, len(batch)))
	q.sendNudge()
	e := cluster.Fields{}
	for _, res := range results {
		if res.err != nil {
			e.Uint(1)
			e.Str(res.err.Error())
			continue
		}
		e.Uint(0)
		fx := res.fx
		e.Uint(uint64(fx.Published))
		e.Uint(uint64(fx.Purged))
		e.Bool(fx.Refused)
		e.Uint(uint64(fx.Ready))
		e.Uint(uint64(fx.Consumers))
		e.Bool(fx.Ok)
		if fx.Ok {
			e.Uint(uint64(fx.Left))
			encodeEntry(&e, fx.Got)
		}
	}
	return e, nil
}

// decodeResults reads a leader's answer to a forwarded batch.
func decodeResults(b []byte, results []result) error {
	d := cluster.ReadFields(b)
	for i := range results {
		if d.Uint() == 1 {
			results[i].err = &wire.Error{Code: wire.InternalError, Text: d.Str()}
			continue
		}
		fx := &Effects{Published: queue.PublishResult(d.Uint()), Purged: int(d.Uint()), Refused: d.Bool(),
			Ready: int(d.Uint()), Consumers: int(d.Uint()), Ok: d.Bool()}
		if fx.Ok {
			fx.Left = int(d.Uint())
			fx.Got = decodeEntry(d)
		}
		results[i].fx = fx
	}
	if d.Err() != nil {
		return d.Err()
	}
	return nil
}

// sendNudge, on the leader, appends a no-op when deliveries were applied
// for consumers on other nodes: the append carries the commit index that
// makes those nodes apply them (the leader would otherwise tell them only
// with its next heartbeat).
func (q *Queue) sendNudge() {
	q.prop.mu.Lock()
	busy := len(q.prop.ops) > 0 // the next batch carries it
	q.prop.mu.Unlock()
	if busy {
		return
	}
	q.mu.Lock()
	nudge, r := q.nudge, q.r
	q.nudge = false
	q.mu.Unlock()
	if nudge && r != nil && r.State() == raft.Leader {
		r.Apply(NoopCommand(now()), applyWait)
	}
}
