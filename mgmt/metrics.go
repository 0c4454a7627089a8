package mgmt

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/queue"
)

// Metrics returns the Prometheus endpoint, with rabbitmq_prometheus's
// metric names and meanings so that RabbitMQ's Grafana dashboards work:
// /metrics aggregated over the node, /metrics/per-object with a series
// per queue (the same names with vhost and queue labels, as RabbitMQ's;
// only /metrics/detailed prefixes them rabbitmq_detailed_). Every value is read when scraped, from counters the broker
// keeps anyway: nothing is looked up or allocated per message.
func (s *Server) Metrics() http.Handler {
	agg := prometheus.NewRegistry()
	// The process collector gives rabbitmq_process_resident_memory_bytes
	// (the resident set, as the OS reports it) and the file descriptors.
	agg.MustRegister(&collector{s: s}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "rabbitmq"}))
	perObject := prometheus.NewRegistry()
	perObject.MustRegister(&collector{s: s, perObject: true})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(agg, promhttp.HandlerOpts{}))
	mux.Handle("GET /metrics/per-object", promhttp.HandlerFor(perObject, promhttp.HandlerOpts{}))
	return mux
}

// collector is the node's metrics, aggregated or per object.
type collector struct {
	s         *Server
	perObject bool
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("rabbitmq_"+name, help, labels, nil)
}

var (
	descConnections = desc("connections", "Client connections open now")
	descChannels    = desc("channels", "Channels open now")
	descConsumers   = desc("consumers", "Consumers subscribed now")
	descQueues      = desc("queues", "Queues that exist now")

	descConnOpened = desc("connections_opened_total", "Connections opened since the node started")
	descConnClosed = desc("connections_closed_total", "Connections closed, by either side, since the node started")
	descChanOpened = desc("channels_opened_total", "Channels opened since the node started")
	descChanClosed = desc("channels_closed_total", "Channels closed since the node started")
	descBytesIn    = desc("connection_incoming_bytes_total", "Bytes read from client connections")
	descBytesOut   = desc("connection_outgoing_bytes_total", "Bytes written to client connections")
	descAuth       = desc("auth_attempts_total", "Logins attempted", "protocol")
	descAuthOK     = desc("auth_attempts_succeeded_total", "Logins that succeeded", "protocol")
	descAuthFailed = desc("auth_attempts_failed_total", "Logins refused", "protocol")

	descQDeclared = desc("queues_declared_total", "Queue declarations (passive ones aside) since the node started")
	descQCreated  = desc("queues_created_total", "Queues created since the node started")
	descQDeleted  = desc("queues_deleted_total", "Queues deleted since the node started")

	descReady     = desc("queue_messages_ready", "Messages waiting in queues for a consumer")
	descUnacked   = desc("queue_messages_unacked", "Messages handed to consumers and not yet acknowledged")
	descMessages  = desc("queue_messages", "Messages in queues, ready or unacknowledged")
	descQConsumer = desc("queue_consumers", "Consumers of queues")
	descQBytes    = desc("queue_messages_bytes", "Body bytes of the messages waiting in queues")

	descMemAlarm  = desc("alarms_memory_used_watermark", "1 while the memory alarm is set (resident memory above the watermark)")
	descDiskAlarm = desc("alarms_free_disk_space_watermark", "1 while the disk alarm is set (free disk space below the limit)")
	descFDAlarm   = desc("alarms_file_descriptor_limit", "1 while file descriptors run out (Warren has no such alarm: always 0)")
	descMemLimit  = desc("resident_memory_limit_bytes", "The memory high watermark, in bytes")
	descDiskFree  = desc("disk_space_available_bytes", "Free space on the data directory's filesystem")
	descDiskLimit = desc("disk_space_available_limit_bytes", "The free disk space limit, in bytes")

	descIdentity = desc("identity_info", "The node's name and its cluster's", "rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id")
	descBuild    = desc("build_info", "The RabbitMQ version the node presents itself as, Warren's version and Go's", "rabbitmq_version", "prometheus_plugin_version", "erlang_version")

	perQueueLabels = []string{"vhost", "queue"}
	descQReadyPer  = desc("queue_messages_ready", "Messages waiting in the queue for a consumer", perQueueLabels...)
	descQUnackPer  = desc("queue_messages_unacked", "Messages of the queue handed to consumers and not yet acknowledged", perQueueLabels...)
	descQMsgsPer   = desc("queue_messages", "Messages in the queue, ready or unacknowledged", perQueueLabels...)
	descQConsPer   = desc("queue_consumers", "Consumers of the queue", perQueueLabels...)
	descQPubPer    = desc("queue_messages_published_total", "Messages the queue has taken in", perQueueLabels...)
)

