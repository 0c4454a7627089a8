package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/flowcontrol"
	"github.com/warrenmq/warren/tlsconf"
)

// options is everything the command line, environment and config file set.
type options struct {
	broker   broker.Config
	logLevel slog.Level
	config   string // config file path
	pprof    string // HOST:PORT for net/http/pprof, empty: off
}

// setting is one knob. The same table drives the flags, the WARREN_*
// environment variables, the config-file keys and --help, so they cannot
// drift apart.
type setting struct {
	name  string   // flag name; the environment variable is WARREN_ + upper(name with - as _)
	keys  []string // config-file keys: Warren's own first, then RabbitMQ's where it has one
	usage string
	get   func(o *options) string
	set   func(o *options, v string) error
}

func (s setting) env() string {
	return "WARREN_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func settings() []setting {
	all := []setting{
		{name: "config", keys: nil, usage: "config file (key = value lines; RabbitMQ's rabbitmq.conf keys are accepted)",
			get: func(o *options) string { return o.config },
			set: func(o *options, v string) error { o.config = v; return nil }},
		{name: "listen", keys: []string{"listen", "listeners.tcp.default", "listeners.tcp"}, usage: "AMQP listener HOST:PORT (a bare port listens on all interfaces, as RabbitMQ's listeners.tcp.default does; \"none\" or empty: no plain listener, as listeners.tcp = none)",
			get: func(o *options) string { return o.broker.Listen },
			set: func(o *options, v string) error { return setListen(&o.broker.Listen, v) }},
		{name: "data-dir", keys: []string{"data_dir"}, usage: "directory for the node's state",
			get: func(o *options) string { return o.broker.DataDir },
			set: func(o *options, v string) error { o.broker.DataDir = v; return nil }},
		{name: "default-user", keys: []string{"default_user"}, usage: "user created at first start",
			get: func(o *options) string { return o.broker.DefaultUser },
			set: func(o *options, v string) error { o.broker.DefaultUser = v; return nil }},
		{name: "default-pass", keys: []string{"default_pass"}, usage: "the default user's password",
			get: func(o *options) string { return o.broker.DefaultPass },
			set: func(o *options, v string) error { o.broker.DefaultPass = v; return nil }},
		{name: "default-vhost", keys: []string{"default_vhost"}, usage: "virtual host created at first start",
			get: func(o *options) string { return o.broker.DefaultVhost },
			set: func(o *options, v string) error { o.broker.DefaultVhost = v; return nil }},
		{name: "auth-mechanisms", keys: []string{"auth_mechanisms"}, usage: "comma-separated SASL mechanisms offered, in order: AMQPLAIN, PLAIN, EXTERNAL (rabbitmq.conf's auth_mechanisms.N); EXTERNAL only to clients with a verified certificate",
			get: func(o *options) string { return strings.Join(o.broker.AMQP.AuthMechanisms, ",") },
			set: func(o *options, v string) error {
				o.broker.AMQP.AuthMechanisms = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
				return nil
			}},
		{name: "ssl-cert-login-from", keys: []string{"ssl_cert_login_from"}, usage: "what names an EXTERNAL login's user in its certificate: distinguished_name or common_name",
			get: func(o *options) string { return o.broker.AMQP.CertLoginFrom },
			set: func(o *options, v string) error { o.broker.AMQP.CertLoginFrom = v; return nil }},
		{name: "loopback-users", keys: []string{"loopback_users"}, usage: "comma-separated users allowed to log in only from loopback; 'none' for nobody",
			get: func(o *options) string { return strings.Join(o.broker.LoopbackUsers, ",") },
			set: func(o *options, v string) error {
				o.broker.LoopbackUsers = nil
				if v == "none" || v == "" {
					return nil
				}
				o.broker.LoopbackUsers = strings.Split(v, ",")
				return nil
			}},
		{name: "heartbeat", keys: []string{"heartbeat"}, usage: "heartbeat interval proposed to clients, seconds (0 disables)",
			get: func(o *options) string { return strconv.Itoa(int(o.broker.AMQP.Heartbeat / time.Second)) },
			set: func(o *options, v string) error {
				n, err := strconv.ParseUint(v, 10, 16)
				o.broker.AMQP.Heartbeat = time.Duration(n) * time.Second
				return err
			}},
		{name: "frame-max", keys: []string{"frame_max"}, usage: "largest frame proposed to clients, bytes",
			get: func(o *options) string { return strconv.FormatUint(uint64(o.broker.AMQP.FrameMax), 10) },
			set: func(o *options, v string) error {
				n, err := strconv.ParseUint(v, 10, 32)
				o.broker.AMQP.FrameMax = uint32(n)
				return err
			}},
		{name: "channel-max", keys: []string{"channel_max"}, usage: "highest channel number proposed to clients",
			get: func(o *options) string { return strconv.FormatUint(uint64(o.broker.AMQP.ChannelMax), 10) },
			set: func(o *options, v string) error {
				n, err := strconv.ParseUint(v, 10, 16)
				o.broker.AMQP.ChannelMax = uint16(n)
				return err
			}},
		{name: "max-message-size", keys: []string{"max_message_size"}, usage: "largest message body accepted, bytes",
			get: func(o *options) string { return strconv.FormatUint(o.broker.AMQP.MaxMessageSize, 10) },
			set: func(o *options, v string) error {
				n, err := strconv.ParseUint(v, 10, 64)
				o.broker.AMQP.MaxMessageSize = n
				return err
			}},
		{name: "max-connections", keys: []string{"connection_max"}, usage: "most client connections at once (0 = unlimited)",
			get: func(o *options) string { return strconv.Itoa(o.broker.AMQP.MaxConnections) },
			set: func(o *options, v string) error {
				if v == "infinity" {
					o.broker.AMQP.MaxConnections = 0
					return nil
				}
				n, err := strconv.Atoi(v)
				o.broker.AMQP.MaxConnections = n
				return err
			}},
		{name: "handshake-timeout", keys: []string{"handshake_timeout"}, usage: "time a client has from connect to connection.open, milliseconds",
			get: func(o *options) string { return strconv.FormatInt(o.broker.AMQP.HandshakeTimeout.Milliseconds(), 10) },
			set: func(o *options, v string) error { return setMillis(&o.broker.AMQP.HandshakeTimeout, v) }},
		{name: "consumer-timeout", keys: []string{"consumer_timeout"}, usage: "delivery acknowledgement timeout, milliseconds (0 disables)",
			get: func(o *options) string { return strconv.FormatInt(o.broker.AMQP.ConsumerTimeout.Milliseconds(), 10) },
			set: func(o *options, v string) error { return setMillis(&o.broker.AMQP.ConsumerTimeout, v) }},
		{name: "cluster-name", keys: []string{"cluster_name"}, usage: "cluster name announced to clients",
			get: func(o *options) string { return o.broker.AMQP.ClusterName },
			set: func(o *options, v string) error { o.broker.AMQP.ClusterName = v; return nil }},
		{name: "sync", keys: []string{"sync"}, usage: "fsync each store batch before confirming persistent messages (true), or rely on the OS page cache as RabbitMQ's classic queues do (false)",
			get: func(o *options) string { return strconv.FormatBool(o.broker.Sync) },
			set: func(o *options, v string) error {
				b, err := strconv.ParseBool(v)
				o.broker.Sync = b
				return err
			}},
		{name: "queue-memory", keys: []string{"queue_memory"}, usage: "bytes of messages (bodies plus ~256 B each) one queue keeps in memory before paging to the store (0: never page)",
			get: func(o *options) string { return strconv.FormatInt(o.broker.QueueMemory, 10) },
			set: func(o *options, v string) error { return setBytes(&o.broker.QueueMemory, v) }},
		{name: "total-memory", keys: []string{"total_memory"}, usage: "bytes of messages all queues together keep in memory before paging (0: no total limit)",
			get: func(o *options) string { return strconv.FormatInt(o.broker.TotalMemory, 10) },
			set: func(o *options, v string) error { return setBytes(&o.broker.TotalMemory, v) }},
		{name: "gc-interval", keys: []string{"gc_interval"}, usage: "how often the store reclaims disk space from deleted messages, seconds",
			get: func(o *options) string { return strconv.Itoa(int(o.broker.GCInterval / time.Second)) },
			set: func(o *options, v string) error {
				n, err := strconv.ParseUint(v, 10, 32)
				o.broker.GCInterval = time.Duration(n) * time.Second
				return err
			}},
		{name: "vm-memory-high-watermark-relative", keys: []string{"vm_memory_high_watermark.relative"},
			usage: "memory alarm when the resident set passes this fraction of the memory available (the cgroup limit, else RAM)",
			get:   func(o *options) string { return limitPart(o.broker.MemoryWatermark, false) },
			set:   func(o *options, v string) error { return setLimit(&o.broker.MemoryWatermark, v, false) }},
		{name: "vm-memory-high-watermark-absolute", keys: []string{"vm_memory_high_watermark.absolute"},
			usage: "memory alarm when the resident set passes this many bytes (units: 512MB, 2GiB)",
			get:   func(o *options) string { return limitPart(o.broker.MemoryWatermark, true) },
			set:   func(o *options, v string) error { return setLimit(&o.broker.MemoryWatermark, v, true) }},
		{name: "disk-free-limit-absolute", keys: []string{"disk_free_limit.absolute"},
			usage: "disk alarm when the data directory's filesystem has fewer bytes free (units: 50MB, 1GiB)",
			get:   func(o *options) string { return limitPart(o.broker.DiskFreeLimit, true) },
			set:   func(o *options, v string) error { return setLimit(&o.broker.DiskFreeLimit, v, true) }},
		{name: "disk-free-limit-relative", keys: []string{"disk_free_limit.relative"},
			usage: "disk alarm when fewer bytes are free than this many times the memory available",
			get:   func(o *options) string { return limitPart(o.broker.DiskFreeLimit, false) },
			set:   func(o *options, v string) error { return setLimit(&o.broker.DiskFreeLimit, v, false) }},
		{name: "mgmt-listen", keys: []string{"mgmt_listen"}, usage: "management HTTP API HOST:PORT (rabbitmq.conf's management.tcp.port and management.tcp.ip set its parts); empty: off",
			get: func(o *options) string { return o.broker.MgmtListen },
			set: func(o *options, v string) error { return setListen(&o.broker.MgmtListen, v) }},
		{name: "mgmt-port", keys: []string{"management.tcp.port"}, usage: "the management API's port alone",
			get: func(o *options) string { return portOf(o.broker.MgmtListen) },
			set: func(o *options, v string) error {
				return setPart(&o.broker.MgmtListen, broker.DefaultConfig().MgmtListen, "", v)
			}},
		{name: "mgmt-ip", keys: []string{"management.tcp.ip"}, usage: "the management API's address alone",
			get: func(o *options) string { return hostOf(o.broker.MgmtListen) },
			set: func(o *options, v string) error {
				return setPart(&o.broker.MgmtListen, broker.DefaultConfig().MgmtListen, v, "")
			}},
		{name: "mgmt-session-timeout", keys: []string{"management.login_session_timeout"},
			usage: "minutes a web console login lasts unused (0: 480, RabbitMQ's default)",
			get:   func(o *options) string { return strconv.Itoa(int(o.broker.MgmtSessionTimeout / time.Minute)) },
			set: func(o *options, v string) error {
				// At most a year: more would overflow a time.Duration.
				n, err := strconv.ParseUint(v, 10, 32)
				if err == nil && n > 366*24*60 {
					err = fmt.Errorf("%d minutes is more than a year", n)
				}
				o.broker.MgmtSessionTimeout = time.Duration(n) * time.Minute
				return err
			}},
		{name: "prometheus-listen", keys: []string{"prometheus_listen"}, usage: "Prometheus metrics HOST:PORT (rabbitmq.conf's prometheus.tcp.port and prometheus.tcp.ip set its parts); empty: off",
			get: func(o *options) string { return o.broker.PrometheusListen },
			set: func(o *options, v string) error { return setListen(&o.broker.PrometheusListen, v) }},
		{name: "prometheus-port", keys: []string{"prometheus.tcp.port"}, usage: "the metrics endpoint's port alone",
			get: func(o *options) string { return portOf(o.broker.PrometheusListen) },
			set: func(o *options, v string) error {
				return setPart(&o.broker.PrometheusListen, broker.DefaultConfig().PrometheusListen, "", v)
			}},
		{name: "prometheus-ip", keys: []string{"prometheus.tcp.ip"}, usage: "the metrics endpoint's address alone",
			get: func(o *options) string { return hostOf(o.broker.PrometheusListen) },
			set: func(o *options, v string) error {
				return setPart(&o.broker.PrometheusListen, broker.DefaultConfig().PrometheusListen, v, "")
			}},
		{name: "load-definitions", keys: []string{"load_definitions", "management.load_definitions"}, usage: "definitions file (RabbitMQ's JSON) applied at every start",
			get: func(o *options) string { return o.broker.LoadDefinitions },
			set: func(o *options, v string) error { o.broker.LoadDefinitions = v; return nil }},
		{name: "node-name", keys: []string{"node_name"}, usage: "the node's name (default warren@ and the host name)",
			get: func(o *options) string { return o.broker.NodeName },
			set: func(o *options, v string) error { o.broker.NodeName = v; return nil }},
		{name: "cluster-listen", keys: []string{"cluster_listen"}, usage: "the cluster listener's HOST:PORT, where the other nodes reach this one (used once the node is clustered)",
			get: func(o *options) string { return o.broker.ClusterListen },
			set: func(o *options, v string) error { return setListen(&o.broker.ClusterListen, v) }},
		{name: "cluster-seeds", keys: []string{"cluster_seeds"}, usage: "comma-separated cluster addresses (HOST:PORT) of the nodes that form the cluster; rabbitmq.conf's cluster_formation.classic_config.nodes.N too. Empty: a node of its own",
			get: func(o *options) string { return strings.Join(o.broker.ClusterSeeds, ",") },
			set: func(o *options, v string) error {
				o.broker.ClusterSeeds = nil
				for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
					if err := addSeed(&o.broker.ClusterSeeds, s); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "cluster-secret", keys: []string{"cluster_secret"}, usage: "the secret every node of the cluster shares (the Erlang cookie's role); empty: the file cluster-secret in the data directory, made at the first start",
			get: func(o *options) string { return o.broker.ClusterSecret },
			set: func(o *options, v string) error { o.broker.ClusterSecret = v; return nil }},
		{name: "pprof", keys: []string{"pprof"}, usage: "HOST:PORT to serve Go profiles on (net/http/pprof), for performance work; empty: off",
			get: func(o *options) string { return o.pprof },
			set: func(o *options, v string) error { o.pprof = v; return nil }},
		{name: "log-level", keys: []string{"log.level", "log.console.level"}, usage: "debug, info, warning or error",
			get: func(o *options) string { return strings.ToLower(o.logLevel.String()) },
			set: func(o *options, v string) error {
				if v == "warning" {
					v = "warn"
				}
				return o.logLevel.UnmarshalText([]byte(v))
			}},
	}
	all = append(all, tlsSettings("tls", "AMQP-over-TLS listener", []string{"tls_listen", "listeners.ssl.default"}, "ssl_options.",
		func(o *options) (*string, *tlsconf.Options) { return &o.broker.TLSListen, &o.broker.TLS })...)
	all = append(all, tlsSettings("mgmt-tls", "management API's HTTPS listener", []string{"management.ssl.port"}, "management.ssl.",
		func(o *options) (*string, *tlsconf.Options) { return &o.broker.MgmtTLSListen, &o.broker.MgmtTLS })...)
	return append(all, tlsSettings("prometheus-tls", "metrics' HTTPS listener", []string{"prometheus.ssl.port"}, "prometheus.ssl.",
		func(o *options) (*string, *tlsconf.Options) {
			return &o.broker.PrometheusTLSListen, &o.broker.PrometheusTLS
		})...)
}

// tlsSettings are a TLS listener's settings: NAME-listen (listenKeys),
// and NAME-cert, -key, -ca, -verify, -fail-if-no-peer-cert (the
// rabbitmq.conf keys optPrefix + certfile, keyfile, cacertfile, verify,
// fail_if_no_peer_cert). of gives the listener's address and options.
func tlsSettings(name, what string, listenKeys []string, optPrefix string, of func(*options) (*string, *tlsconf.Options)) []setting {
	addr := func(o *options) *string { a, _ := of(o); return a }
	opts := func(o *options) *tlsconf.Options { _, t := of(o); return t }
	file := func(flag, key, usage string, field func(*tlsconf.Options) *string) setting {
		return setting{name: name + "-" + flag, keys: []string{optPrefix + key}, usage: "the " + what + "'s " + usage,
			get: func(o *options) string { return *field(opts(o)) },
			set: func(o *options, v string) error { *field(opts(o)) = v; return nil }}
	}
	return []setting{
		{name: name + "-listen", keys: listenKeys, usage: what + " HOST:PORT (a bare port listens on all interfaces); empty: none",
			get: func(o *options) string { return *addr(o) },
			set: func(o *options, v string) error { return setListen(addr(o), v) }},
		file("cert", "certfile", "certificate chain, PEM", func(t *tlsconf.Options) *string { return &t.CertFile }),
		file("key", "keyfile", "private key, PEM", func(t *tlsconf.Options) *string { return &t.KeyFile }),
		file("ca", "cacertfile", "CA certificates that client certificates must chain to, PEM", func(t *tlsconf.Options) *string { return &t.CAFile }),
		{name: name + "-verify", keys: []string{optPrefix + "verify"}, usage: "verify_peer: the " + what + " asks clients for a certificate and verifies it; verify_none: it does not",
			get: func(o *options) string {
				if opts(o).VerifyPeer {
					return "verify_peer"
				}
				return "verify_none"
			},
			set: func(o *options, v string) error {
				switch v {
				case "verify_peer":
					opts(o).VerifyPeer = true
				case "verify_none":
					opts(o).VerifyPeer = false
				default:
					return fmt.Errorf("%q is neither verify_peer nor verify_none", v)
				}
				return nil
			}},
		{name: name + "-fail-if-no-peer-cert", keys: []string{optPrefix + "fail_if_no_peer_cert"}, usage: "with verify_peer, the " + what + " refuses clients that present no certificate",
			get: func(o *options) string { return strconv.FormatBool(opts(o).FailIfNoPeerCert) },
			set: func(o *options, v string) error {
				b, err := strconv.ParseBool(v)
				opts(o).FailIfNoPeerCert = b
				return err
			}},
	}
}

// setLimit sets an alarm limit from its absolute (bytes, with units) or
// relative (a fraction) form; the last one given wins.
func setLimit(l *flowcontrol.Limit, v string, absolute bool) error {
	if absolute {
		n, err := flowcontrol.ParseBytes(v)
		if err != nil {
			return err
		}
		*l = flowcontrol.Limit{Absolute: n}
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a fraction", v)
	}
	*l = flowcontrol.Limit{Relative: f}
	return nil
}

// limitPart shows a limit's absolute or relative part ("" when it is the
// other kind, or the default).
func limitPart(l flowcontrol.Limit, absolute bool) string {
	switch {
	case absolute && l.Absolute > 0:
		return strconv.FormatUint(l.Absolute, 10)
	case !absolute && l.Absolute == 0 && l.Relative > 0:
		return strconv.FormatFloat(l.Relative, 'g', -1, 64)
	}
	return ""
}

func setBytes(n *int64, v string) error {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return err
	}
	if x < 0 {
		return errors.New("must not be negative")
	}
	*n = x
	return nil
}

