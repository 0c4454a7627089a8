package mgmt

import (
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// rabbitVersion is the RabbitMQ version the API presents itself as, so
// that tools that check versions accept it.
const rabbitVersion = "3.13.7"

// messageStats renders message counters (cur) as message_stats, with
// rates over the last sampling interval (from prev to last, secs apart).
func messageStats(cur, prev, last amqp.MessageStats, secs float64) map[string]any {
	o := map[string]any{}
	add := func(name string, pick func(m *amqp.MessageStats) uint64) {
		o[name] = pick(&cur)
		o[name+"_details"] = details(rate(pick(&prev), pick(&last), secs))
	}
	add("publish", func(m *amqp.MessageStats) uint64 { return m.Publish })
	add("confirm", func(m *amqp.MessageStats) uint64 { return m.Confirm })
	add("return_unroutable", func(m *amqp.MessageStats) uint64 { return m.ReturnUnroutable })
	add("drop_unroutable", func(m *amqp.MessageStats) uint64 { return m.DropUnroutable })
	add("deliver", func(m *amqp.MessageStats) uint64 { return m.Deliver })
	add("deliver_no_ack", func(m *amqp.MessageStats) uint64 { return m.DeliverNoAck })
	add("get", func(m *amqp.MessageStats) uint64 { return m.Get })
	add("get_no_ack", func(m *amqp.MessageStats) uint64 { return m.GetNoAck })
	add("get_empty", func(*amqp.MessageStats) uint64 { return 0 })
	add("redeliver", func(m *amqp.MessageStats) uint64 { return m.Redeliver })
	add("ack", func(m *amqp.MessageStats) uint64 { return m.Ack })
	add("deliver_get", func(m *amqp.MessageStats) uint64 { return m.Deliver + m.DeliverNoAck + m.Get + m.GetNoAck })
	return o
}

// exchangeTypes are the types the node offers, for the overview.
var exchangeTypes = []struct{ name, description string }{
	{exchange.KindDirect, "AMQP direct exchange, as per the AMQP specification"},
	{exchange.KindFanout, "AMQP fanout exchange, as per the AMQP specification"},
	{exchange.KindHeaders, "AMQP headers exchange, as per the AMQP specification"},
	{exchange.KindTopic, "AMQP topic exchange, as per the AMQP specification"},
	{exchange.KindConsistentHash, "Consistent Hashing Exchange"},
	{exchange.KindDelayed, "Delayed Message Exchange"},
	{exchange.KindDeduplication, "Message Deduplication Exchange"},
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	prev, last, secs := s.rates.totals()
	cur := s.d.AMQP.Totals()
	vhosts, _ := s.vhostsFor(r, u)
	var queues, exchanges, ready, unacked int
	for _, v := range vhosts {
		for _, q := range v.Queues() {
			st := q.Stats()
			queues++
			ready += st.Ready
			unacked += st.Unacked
		}
		exchanges += len(v.Exchanges())
	}
	conns := s.visibleConnections(u)
	var chans, consumers int
	for _, c := range s.d.AMQP.Channels() {
		if s.connectionVisible(u, c.Connection) {
			chans++
		}
	}
	for _, c := range s.d.AMQP.Consumers() {
		if s.connectionVisible(u, c.Channel.Connection) {
			consumers++
		}
	}
	types := make([]map[string]any, 0, len(exchangeTypes))
	for _, t := range exchangeTypes {
		types = append(types, map[string]any{"name": t.name, "description": t.description, "enabled": true})
	}
	n := s.d.Node
	listeners := s.listenerObjects()
	var contexts []map[string]any
	nconns := len(conns)
	states, _ := s.peerStates()
	for _, st := range states {
		listeners = append(listeners, st.Listeners...)
		for user, k := range st.Channels {
			if user == u.Name || seesAll(u) {
				chans += k
			}
		}
		for user, k := range st.Consumers {
			if user == u.Name || seesAll(u) {
				consumers += k
			}
		}
		for _, c := range st.Connections {
			if user, _ := c["user"].(string); user == u.Name || seesAll(u) {
				nconns++
			}
		}
	}
	for _, l := range n.Listeners {
		if l.Protocol == "http" {
			contexts = append(contexts, map[string]any{"node": n.Name, "description": "RabbitMQ Management", "path": "/", "port": strconv.Itoa(l.Port)})
		}
	}
	churn := map[string]any{}
	for name, c := range map[string][2]uint64{
		"connection_created": {last.ConnectionsOpened, prev.ConnectionsOpened},
		"connection_closed":  {last.ConnectionsClosed, prev.ConnectionsClosed},
		"channel_created":    {last.ChannelsOpened, prev.ChannelsOpened},
		"channel_closed":     {last.ChannelsClosed, prev.ChannelsClosed},
	} {
		churn[name] = c[0]
		churn[name+"_details"] = details(rate(c[1], c[0], secs))
	}
	writeObject(w, r, map[string]any{
		"management_version": rabbitVersion, "rates_mode": "basic",
		"exchange_types":  types,
		"product_name":    "Warren",
		"product_version": n.Version, "rabbitmq_version": rabbitVersion,
		"cluster_name": s.d.ClusterName(), "node": n.Name,
		"erlang_version": runtime.Version(), "erlang_full_version": runtime.Version(),
		"disable_stats": false, "enable_queue_totals": false,
		"message_stats": messageStats(cur.MessageStats, prev.MessageStats, last.MessageStats, secs),
		"churn_rates":   churn,
		"queue_totals": map[string]any{
			"messages": ready + unacked, "messages_details": details(0),
			"messages_ready": ready, "messages_ready_details": details(0),
			"messages_unacknowledged": unacked, "messages_unacknowledged_details": details(0),
		},
		"object_totals": map[string]any{"connections": nconns, "channels": chans, "consumers": consumers,
			"exchanges": exchanges, "queues": queues},
		"statistics_db_event_queue": 0,
		"listeners":                 listeners,
		"contexts":                  contexts,
	})
	return nil
}

func (s *Server) clusterName(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	writeObject(w, r, map[string]any{"name": s.d.ClusterName()})
	return nil
}

// setClusterName answers PUT /api/cluster-name {"name": "..."}.
func (s *Server) setClusterName(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return badRequest("name missing")
	}
	if s.d.SetClusterName == nil {
		return &apiError{http.StatusConflict, "not_clustered", "a node started without --cluster-seeds is named by its node name"}
	}
	if err := s.d.SetClusterName(req.Name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	writeObject(w, r, map[string]any{"name": u.Name, "tags": u.Tags})
	return nil
}

// nodeObject describes the node.
func (s *Server) nodeObject() map[string]any {
	n := s.d.Node
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := 0
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(entries)
	}
	_, last, _ := s.rates.totals()
	st := s.alarms()
	return map[string]any{
		"name": n.Name, "type": "disc", "running": true, "os_pid": strconv.Itoa(os.Getpid()),
		"mem_used": st.MemoryUsed, "mem_used_details": details(0), "mem_limit": st.MemoryLimit, "mem_alarm": st.MemoryAlarm,
		"mem_calculation_strategy": "rss",
		"disk_free":                st.DiskFree, "disk_free_details": details(0), "disk_free_limit": st.DiskFreeLimit, "disk_free_alarm": st.DiskAlarm,
		"fd_used": fds, "fd_total": 1048576, "sockets_used": len(s.d.AMQP.Connections()), "sockets_total": 1048576,
		"proc_used": runtime.NumGoroutine(), "proc_total": 1048576,
		"processors": runtime.NumCPU(), "run_queue": 0,
		"uptime":     time.Since(n.Started).Milliseconds(),
		"partitions": []any{}, "rates_mode": "basic", "net_ticktime": 60,
		"gc_num": ms.NumGC, "gc_bytes_reclaimed": ms.TotalAlloc - ms.HeapAlloc,
		"connection_created": last.ConnectionsOpened, "connection_closed": last.ConnectionsClosed,
		"channel_created": last.ChannelsOpened, "channel_closed": last.ChannelsClosed,
		"enabled_plugins": []string{"rabbitmq_management", "rabbitmq_prometheus"},
		"being_drained":   false,
	}
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return writeList(w, r, s.nodeObjects())
}

