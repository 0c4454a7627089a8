// Package mgmt is Warren's management HTTP API, in the shape of RabbitMQ's
// management plugin: the same paths, JSON fields, authentication (HTTP
// basic against the broker's users, access by user tag) and error bodies,
// so that rabbitmqadmin, monitoring scripts and client libraries' test
// suites work unchanged. It reads and changes the same objects the AMQP
// side does, through the same virtual host calls. It also serves the
// Prometheus metrics (see Metrics).
package mgmt

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/console"
	"github.com/warrenmq/warren/flowcontrol"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// Node describes the node the API serves.
type Node struct {
	// Name is the node's name, as RabbitMQ's "rabbit@host".
	Name    string
	Version string
	Started time.Time
	// Listeners are the node's listeners (protocol "amqp", "http",
	// "prometheus") for /api/overview and the port-listener check.
	Listeners []Listener
	// Memory returns the process's resident set in bytes (0 if unknown).
	Memory func() uint64
}

// Listener is one listening socket of the node.
type Listener struct {
	Protocol string
	IP       string
	Port     int
}

// Deps are what the API serves.
type Deps struct {
	Vhosts *vhost.Registry
	Users  *auth.Store
	AMQP   *amqp.Server
	// Alarms are the node's memory and disk alarms; nil: none are shown
	// and they cannot be changed.
	Alarms *flowcontrol.Monitor
	Node   Node
	Log    *slog.Logger
	// Cluster is the node's cluster; nil for a node of its own.
	Cluster Cluster
	// JoinAtRestart, on a node of its own, records that the node is to
	// join the cluster of the node at a cluster address when it restarts.
	JoinAtRestart func(addr string) error
	// ClusterName returns the cluster's name, the same on every node
	// (nil: the node's name); SetClusterName changes it (nil: it cannot
	// be changed).
	ClusterName    func() string
	SetClusterName func(name string) error
	// SessionTimeout is how long a console login lasts from the login
	// (0: DefaultSessionTimeout).
	SessionTimeout time.Duration
}

// maxBody is the largest request body the API reads (definitions files
// included); a bigger one is 413.
const maxBody = 32 << 20

// Server is the management API. It implements http.Handler.
type Server struct {
	d        Deps
	log      *slog.Logger
	router   router
	rates    *rates
	sessions *sessions
	console  http.Handler

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New returns the API over d. It samples message rates every few seconds
// until Close.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Node.Memory == nil {
		d.Node.Memory = func() uint64 { return 0 }
	}
	if d.ClusterName == nil {
		name := d.Node.Name
		d.ClusterName = func() string { return name }
	}
	s := &Server{d: d, log: d.Log, rates: newRates(), sessions: newSessions(d.SessionTimeout), console: console.Handler(),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.routes()
	s.serveCluster()
	go s.sampleLoop()
	return s
}

// Close stops the rate sampling.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// sampleLoop samples the message counters for the rates.
func (s *Server) sampleLoop() {
	defer close(s.done)
	t := time.NewTicker(rateInterval)
	defer t.Stop()
	s.sample(time.Now())
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}

// allQueues returns the queues of every virtual host.
func (s *Server) allQueues() []queue.Queue {
	var qs []queue.Queue
	for _, name := range s.d.Vhosts.Names() {
		if v := s.d.Vhosts.Get(name); v != nil {
			qs = append(qs, v.Queues()...)
		}
	}
	return qs
}

// sample records the node's and the queues' counters.
func (s *Server) sample(now time.Time) {
	s.rates.sample(s.d.AMQP.Totals(), now)
	s.rates.sampleQueues(s.allQueues(), rateInterval.Seconds())
	s.rates.sampleConnections(s.d.AMQP.Connections(), rateInterval.Seconds())
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A handler bug must not take the node down; say so instead.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("management API handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, "internal_server_error", "internal error")
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	w.Header().Set("Cache-Control", "no-cache")
	if r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
		s.console.ServeHTTP(w, r)
		return
	}
	h := s.router.lookup(r)
	if h == nil {
		writeError(w, http.StatusNotFound, "Object Not Found", "Not Found")
		return
	}
	h(w, r)
}

// apiError is an error with its HTTP status and RabbitMQ's error words.
type apiError struct {
	status int
	kind   string // "bad_request", "not_found", ...
	reason string
}

func (e *apiError) Error() string { return e.reason }

func badRequest(reason string) error { return &apiError{http.StatusBadRequest, "bad_request", reason} }

func notFound() error { return &apiError{http.StatusNotFound, "Object Not Found", "Not Found"} }

func forbidden(reason string) error {
	return &apiError{http.StatusForbidden, "not_authorised", reason}
}

// writeError writes RabbitMQ's error body.
func writeError(w http.ResponseWriter, status int, kind, reason string) {
	writeStatusJSON(w, status, map[string]string{"error": kind, "reason": reason})
}

// fail writes err as the response.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.kind, ae.reason)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "bad_request", "request body larger than "+strconv.Itoa(maxBody)+" bytes")
	default:
		var we *wire.Error
		if !errors.As(err, &we) {
			s.log.Error("management API request failed", "err", err)
			writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
			return
		}
		// RabbitMQ's words without the reply code's name.
		reason := we.Text
		if _, rest, ok := strings.Cut(reason, " - "); ok {
			reason = rest
		}
		switch we.Code {
		case wire.NotFound:
			writeError(w, http.StatusNotFound, "not_found", reason)
			return
		case wire.AccessRefused:
			writeError(w, http.StatusForbidden, "not_authorised", reason)
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", reason)
	}
}

// writeJSON writes v as the response.
func writeJSON(w http.ResponseWriter, v any) { writeStatusJSON(w, http.StatusOK, v) }

// writeStatusJSON writes v as the response, with status.
func writeStatusJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// created answers a PUT or POST that changed something: 201 when it made
// a new object, 204 otherwise, as RabbitMQ does.
func created(w http.ResponseWriter, isNew bool) {
	if isNew {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeBody reads a JSON object body into v; an empty body leaves v as
// it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		return badRequest("not_json")
	}
	return nil
}