func setMillis(d *time.Duration, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return err
	}
	if n < 0 {
		return errors.New("must not be negative")
	}
	*d = time.Duration(n) * time.Millisecond
	return nil
}

// defaultOptions are the settings before any source is read.
func defaultOptions() options {
	return options{broker: broker.DefaultConfig(), logLevel: slog.LevelInfo}
}

// ignoredKeys are rabbitmq.conf keys a RabbitMQ operator's file may carry
// that have no meaning for Warren; they are accepted with a warning.
var ignoredKeyPrefixes = []string{"management.", "log.file", "cluster_formation.", "listeners.ssl.", "ssl_options."}

// loadFile applies a config file of "key = value" lines (# comments),
// returning keys it skipped.
func loadFile(o *options, r io.Reader, byKey map[string]setting) (ignored []string, err error) {
	sc := bufio.NewScanner(r)
	mechanisms := false // an auth_mechanisms.N key was seen
	seeds := false      // a cluster_formation.classic_config.nodes.N key was seen
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return ignored, fmt.Errorf("line %d: want key = value", n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if s, ok := byKey[k]; ok {
			if err := s.set(o, v); err != nil {
				return ignored, fmt.Errorf("line %d: %s: %w", n, k, err)
			}
			continue
		}
		if strings.HasPrefix(k, "auth_mechanisms.") {
			// RabbitMQ's list form, auth_mechanisms.1 = PLAIN and so on,
			// in the file's order: the first one replaces the default.
			if !mechanisms {
				o.broker.AMQP.AuthMechanisms = nil
				mechanisms = true
			}
			o.broker.AMQP.AuthMechanisms = append(o.broker.AMQP.AuthMechanisms, v)
			continue
		}
		if strings.HasPrefix(k, "cluster_formation.classic_config.nodes.") {
			if !seeds {
				o.broker.ClusterSeeds = nil
				seeds = true
			}
			if err := addSeed(&o.broker.ClusterSeeds, v); err != nil {
				return ignored, fmt.Errorf("line %d: %s: %w", n, k, err)
			}
			continue
		}
		if strings.HasPrefix(k, "loopback_users.") {
			// RabbitMQ's per-user form: loopback_users.guest = false
			user := strings.TrimPrefix(k, "loopback_users.")
			o.broker.LoopbackUsers = removeUser(o.broker.LoopbackUsers, user)
			if v == "true" {
				o.broker.LoopbackUsers = append(o.broker.LoopbackUsers, user)
			}
			continue
		}
		known := false
		for _, p := range ignoredKeyPrefixes {
			known = known || strings.HasPrefix(k, p)
		}
		if !known {
			return ignored, fmt.Errorf("line %d: unknown setting %q", n, k)
		}
		ignored = append(ignored, k)
	}
	return ignored, sc.Err()
}