// globalCounters are the series of RabbitMQ's global message counters:
// the name between rabbitmq_global_messages_ and _total, what it counts,
// and where Warren keeps the count.
var globalCounters = []struct {
	name, help string
	value      func(m *amqp.MessageStats) uint64
}{
	{"received", "Messages publishers sent", func(m *amqp.MessageStats) uint64 { return m.Publish }},
	{"received_confirm", "Messages publishers sent on channels in confirm mode",
		func(m *amqp.MessageStats) uint64 { return m.PublishConfirmMode }},
	{"routed", "Published messages that reached at least one queue", func(m *amqp.MessageStats) uint64 { return m.Routed }},
	{"unroutable_dropped", "Published messages that reached no queue and were dropped (not mandatory)",
		func(m *amqp.MessageStats) uint64 { return m.DropUnroutable }},
	{"unroutable_returned", "Published messages that reached no queue and went back to the publisher (mandatory)",
		func(m *amqp.MessageStats) uint64 { return m.ReturnUnroutable }},
	{"confirmed", "Published messages confirmed to their publishers", func(m *amqp.MessageStats) uint64 { return m.Confirm }},
	{"delivered", "Messages handed to consumers, by basic.consume or basic.get",
		func(m *amqp.MessageStats) uint64 { return m.Deliver + m.DeliverNoAck + m.Get + m.GetNoAck }},
	{"delivered_consume_manual_ack", "Messages pushed to consumers that acknowledge them",
		func(m *amqp.MessageStats) uint64 { return m.Deliver }},
	{"delivered_consume_auto_ack", "Messages pushed to consumers that do not acknowledge (no-ack)",
		func(m *amqp.MessageStats) uint64 { return m.DeliverNoAck }},
	{"delivered_get_manual_ack", "Messages fetched with basic.get, to be acknowledged",
		func(m *amqp.MessageStats) uint64 { return m.Get }},
	{"delivered_get_auto_ack", "Messages fetched with basic.get with no-ack", func(m *amqp.MessageStats) uint64 { return m.GetNoAck }},
	{"redelivered", "Deliveries of messages delivered before", func(m *amqp.MessageStats) uint64 { return m.Redeliver }},
	{"acknowledged", "Deliveries consumers acknowledged", func(m *amqp.MessageStats) uint64 { return m.Ack }},
}

var globalDescs = func() []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(globalCounters))
	for i, c := range globalCounters {
		out[i] = desc("global_messages_"+c.name+"_total", c.help, "protocol")
	}
	return out
}()

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	if c.perObject {
		for _, d := range []*prometheus.Desc{descQReadyPer, descQUnackPer, descQMsgsPer, descQConsPer, descQPubPer} {
			ch <- d
		}
		return
	}
	for _, d := range []*prometheus.Desc{descConnections, descChannels, descConsumers, descQueues, descConnOpened, descConnClosed,
		descChanOpened, descChanClosed, descBytesIn, descBytesOut, descAuth, descAuthOK, descAuthFailed, descQDeclared, descQCreated, descQDeleted, descMemAlarm, descDiskAlarm, descFDAlarm, descMemLimit, descDiskFree, descDiskLimit, descReady, descUnacked, descMessages, descQConsumer, descQBytes,
		descIdentity, descBuild} {
		ch <- d
	}
	for _, d := range globalDescs {
		ch <- d
	}
}

// queuesByVhost returns every queue with its virtual host's name.
func (c *collector) queuesByVhost(fn func(vhost string, q queue.Queue)) {
	reg := c.s.d.Vhosts
	for _, name := range reg.Names() {
		if v := reg.Get(name); v != nil {
			for _, q := range v.Queues() {
				fn(name, q)
			}
		}
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.perObject {
		c.queuesByVhost(func(vh string, q queue.Queue) {
			st := q.Stats()
			gauge(descQReadyPer, float64(st.Ready), vh, q.Name())
			gauge(descQUnackPer, float64(st.Unacked), vh, q.Name())
			gauge(descQMsgsPer, float64(st.Messages()), vh, q.Name())
			gauge(descQConsPer, float64(st.Consumers), vh, q.Name())
			counter(descQPubPer, st.Published, vh, q.Name())
		})
		return
	}
	amqpSrv := c.s.d.AMQP
	t := amqpSrv.Totals()
	chans := amqpSrv.Channels()
	var consumers int
	for _, chi := range chans {
		consumers += chi.Consumers
	}
	gauge(descConnections, float64(len(amqpSrv.Connections())))
	gauge(descChannels, float64(len(chans)))
	gauge(descConsumers, float64(consumers))
	counter(descConnOpened, t.ConnectionsOpened)
	counter(descConnClosed, t.ConnectionsClosed)
	counter(descChanOpened, t.ChannelsOpened)
	counter(descChanClosed, t.ChannelsClosed)
	counter(descBytesIn, t.RecvOct)
	counter(descBytesOut, t.SendOct)
	counter(descAuth, t.AuthSucceeded+t.AuthFailed, "amqp091")
	counter(descAuthOK, t.AuthSucceeded, "amqp091")
	counter(descAuthFailed, t.AuthFailed, "amqp091")
	var queues, ready, unacked, bytes float64
	c.queuesByVhost(func(_ string, q queue.Queue) {
		st := q.Stats()
		queues++
		ready += float64(st.Ready)
		unacked += float64(st.Unacked)
		bytes += float64(st.ReadyBytes)
	})
	gauge(descQueues, queues)
	gauge(descReady, ready)
	gauge(descUnacked, unacked)
	gauge(descMessages, ready+unacked)
	gauge(descQBytes, bytes)
	al := c.s.alarms()
	gauge(descMemAlarm, boolGauge(al.MemoryAlarm))
	gauge(descDiskAlarm, boolGauge(al.DiskAlarm))
	gauge(descFDAlarm, 0)
	gauge(descMemLimit, float64(al.MemoryLimit))
	gauge(descDiskFree, float64(al.DiskFree))
	gauge(descDiskLimit, float64(al.DiskFreeLimit))
	qc := c.s.d.Vhosts.QueueCounts()
	counter(descQDeclared, qc.Declared)
	counter(descQCreated, qc.Created)
	counter(descQDeleted, qc.Deleted)
	for i, d := range globalDescs {
		counter(d, globalCounters[i].value(&t.MessageStats), "amqp091")
	}
	n := c.s.d.Node
	gauge(descIdentity, 1, n.Name, c.s.d.ClusterName(), n.Name)
	gauge(descBuild, 1, rabbitVersion, n.Version, runtime.Version())
}

// boolGauge is 1 for true, 0 for false.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
