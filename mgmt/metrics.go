package mgmt

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	descConnections = desc("connections", "Connections currently open")
	descChannels    = desc("channels", "Channels currently open")
	descConsumers   = desc("consumers", "Consumers currently connected")
	descQueues      = desc("queues", "Queues available")

	descConnOpened = desc("connections_opened_total", "Total number of connections opened")
	descConnClosed = desc("connections_closed_total", "Total number of connections closed or terminated")
	descChanOpened = desc("channels_opened_total", "Total number of channels opened")
	descChanClosed = desc("channels_closed_total", "Total number of channels closed")
	descBytesIn    = desc("connection_incoming_bytes_total", "Total number of bytes received on a connection")
	descBytesOut   = desc("connection_outgoing_bytes_total", "Total number of bytes sent on a connection")

	descReady     = desc("queue_messages_ready", "Messages ready to be delivered to consumers")
	descUnacked   = desc("queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged")
	descMessages  = desc("queue_messages", "Sum of ready and unacknowledged messages - total queue depth")
	descQConsumer = desc("queue_consumers", "Consumers on a queue")
	descQBytes    = desc("queue_messages_bytes", "Size in bytes of ready and unacknowledged messages")

	descIdentity = desc("identity_info", "RabbitMQ node & cluster identity info", "rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id")
	descBuild    = desc("build_info", "RabbitMQ & Erlang/OTP version info", "rabbitmq_version", "prometheus_plugin_version", "erlang_version")

	perQueueLabels = []string{"vhost", "queue"}
	descQReadyPer  = desc("queue_messages_ready", "Messages ready to be delivered to consumers", perQueueLabels...)
	descQUnackPer  = desc("queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", perQueueLabels...)
	descQMsgsPer   = desc("queue_messages", "Sum of ready and unacknowledged messages - total queue depth", perQueueLabels...)
	descQConsPer   = desc("queue_consumers", "Consumers on a queue", perQueueLabels...)
	descQPubPer    = desc("queue_messages_published_total", "Total number of messages published to queues", perQueueLabels...)
)

// globalCounters are rabbit_global_counters' series: name, help and the
// counter's value.
var globalCounters = []struct {
	name, help string
}{
	{"received", "Total number of messages received from publishers"},
	{"routed", "Total number of messages routed to queues or streams"},
	{"unroutable_dropped", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable"},
	{"unroutable_returned", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable"},
	{"confirmed", "Total number of messages confirmed to publishers"},
	{"delivered", "Total number of messages delivered to consumers"},
	{"delivered_consume_manual_ack", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment"},
	{"delivered_consume_auto_ack", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment"},
	{"delivered_get_manual_ack", "Total number of messages delivered to consumers using basic.get with manual acknowledgment"},
	{"delivered_get_auto_ack", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment"},
	{"redelivered", "Total number of messages redelivered to consumers"},
	{"acknowledged", "Total number of messages acknowledged by consumers"},
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
		descChanOpened, descChanClosed, descBytesIn, descBytesOut, descReady, descUnacked, descMessages, descQConsumer, descQBytes,
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
			gauge(descQMsgsPer, float64(st.Ready+st.Unacked), vh, q.Name())
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
	m := t.MessageStats
	values := []uint64{m.Publish, m.Routed, m.DropUnroutable, m.ReturnUnroutable, m.Confirm,
		m.Deliver + m.DeliverNoAck + m.Get + m.GetNoAck, m.Deliver, m.DeliverNoAck, m.Get, m.GetNoAck, m.Redeliver, m.Ack}
	for i, d := range globalDescs {
		counter(d, values[i], "amqp091")
	}
	n := c.s.d.Node
	gauge(descIdentity, 1, n.Name, n.Name, n.Name)
	gauge(descBuild, 1, rabbitVersion, n.Version, runtime.Version())
}