// addSeed adds a cluster seed: HOST:PORT, or a RabbitMQ node name
// (name@host), which means the host's default cluster port.
func addSeed(seeds *[]string, v string) error {
	if _, host, ok := strings.Cut(v, "@"); ok {
		v = net.JoinHostPort(host, portOf(broker.DefaultConfig().ClusterListen))
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("cluster seed %q: %w", v, err)
	}
	*seeds = append(*seeds, v)
	return nil
}

func removeUser(users []string, user string) []string {
	out := users[:0:0]
	for _, u := range users {
		if u != user {
			out = append(out, u)
		}
	}
	return out
}

// parse builds the options from defaults, then the config file, then the
// environment, then the flags (each overriding the one before).
func parse(args []string, environ func(string) (string, bool), usageOut io.Writer) (options, []string, error) {
	o := defaultOptions()
	all := settings()
	byKey := map[string]setting{}
	byFlag := map[string]setting{}
	for _, s := range all {
		byFlag[s.name] = s
		for _, k := range s.keys {
			byKey[k] = s
		}
	}
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "-help" || a == "--help" {
			usage(usageOut, all)
			return o, nil, errHelp
		}
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			name, ok = strings.CutPrefix(a, "-")
		}
		if !ok {
			return o, nil, fmt.Errorf("unexpected argument %q", a)
		}
		name, val, hasVal := strings.Cut(name, "=")
		if _, known := byFlag[name]; !known {
			return o, nil, fmt.Errorf("unknown flag --%s (see --help)", name)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		flags[name] = val
	}
	cfgPath, _ := environ(byFlag["config"].env())
	if v, ok := flags["config"]; ok {
		cfgPath = v
	}
	var ignored []string
	if cfgPath != "" {
		f, err := os.Open(cfgPath)
		if err != nil {
			return o, nil, fmt.Errorf("config file: %w", err)
		}
		ignored, err = loadFile(&o, f, byKey)
		f.Close()
		if err != nil {
			return o, nil, fmt.Errorf("config file %s: %w", cfgPath, err)
		}
		o.config = cfgPath
	}
	for _, s := range all {
		if v, ok := environ(s.env()); ok {
			if err := s.set(&o, v); err != nil {
				return o, nil, fmt.Errorf("%s: %w", s.env(), err)
			}
		}
	}
	for _, s := range all {
		if v, ok := flags[s.name]; ok {
			if err := s.set(&o, v); err != nil {
				return o, nil, fmt.Errorf("--%s: %w", s.name, err)
			}
		}
	}
	return o, ignored, o.broker.Validate()
}

