package e2e

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// clusters numbers the test clusters, so that their nodes' names differ.
var clusters atomic.Int64

// testCluster is a cluster of warren processes on this machine.
type testCluster struct {
	nodes []*broker
	names []string
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago (the cluster listeners' addresses must be known before the nodes
// start, since each is every node's seed).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var lns []net.Listener
	var out []string
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

// startCluster starts n clustered nodes, launched in the order given (all
// before any is awaited: a node listens once its cluster has formed).
func startCluster(t testing.TB, n int, order []int, extra ...string) *testCluster {
	t.Helper()
	addrs := freeAddrs(t, n)
	c := &testCluster{nodes: make([]*broker, n)}
	seq := clusters.Add(1)
	for i := range n {
		c.names = append(c.names, fmt.Sprintf("warren@c%d-node%d", seq, i+1))
	}
	starts := make([]chan []string, n)
	for _, i := range order {
		args := append([]string{"--node-name", c.names[i], "--cluster-listen", addrs[i],
			"--cluster-seeds", strings.Join(addrs, ","), "--cluster-secret", "e2e-cluster-s3cret"}, extra...)
		dataDir := t.TempDir()
		b := &broker{t: t, bin: warrenBin, DataDir: dataDir, log: &logBuffer{}, exited: make(chan struct{}),
			args: append([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "debug",
				"--mgmt-listen", "127.0.0.1:0", "--prometheus-listen", ""}, args...)}
		starts[i] = b.launch()
		c.nodes[i] = b
		t.Cleanup(func() {
			b.Stop()
			if t.Failed() {
				t.Logf("%s's log:\n%s", c.names[i], b.log.String())
			}
		})
	}
	for _, i := range order {
		c.nodes[i].awaitStart(starts[i])
	}
	return c
}

// clusterStatus is GET /api/cluster.
type clusterStatus struct {
	Leader string `json:"leader"`
	Nodes  []struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
		Leader  bool   `json:"leader"`
	} `json:"nodes"`
}

func (c *testCluster) status(t testing.TB, from int) clusterStatus {
	t.Helper()
	var st clusterStatus
	c.nodes[from].getAPI(t, "/api/cluster", &st)
	return st
}

// index returns the index of the named node.
func (c *testCluster) index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// passiveDeclare checks on b that the queue exists.
func passiveDeclare(t testing.TB, b *broker, name string) error {
	t.Helper()
	conn, err := amqp091.Dial(b.URL())
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	return err
}

func TestClusterFormsAndSharesDefinitions(t *testing.T) {
	// Started third node first, first node last.
	c := startCluster(t, 3, []int{2, 0, 1})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	// Every node sees the three, running.
	for i := range c.nodes {
		var nodes []map[string]any
		c.nodes[i].getAPI(t, "/api/nodes", &nodes)
		if len(nodes) != 3 {
			t.Fatalf("node %d lists %d nodes: %v", i+1, len(nodes), nodes)
		}
		for _, o := range nodes {
			if o["running"] != true {
				t.Fatalf("node %d sees %v not running", i+1, o["name"])
			}
		}
	}

	// One cluster name on every node: its first node's, until renamed.
	clusterNames := func() []string {
		var out []string
		for _, b := range c.nodes {
			var o struct{ Name string }
			b.getAPI(t, "/api/cluster-name", &o)
			out = append(out, o.Name)
		}
		return out
	}
	if names := clusterNames(); names[0] != names[1] || names[1] != names[2] || c.index(names[0]) < 0 {
		t.Fatalf("cluster names %q", names)
	}
	if st, body := n2.api(t, "PUT", "/api/cluster-name", map[string]string{"name": "orders"}); st != 204 {
		t.Fatalf("PUT /api/cluster-name: %d %s", st, body)
	}
	if names := clusterNames(); names[0] != "orders" || names[1] != "orders" || names[2] != "orders" {
		t.Fatalf("cluster names after the rename %q", names)
	}

	// A declare on node 1 is visible and routable on nodes 2 and 3 as soon
	// as declare-ok arrives.
	_, ch1 := dialChannel(t, n1)
	if err := ch1.ExchangeDeclare("cx", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch1.QueueDeclare("cq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch1.QueueBind("cq", "k", "cx", false, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*broker{n2, n3} {
		if err := passiveDeclare(t, b, "cq"); err != nil {
			t.Fatalf("the queue declared on node 1 is not on %s: %v", b.Addr, err)
		}
	}

	// Publish on node 3 (to a queue on node 1) with confirms; consume on
	// node 2 with manual acks.
	_, ch3 := dialChannel(t, n3)
	if err := ch3.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch3.NotifyReturn(make(chan amqp091.Return, 1))
	const total = 300
	for i := range total {
		dc, err := ch3.PublishWithDeferredConfirm("cx", "k", true, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 || i == total-1 {
			if ok, err := dc.WaitContext(t.Context()); err != nil || !ok {
				t.Fatalf("publish %d not confirmed: %v %v", i, ok, err)
			}
		}
	}
	select {
	case r := <-returns:
		t.Fatalf("a publish to the routed exchange came back: %+v", r)
	default:
	}
	_, ch2 := dialChannel(t, n2)
	if err := ch2.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch2.Consume("cq", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		select {
		case m := <-msgs:
			if string(m.Body) != fmt.Sprint(i) {
				t.Fatalf("message %d is %q", i, m.Body)
			}
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("got %d of %d messages", i, total)
		}
	}
	waitFor(t, 10*time.Second, func() error {
		var q map[string]any
		n3.getAPI(t, "/api/queues/%2F/cq", &q)
		if q["node"] != c.names[0] || q["messages"] != float64(0) || q["consumers"] != float64(1) {
			return fmt.Errorf("queue on node 3's API: node %v, messages %v, consumers %v", q["node"], q["messages"], q["consumers"])
		}
		return nil
	})

	// A publish routed to queues on two nodes is confirmed once both have
	// it.
	_, ch2b := dialChannel(t, n2)
	for _, q := range []struct {
		ch   *amqp091.Channel
		name string
	}{{ch1, "fan-on-1"}, {ch2b, "fan-on-2"}} {
		if _, err := q.ch.QueueDeclare(q.name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := q.ch.QueueBind(q.name, "", "amq.fanout", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	dc, err := ch3.PublishWithDeferredConfirm("amq.fanout", "", true, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte("both")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); err != nil || !ok {
		t.Fatalf("the fanout publish was not confirmed: %v %v", ok, err)
	}
	for _, name := range []string{"fan-on-1", "fan-on-2"} {
		m, ok, err := ch1.Get(name, true)
		if err != nil || !ok || string(m.Body) != "both" {
			t.Fatalf("%s: %v %v %v", name, ok, err, m.Body)
		}
	}

	// A queue with x-expires, unused, goes from every node.
	if _, err := ch1.QueueDeclare("expiring", false, false, false, false, amqp091.Table{"x-expires": int32(1000)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		for i, b := range c.nodes {
			if st := b.statusOf(t, "/api/queues/%2F/expiring"); st != 404 {
				return fmt.Errorf("node %d answers %d", i+1, st)
			}
		}
		return nil
	})

	// A node that was down catches up on the definitions it missed.
	n3.Stop()
	if _, err := ch1.QueueDeclare("while-down", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	n3.Start()
	if err := passiveDeclare(t, n3, "while-down"); err != nil {
		t.Fatalf("the restarted node missed a declare: %v", err)
	}
}

func TestClusterLeaderLossAndForget(t *testing.T) {
	c := startCluster(t, 3, []int{0, 1, 2})
	st := c.status(t, 0)
	li := c.index(st.Leader)
	if li < 0 {
		t.Fatalf("no leader: %+v", st)
	}
	leader := c.nodes[li]
	var rest []*broker
	for i, b := range c.nodes {
		if i != li {
			rest = append(rest, b)
		}
	}
	// A queue that lives on the leader.
	_, lch := dialChannel(t, leader)
	if _, err := lch.QueueDeclare("on-leader", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lch.QueueDeclare("transient-on-leader", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	leader.Kill()
	// A new leader within 5 s, and declares work.
	waitFor(t, 5*time.Second, func() error {
		st := c.status(t, c.index(rest[0].nodeName(t)))
		if st.Leader == "" || st.Leader == c.names[li] {
			return fmt.Errorf("leader is %q", st.Leader)
		}
		return nil
	})
	_, ch := dialChannel(t, rest[0])
	if _, err := ch.QueueDeclare("after-loss", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := passiveDeclare(t, rest[1], "after-loss"); err != nil {
		t.Fatal(err)
	}
	// The dead node's queue is down, and says so.
	waitFor(t, 10*time.Second, func() error {
		var q map[string]any
		rest[1].getAPI(t, "/api/queues/%2F/on-leader", &q)
		if q["state"] != "down" {
			return fmt.Errorf("state %v", q["state"])
		}
		return nil
	})
	conn := dial(t, rest[1])
	waitFor(t, 10*time.Second, func() error {
		gch := openChannel(t, conn)
		defer gch.Close()
		_, _, err := gch.Get("on-leader", false)
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != 404 || !strings.Contains(ae.Reason, "is down or inaccessible") {
			return fmt.Errorf("basic.get on a down queue: %v", err)
		}
		return nil
	})
	err := passiveDeclare(t, rest[1], "on-leader")
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != 404 || !strings.Contains(ae.Reason, "home node '"+c.names[li]+"' of durable queue 'on-leader'") {
		t.Fatalf("a passive declare of a down queue: %v", err)
	}
	// Its transient queue goes once it has been down a while (10 s), as
	// RabbitMQ deletes a failed node's transient queues.
	waitFor(t, 30*time.Second, func() error {
		if st := rest[1].statusOf(t, "/api/queues/%2F/transient-on-leader"); st != 404 {
			return fmt.Errorf("GET answers %d", st)
		}
		return nil
	})
	// A running node cannot be forgotten; the dead one can.
	if r := rest[0].ctl(t, "forget_cluster_node", rest[1].nodeName(t)); r.code == 0 {
		t.Fatalf("forgot a running node: %+v", r)
	}
	rest[0].ctlOK(t, "forget_cluster_node", c.names[li])
	waitFor(t, 10*time.Second, func() error {
		if st := c.status(t, c.index(rest[1].nodeName(t))); len(st.Nodes) != 2 {
			return fmt.Errorf("%d nodes", len(st.Nodes))
		}
		return nil
	})
	// (The cluster keeps its name, which may be the forgotten node's.)
	out := rest[1].ctlOK(t, "cluster_status")
	if _, nodes, _ := strings.Cut(out, "Disk Nodes"); strings.Contains(nodes, c.names[li]) {
		t.Fatalf("the forgotten node is still listed:\n%s", out)
	}
	// Its queue went with it.
	if st := rest[1].statusOf(t, "/api/queues/%2F/on-leader"); st != 404 {
		t.Fatalf("the forgotten node's queue: GET answers %d", st)
	}
	if _, err := ch.QueueDeclare("after-forget", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

func TestClusterJoinWithWarrenctl(t *testing.T) {
	a := startCluster(t, 1, []int{0})
	b := startCluster(t, 1, []int{0})
	na, nb := a.nodes[0], b.nodes[0]
	_, cha := dialChannel(t, na)
	if _, err := cha.QueueDeclare("theirs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, chb := dialChannel(t, nb)
	if _, err := chb.QueueDeclare("mine", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	addr := ""
	for i, arg := range na.args {
		if arg == "--cluster-listen" {
			addr = na.args[i+1]
		}
	}
	out := nb.ctlOK(t, "join_cluster", addr)
	if !strings.Contains(out, "Clustering node") {
		t.Fatalf("join_cluster printed %q", out)
	}
	if err := passiveDeclare(t, nb, "theirs"); err != nil {
		t.Fatalf("the joined node does not have the cluster's queue: %v", err)
	}
	if st := nb.statusOf(t, "/api/queues/%2F/mine"); st != 404 {
		t.Fatalf("the joined node kept its own queue: GET answers %d", st)
	}
	var st clusterStatus
	na.getAPI(t, "/api/cluster", &st)
	if len(st.Nodes) != 2 {
		t.Fatalf("the cluster has %d nodes: %+v", len(st.Nodes), st)
	}

	// A node started on its own joins at its restart, as rabbitmqctl's
	// stop_app, join_cluster, start_app.
	lone := startBroker(t, "--node-name", "warren@lone", "--cluster-listen", freeAddrs(t, 1)[0],
		"--cluster-secret", "e2e-cluster-s3cret")
	_, chl := dialChannel(t, lone)
	if _, err := chl.QueueDeclare("lonely", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	out = lone.ctlOK(t, "join_cluster", addr)
	if !strings.Contains(out, "Restart the node to join") {
		t.Fatalf("join_cluster on a node of its own printed %q", out)
	}
	lone.Restart()
	if err := passiveDeclare(t, lone, "theirs"); err != nil {
		t.Fatalf("the restarted node does not have the cluster's queue: %v", err)
	}
	if st := lone.statusOf(t, "/api/queues/%2F/lonely"); st != 404 {
		t.Fatalf("the joined node kept its own queue: GET answers %d", st)
	}
	na.getAPI(t, "/api/cluster", &st)
	if len(st.Nodes) != 3 {
		t.Fatalf("the cluster has %d nodes: %+v", len(st.Nodes), st)
	}
	// It stays clustered across restarts.
	lone.Restart()
	if err := passiveDeclare(t, lone, "theirs"); err != nil {
		t.Fatal(err)
	}
}