func (s *Server) node(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	for _, o := range s.nodeObjects() {
		if o["name"] == r.PathValue("node") {
			writeObject(w, r, o)
			return nil
		}
	}
	return notFound()
}

// listenerObjects are the node's listeners as /api/overview lists them.
func (s *Server) listenerObjects() []object {
	n := s.d.Node
	out := make([]object, 0, len(n.Listeners))
	for _, l := range n.Listeners {
		out = append(out, object{"node": n.Name, "protocol": l.Protocol, "ip_address": l.IP, "port": l.Port, "socket_opts": map[string]any{}})
	}
	return out
}

// healthOK answers a health check that passes on a running node (every
// virtual host up, no quorum queue depending on this node).
func (s *Server) healthOK(w http.ResponseWriter, _ *http.Request, _ *auth.User) error {
	writeJSON(w, map[string]any{"status": "ok"})
	return nil
}

// quorumCritical fails when stopping this node would leave a replicated
// queue with replicas here without a majority of its members running
// (rabbitmq-queues check_if_node_is_quorum_critical).
func (s *Server) quorumCritical(w http.ResponseWriter, _ *http.Request, _ *auth.User) error {
	var critical []object
	for _, q := range s.allQueues() {
		r, ok := q.(queue.Replicas)
		if !ok || !slices.Contains(r.Members(), s.d.Node.Name) {
			continue
		}
		members, online := len(r.Members()), len(r.Online())
		if members > 1 && online-1 < members/2+1 {
			c := q.Config()
			critical = append(critical, object{"name": c.Name, "virtual_host": c.VHost,
				"readable_name": "queue '" + c.Name + "' in vhost '" + c.VHost + "'"})
		}
	}
	if len(critical) == 0 {
		writeJSON(w, map[string]any{"status": "ok"})
		return nil
	}
	healthFailed(w, map[string]any{"reason": "There are quorum queues that would lose their quorum if the target node is shut down",
		"queues": critical})
	return nil
}