var errHelp = errors.New("help requested")

func usage(w io.Writer, all []setting) {
	def := defaultOptions()
	fmt.Fprintf(w, "Usage: warren [flags]\n\nWarren is an AMQP 0-9-1 message broker. Every setting can be given as a flag,\nas an environment variable, or as a key in the config file (lowest precedence).\n\n")
	for _, s := range all {
		fmt.Fprintf(w, "  --%s VALUE\n        %s\n        default: %q; env: %s", s.name, s.usage, s.get(&def), s.env())
		if len(s.keys) > 0 {
			fmt.Fprintf(w, "; config key: %s", strings.Join(s.keys, ", "))
		}
		fmt.Fprintln(w)
	}
}

// setListen sets a HOST:PORT listener ("" turns it off; a bare port listens
// on all interfaces).
func setListen(dst *string, v string) error {
	if v == "" || v == "none" {
		*dst = ""
		return nil
	}
	if _, err := strconv.Atoi(v); err == nil {
		v = net.JoinHostPort("", v)
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return err
	}
	*dst = v
	return nil
}

// setPart changes the host or the port of a listener; the other part is
// the listener's, or def's when it is off (so that a port alone does not
// open it on every interface).
func setPart(dst *string, def, host, port string) error {
	cur := *dst
	if cur == "" {
		cur = def
	}
	h, p := hostOf(cur), portOf(cur)
	if host != "" {
		h = host
	}
	if port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			return fmt.Errorf("port %q is not a number", port)
		}
		p = port
	}
	*dst = net.JoinHostPort(h, p)
	return nil
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
