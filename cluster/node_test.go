package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listState is a StateMachine that keeps the commands it applied.
type listState struct {
	mu   sync.Mutex
	cmds []string
}

func (s *listState) Apply(_ uint64, cmd []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(cmd) == "refuse" {
		return errors.New("refused")
	}
	s.cmds = append(s.cmds, string(cmd))
	return len(s.cmds)
}

func (s *listState) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.cmds)
}

func (s *listState) Restore(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = nil
	if data == nil {
		return nil
	}
	return json.Unmarshal(data, &s.cmds)
}

func (s *listState) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cmds)
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

type testNode struct {
	*Node
	state  *listState
	stores Stores
}

func startNode(t *testing.T, name, addr string, seeds []string, secret string, stores *Stores) *testNode {
	t.Helper()
	if stores == nil {
		mem := raft.NewInmemStore()
		stores = &Stores{Log: mem, Stable: mem, Snapshots: raft.NewInmemSnapshotStore()}
	}
	st := &listState{}
	n, err := Start(Config{Name: name, Listen: addr, Seeds: seeds, Secret: []byte(secret), Stores: *stores, State: st,
		ElectionTimeout: 300 * time.Millisecond, Reset: func() (Stores, error) {
			mem := raft.NewInmemStore()
			return Stores{Log: mem, Stable: mem, Snapshots: raft.NewInmemSnapshotStore()}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{Node: n, state: st, stores: *stores}
}

// waitFor waits until cond holds, for 20 s at most (tests and benchmarks).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClusterFormsAndReplicates(t *testing.T) {
	addrs := freeAddrs(t, 3)
	var nodes []*testNode
	// Started in reverse order, the last one a while after the others.
	for i := 2; i >= 0; i-- {
		n := startNode(t, fmt.Sprintf("warren@n%d", i), addrs[i], addrs, "s3cret", nil)
		defer n.Close()
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := n.Ready(ctx(t)); err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
	}
	// Commands from every node, the leader and the followers.
	for i, n := range nodes {
		res, err := n.Replicate(ctx(t), []byte(fmt.Sprintf("cmd%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if res != i+1 {
			t.Fatalf("node %s: result %v, want %d", n.Name(), res, i+1)
		}
	}
	res, err := nodes[1].Replicate(ctx(t), []byte("refuse"))
	if err != nil || res == nil || res.(error).Error() != "refused" {
		t.Fatalf("a refused command: %v, %v", res, err)
	}
	want := []string{"cmd0", "cmd1", "cmd2"}
	for _, n := range nodes {
		waitFor(t, n.Name()+" to apply", func() bool { return slices.Equal(n.state.list(), want) })
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s sees %d members: %+v", n.Name(), len(ms), ms)
		}
	}
	waitFor(t, "every node to see the others running", func() bool {
		for _, n := range nodes {
			for _, m := range n.Members() {
				if !m.Running {
					return false
				}
			}
		}
		return true
	})
}

func TestClusterRefusesAWrongSecret(t *testing.T) {
	addrs := freeAddrs(t, 2)
	a := startNode(t, "warren@a", addrs[0], nil, "right", nil)
	defer a.Close()
	if err := a.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "warren@b", addrs[1], nil, "wrong", nil)
	defer b.Close()
	if err := b.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	err := b.Join(addrs[0])
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("joining with the wrong secret: %v", err)
	}
	if n := len(a.Members()); n != 1 {
		t.Fatalf("a has %d members", n)
	}
}

func TestClusterLeaderLossAndForget(t *testing.T) {
	addrs := freeAddrs(t, 3)
	var nodes []*testNode
	for i := range 3 {
		n := startNode(t, fmt.Sprintf("warren@n%d", i), addrs[i], addrs, "s", nil)
		defer n.Close()
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := n.Ready(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	var leader *testNode
	for _, n := range nodes {
		if n.r().State() == raft.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.Close()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	if _, err := rest[0].Replicate(ctx(t), []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old leader to be seen down", func() bool { return !rest[1].Running(leader.Name()) })
	if err := rest[1].Forget(rest[0].Name()); err == nil {
		t.Fatal("forgot a running node")
	}
	if err := rest[1].Forget(leader.Name()); err != nil {
		t.Fatal(err)
	}
	for _, n := range rest {
		waitFor(t, n.Name()+" to drop the forgotten node", func() bool { return len(n.Members()) == 2 })
	}
	if _, err := rest[1].Replicate(ctx(t), []byte("after forget")); err != nil {
		t.Fatal(err)
	}
}

func TestClusterJoin(t *testing.T) {
	addrs := freeAddrs(t, 2)
	a := startNode(t, "warren@a", addrs[0], nil, "s", nil)
	defer a.Close()
	b := startNode(t, "warren@b", addrs[1], nil, "s", nil)
	defer b.Close()
	for _, n := range []*testNode{a, b} {
		if err := n.Ready(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Replicate(ctx(t), []byte("on a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Replicate(ctx(t), []byte("on b, dropped at the join")); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(addrs[1]); err == nil {
		t.Fatal("joined itself")
	}
	if err := b.Join(addrs[0]); err != nil {
		t.Fatal(err)
	}
	if got := b.state.list(); !slices.Equal(got, []string{"on a"}) {
		t.Fatalf("b after the join: %q", got)
	}
	if _, err := b.Replicate(ctx(t), []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to apply b's command", func() bool { return slices.Equal(a.state.list(), []string{"on a", "after"}) })
	if n := len(a.Members()); n != 2 {
		t.Fatalf("a has %d members", n)
	}
	if err := a.Join(addrs[1]); err == nil {
		t.Fatal("a member of a cluster of two joined another")
	}
}

// A command proposed twice (again after its answer was lost) is applied
// once, also after a snapshot is restored in between.
func TestCommandAppliedOnce(t *testing.T) {
	st := &listState{}
	f := &fsm{state: st, waiting: map[string]chan applied{}}
	f.cond = sync.NewCond(&f.mu)
	entry := func(id, cmd string) *raft.Log {
		return &raft.Log{Type: raft.LogCommand, Data: append(append([]byte{byte(len(id))}, id...), cmd...)}
	}
	f.Apply(entry("n#1", "a"))
	f.Apply(entry("n#1", "a"))
	f.Apply(entry("n#2", "b"))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := &fsm{state: &listState{}, waiting: map[string]chan applied{}}
	g.cond = sync.NewCond(&g.mu)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	g.Apply(entry("n#2", "b"))
	g.Apply(entry("n#3", "c"))
	if got := g.state.(*listState).list(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("applied %q", got)
	}
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// A node's commands after its restart are new commands, whatever the
// numbers it gives them.
func TestRestartedNodeCommandsApply(t *testing.T) {
	addrs := freeAddrs(t, 2)
	a := startNode(t, "warren@a", addrs[0], nil, "s", nil)
	defer a.Close()
	if err := a.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	mem := raft.NewInmemStore()
	stores := &Stores{Log: mem, Stable: mem, Snapshots: raft.NewInmemSnapshotStore()}
	b := startNode(t, "warren@b", addrs[1], []string{addrs[0]}, "s", stores)
	if _, err := b.Replicate(ctx(t), []byte("first life")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = startNode(t, "warren@b", addrs[1], nil, "s", stores)
	defer b.Close()
	if _, err := b.Replicate(ctx(t), []byte("second life")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to apply both", func() bool { return slices.Equal(a.state.list(), []string{"first life", "second life"}) })
}

// A node that only this node takes for down (a partition) is not
// forgotten while another node reaches it.
func TestForgetAsksTheOthers(t *testing.T) {
	addrs := freeAddrs(t, 3)
	var nodes []*testNode
	for i := range 3 {
		n := startNode(t, fmt.Sprintf("warren@f%d", i), addrs[i], addrs, "s", nil)
		defer n.Close()
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := n.Ready(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	a, c := nodes[0], nodes[2]
	waitFor(t, "everyone up", func() bool {
		for _, n := range nodes {
			for _, m := range n.Members() {
				if !m.Running {
					return false
				}
			}
		}
		return true
	})
	// a alone loses sight of c.
	a.mu.Lock()
	a.lost[c.Name()] = time.Now().Add(time.Hour)
	a.mu.Unlock()
	if a.Running(c.Name()) {
		t.Fatal("a still sees c")
	}
	err := a.Forget(c.Name())
	if err == nil || !strings.Contains(err.Error(), "reaches it") {
		t.Fatalf("forgetting a node another reaches: %v", err)
	}
}