func healthFailed(w http.ResponseWriter, body map[string]any) {
	body["status"] = "failed"
	writeStatusJSON(w, http.StatusServiceUnavailable, body)
}

func (s *Server) portListener(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil {
		return badRequest("invalid port")
	}
	ports := []int{}
	for _, l := range s.d.Node.Listeners {
		ports = append(ports, l.Port)
	}
	if slices.Contains(ports, port) {
		writeJSON(w, map[string]any{"status": "ok", "port": port})
		return nil
	}
	healthFailed(w, map[string]any{"reason": "No active listener", "missing": port, "ports": ports})
	return nil
}

func (s *Server) protocolListener(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	want := r.PathValue("protocol")
	protocols := []string{}
	for _, l := range s.d.Node.Listeners {
		protocols = append(protocols, l.Protocol)
		if l.Protocol == want || want == "amqp091" && l.Protocol == "amqp" {
			writeJSON(w, map[string]any{"status": "ok", "protocol": want})
			return nil
		}
	}
	healthFailed(w, map[string]any{"reason": "No active listener", "missing": want, "protocols": protocols})
	return nil
}

// aliveness declares a queue in the virtual host, publishes a message to it
// and gets it back, as RabbitMQ's aliveness test does.
func (s *Server) aliveness(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	// It declares a queue and publishes: a GET that changes the vhost
	// needs access to it, even for monitoring users.
	if !s.d.Users.CanAccessVhost(u.Name, v.Name()) {
		return forbidden("Not authorised to access virtual host")
	}
	q, err := v.DeclareQueue(vhost.QueueSpec{Name: "aliveness-test"}, false)
	if err != nil {
		return err
	}
	m := queue.BuildMessage("", "aliveness-test", emptyProps, []byte("test_message"))
	var out queue.Outcome
	queue.Publish([]queue.Queue{q}, m, &out)
	e, _, ok := q.Get(true)
	if !ok || string(e.Msg.Body) != "test_message" {
		healthFailed(w, map[string]any{"reason": "aliveness test failed"})
		return nil
	}
	writeJSON(w, map[string]any{"status": "ok"})
	return nil
}
