package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitIntegrity = 3 // messages lost, duplicated or out of order
)

// closeWait bounds how long producers wait for the broker to read what they
// wrote (under flow control this can take many seconds).
const closeWait = 5 * time.Minute

// checkEvery is how often the coordinator looks at end conditions.
const checkEvery = 10 * time.Millisecond

// summary is the result of a run; --json prints it as is.
type summary struct {
	ID            string    `json:"id"`
	StopReason    string    `json:"stop_reason"`
	Error         string    `json:"error,omitempty"`
	Producers     int       `json:"producers"`
	Consumers     int       `json:"consumers"`
	Size          int       `json:"size"`
	Sent          uint64    `json:"sent"`
	Confirmed     uint64    `json:"confirmed"`
	Nacked        uint64    `json:"nacked"`
	Returned      uint64    `json:"returned"`
	Received      uint64    `json:"received"`
	SendSeconds   float64   `json:"send_seconds"`
	RecvSeconds   float64   `json:"receive_seconds"`
	SendRate      float64   `json:"send_rate"`
	RecvRate      float64   `json:"receive_rate"`
	LatencyUs     latencyUs `json:"latency_us"`
	ElapsedSecond float64   `json:"elapsed_seconds"`
	// Drained is false when the drain ended without everything expected
	// having arrived (timeout, -D, interrupt, error).
	Drained bool `json:"drained"`
	// Blocked is true if the broker sent connection.blocked to a producer.
	Blocked bool `json:"connection_blocked"`
	integrity
}

type latencyUs struct {
	Min    int64 `json:"min"`
	Median int64 `json:"median"`
	P75    int64 `json:"p75"`
	P95    int64 `json:"p95"`
	P99    int64 `json:"p99"`
	Max    int64 `json:"max"`
}

func latencyOf(h *histogram) latencyUs {
	us := func(p float64) int64 { return h.percentile(p) / 1000 }
	return latencyUs{Min: us(0), Median: us(50), P75: us(75), P95: us(95), P99: us(99), Max: us(100)}
}

// runner is one test run: it owns every producer and consumer.
type runner struct {
	o         *Options
	id        string
	uri       amqp.URI
	topo      *topology
	producers []*producer
	consumers []*consumer
	out       io.Writer // interval lines
	stopSig   <-chan os.Signal

	clock     clock
	start     time.Time
	sendStart time.Time
	recvStart time.Time

	// reporting state
	prev   counts
	prevAt time.Time
	total  histogram
	inter  histogram
}

type counts struct{ sent, confirmed, nacked, returned, received uint64 }

func newTestID() string {
	return fmt.Sprintf("test-%s-%03d", time.Now().Format("150405"), rand.IntN(1000))
}

// run carries out the test described by o and returns its summary.
func run(o *Options, out io.Writer, stopSig <-chan os.Signal) (*summary, error) {
	uri, err := amqp.ParseURI(o.URI)
	if err != nil {
		return nil, fmt.Errorf("uri: %w", err)
	}
	r := &runner{o: o, id: o.ID, uri: uri, out: out, stopSig: stopSig, topo: newTopology(o)}
	if r.id == "" {
		r.id = newTestID()
	}
	r.clock = newClock()
	r.start = r.clock.base
	defer r.closeAll()
	if err := r.setup(); err != nil {
		return nil, err
	}
	return r.execute(), nil
}

func (r *runner) setup() error {
	o := r.o
	setup, err := dial(r.uri, "warren-perf-setup")
	if err != nil {
		return err
	}
	if err := r.topo.declareShared(setup, o); err != nil {
		setup.nc.Close()
		return err
	}
	if err := setup.close(); err != nil {
		return fmt.Errorf("close setup connection: %w", err)
	}
	startNano := r.start.UnixNano()
	for i := 0; i < o.Consumers; i++ {
		c, err := dial(r.uri, fmt.Sprintf("warren-perf-consumer-%d", i))
		if err != nil {
			return err
		}
		q := r.topo.consumerQueue[i]
		name := r.topo.queues[q]
		if r.topo.serverNamed {
			if name, err = r.topo.declareOwn(c, o, i); err != nil {
				c.nc.Close()
				return err
			}
			r.topo.queues[q] = name
		}
		if !o.Polling && o.Prefetch > 0 {
			if err := c.qos(o.Prefetch); err != nil {
				c.nc.Close()
				return err
			}
		}
		cs := newConsumer(i, c, name, o, &r.clock, newReceiveTrack(q, o.Producers, startNano))
		r.consumers = append(r.consumers, cs)
		go cs.run()
	}
	for i := 0; i < o.Producers; i++ {
		c, err := dial(r.uri, fmt.Sprintf("warren-perf-producer-%d", i))
		if err != nil {
			return err
		}
		if o.ConfirmMode() {
			if err := c.confirmSelect(); err != nil {
				c.nc.Close()
				return err
			}
		}
		r.producers = append(r.producers, newProducer(uint16(i), c, o, &r.clock, r.topo.exchange, r.topo.producerKey[i]))
	}
	return nil
}

// closeAll tears down whatever is still open after an error.
func (r *runner) closeAll() {
	for _, p := range r.producers {
		p.stop.Store(true)
		p.c.nc.Close()
	}
	for _, cs := range r.consumers {
		cs.stopping.Store(true)
		cs.begin()
		cs.c.nc.Close()
	}
}

func (r *runner) execute() *summary {
	o := r.o
	r.sendStart = time.Now()
	if !o.ConsumeAfterPublish {
		r.recvStart = r.sendStart
		for _, cs := range r.consumers {
			cs.begin()
		}
	}
	for _, p := range r.producers {
		go p.read()
		go p.run(r.clock.baseNano + int64(r.sendStart.Sub(r.clock.base)))
	}
	producersDone := make(chan struct{})
	go func() {
		for _, p := range r.producers {
			<-p.runDone
		}
		close(producersDone)
	}()

	r.prevAt = r.sendStart
	report := time.NewTicker(o.interval())
	defer report.Stop()
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	var deadline <-chan time.Time
	if o.TimeLimit > 0 {
		t := time.NewTimer(time.Duration(o.TimeLimit) * time.Second)
		defer t.Stop()
		deadline = t.C
	}

	// Run phase.
	reason, fatal := "", error(nil)
	for reason == "" {
		select {
		case <-report.C:
			r.reportInterval()
		case <-deadline:
			reason = "Reached time limit"
		case <-r.stopSig:
			reason = "Interrupted"
		case <-producersDone:
			if fatal = r.failure(); fatal != nil {
				reason = "Error"
			} else if len(r.producers) > 0 {
				reason = "Producers reached message count"
			}
			producersDone = nil
		case <-check.C:
			if fatal = r.failure(); fatal != nil {
				reason = "Error"
			} else if len(r.consumers) > 0 && o.CMessages > 0 && r.consumersDone() {
				reason = "Consumers reached message count"
			}
		}
	}
	sendEnd := r.stopProducers(report.C)
	if fatal == nil {
		fatal = r.failure()
	}
	if o.ConsumeAfterPublish {
		r.recvStart = time.Now()
		for _, cs := range r.consumers {
			cs.begin()
		}
	}
	drained := false
	if fatal == nil && reason != "Interrupted" {
		drained, fatal = r.drain(report.C, check.C)
	}
	r.stopConsumers()
	if fatal == nil {
		fatal = r.failure()
	}
	r.reportInterval()
	fmt.Fprintf(r.out, "id: %s, test stopped (%s)\n", r.id, reason)
	return r.summarize(reason, fatal, drained, sendEnd)
}

// failure returns the first error of a producer or consumer.
func (r *runner) failure() error {
	for _, p := range r.producers {
		select {
		case <-p.readerDone:
			if p.readerErr != nil && !p.stop.Load() {
				return fmt.Errorf("producer %d: %w", p.id, p.readerErr)
			}
		default:
		}
		select {
		case <-p.runDone:
			if p.err != nil {
				return p.err
			}
		default:
		}
		if p.closeErr != nil {
			return p.closeErr
		}
	}
	for _, cs := range r.consumers {
		select {
		case <-cs.done:
			if cs.err != nil {
				return cs.err
			}
		default:
		}
	}
	return nil
}

func (r *runner) consumersDone() bool {
	for _, cs := range r.consumers {
		select {
		case <-cs.done:
		default:
			return false
		}
	}
	return true
}

// stopProducers stops publishing, waits for each producer to settle its
// confirms (reporting meanwhile) and closes their connections. It returns the
// time the last message was written.
func (r *runner) stopProducers(report <-chan time.Time) time.Time {
	for _, p := range r.producers {
		p.stop.Store(true)
		p.notify()
	}
	var end time.Time
	for _, p := range r.producers {
		for !waitFor(p.runDone, report, r) {
		}
		if p.lastSend.After(end) {
			end = p.lastSend
		}
	}
	finished := make(chan struct{})
	abort := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, p := range r.producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.finish(abort)
			}()
		}
		wg.Wait()
		close(finished)
	}()
	limit := time.NewTimer(closeWait)
	defer limit.Stop()
	for {
		select {
		case <-finished:
			return end
		case <-report:
			r.reportInterval()
		case <-r.stopSig:
			close(abort)
			<-finished
			return end
		case <-limit.C:
			close(abort)
			<-finished
			return end
		}
	}
}

// waitFor waits for done, printing a report line if one falls due first.
func waitFor(done <-chan struct{}, report <-chan time.Time, r *runner) bool {
	select {
	case <-done:
		return true
	case <-report:
		r.reportInterval()
		return false
	}
}

// drain lets consumers receive what is still on its way: until every queue
// has what it should, consumers with -D finish, or nothing arrives for
// --drain-timeout. It reports whether everything expected arrived.
func (r *runner) drain(report, check <-chan time.Time) (bool, error) {
	o := r.o
	if len(r.consumers) == 0 {
		return true, nil
	}
	idle := time.Duration(o.DrainTimeout * float64(time.Second))
	lastProgress := time.Now()
	lastCount := r.received()
	for {
		select {
		case <-report:
			r.reportInterval()
		case <-r.stopSig:
			return false, nil
		case <-check:
			if err := r.failure(); err != nil {
				return false, err
			}
			if o.CMessages > 0 {
				if r.consumersDone() {
					return true, nil
				}
			} else if r.allArrived() {
				return true, nil
			}
			if n := r.received(); n != lastCount {
				lastCount, lastProgress = n, time.Now()
			} else if time.Since(lastProgress) > idle {
				return false, nil
			}
		}
	}
}

// allArrived reports whether each queue has received every message its
// producers should have delivered to it.
func (r *runner) allArrived() bool {
	got := make([]uint64, len(r.topo.queues))
	has := make([]bool, len(r.topo.queues))
	for _, cs := range r.consumers {
		got[cs.track.queue] += cs.track.unique.Load()
		has[cs.track.queue] = true
	}
	for q, ps := range r.topo.routes {
		if !has[q] {
			continue
		}
		var want uint64
		for _, i := range ps {
			want += r.producers[i].expected()
		}
		if got[q] < want {
			return false
		}
	}
	return true
}

func (r *runner) stopConsumers() {
	for _, cs := range r.consumers {
		cs.stop()
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for _, cs := range r.consumers {
		select {
		case <-cs.done:
		case <-timeout.C:
			cs.c.nc.Close()
			<-cs.done
		}
	}
}

func (r *runner) received() uint64 {
	var n uint64
	for _, cs := range r.consumers {
		n += cs.track.received.Load()
	}
	return n
}

func (r *runner) snapshot() counts {
	var c counts
	for _, p := range r.producers {
		c.sent += p.sent.Load()
		c.confirmed += p.confirmed.Load()
		c.nacked += p.nacked.Load()
		c.returned += p.returned.Load()
	}
	c.received = r.received()
	return c
}

// reportInterval prints one PerfTest-style line for the time since the last.
func (r *runner) reportInterval() {
	o := r.o
	now := time.Now()
	cur := r.snapshot()
	secs := now.Sub(r.prevAt).Seconds()
	if secs <= 0 {
		return
	}
	rate := func(a, b uint64) int64 { return int64(float64(a-b)/secs + 0.5) }
	r.inter.reset()
	for _, cs := range r.consumers {
		cs.lat.drainInto(&r.inter)
	}
	r.total.add(&r.inter)
	line := fmt.Sprintf("id: %s, time: %.3fs", r.id, now.Sub(r.start).Seconds())
	if o.Producers > 0 {
		line += fmt.Sprintf(", sent: %d msg/s", rate(cur.sent, r.prev.sent))
		if o.Mandatory() {
			line += fmt.Sprintf(", returned: %d msg/s", rate(cur.returned, r.prev.returned))
		}
		if o.ConfirmMode() {
			line += fmt.Sprintf(", confirmed: %d msg/s, nacked: %d msg/s", rate(cur.confirmed, r.prev.confirmed), rate(cur.nacked, r.prev.nacked))
		}
	}
	if o.Consumers > 0 {
		l := latencyOf(&r.inter)
		line += fmt.Sprintf(", received: %d msg/s, min/median/75th/95th/99th consumer latency: %d/%d/%d/%d/%d µs",
			rate(cur.received, r.prev.received), l.Min, l.Median, l.P75, l.P95, l.P99)
	}
	fmt.Fprintln(r.out, line)
	r.prev, r.prevAt = cur, now
}

func (r *runner) summarize(reason string, fatal error, drained bool, sendEnd time.Time) *summary {
	o := r.o
	cur := r.snapshot()
	s := &summary{
		ID: r.id, StopReason: reason, Producers: o.Producers, Consumers: o.Consumers, Size: o.Size,
		Sent: cur.sent, Confirmed: cur.confirmed, Nacked: cur.nacked, Returned: cur.returned, Received: cur.received,
		LatencyUs:     latencyOf(&r.total),
		ElapsedSecond: time.Since(r.start).Seconds(),
	}
	if fatal != nil {
		s.Error = fatal.Error()
	}
	if !sendEnd.IsZero() {
		s.SendSeconds = sendEnd.Sub(r.sendStart).Seconds()
		if s.SendSeconds > 0 {
			s.SendRate = float64(cur.sent) / s.SendSeconds
		}
	}
	var lastRecv int64
	for _, cs := range r.consumers {
		lastRecv = max(lastRecv, cs.lastRecv.Load())
	}
	if lastRecv > 0 && !r.recvStart.IsZero() {
		s.RecvSeconds = time.Unix(0, lastRecv).Sub(r.recvStart).Seconds()
		if s.RecvSeconds > 0 {
			s.RecvRate = float64(cur.received) / s.RecvSeconds
		}
	}
	tracks := make([]*receiveTrack, len(r.consumers))
	for i, cs := range r.consumers {
		tracks[i] = cs.track
	}
	pubs := make([]publishRecord, len(r.producers))
	for i, p := range r.producers {
		pubs[i] = p.rec
		pubs[i].sent = p.sent.Load()
		pubs[i].returns = p.returned.Load()
	}
	checkLoss := fatal == nil && o.Consumers > 0 && o.CMessages == 0 && reason != "Interrupted"
	s.integrity = check(tracks, pubs, r.topo.routes, checkLoss, o.Size < idSize)
	switch {
	case fatal != nil:
		s.Reason = "the run failed"
	case o.Consumers == 0:
		s.Reason = "no consumers"
	case o.CMessages > 0:
		s.Reason = "consumers stop at -D messages"
	case reason == "Interrupted":
		s.Reason = "interrupted"
	}
	s.Drained = drained
	for _, p := range r.producers {
		s.Blocked = s.Blocked || p.blockedSeen.Load()
	}
	return s
}

func printSummary(w io.Writer, s *summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	fmt.Fprintf(w, "id: %s, sending rate avg: %d msg/s\n", s.ID, int64(s.SendRate+0.5))
	fmt.Fprintf(w, "id: %s, receiving rate avg: %d msg/s\n", s.ID, int64(s.RecvRate+0.5))
	l := s.LatencyUs
	fmt.Fprintf(w, "id: %s, consumer latency min/median/75th/95th/99th/max %d/%d/%d/%d/%d/%d µs\n", s.ID, l.Min, l.Median, l.P75, l.P95, l.P99, l.Max)
	fmt.Fprintf(w, "id: %s, sent: %d, confirmed: %d, nacked: %d, returned: %d, received: %d\n", s.ID, s.Sent, s.Confirmed, s.Nacked, s.Returned, s.Received)
	checked := "loss checked"
	if !s.Checked {
		checked = "loss not checked: " + s.Reason
	}
	fmt.Fprintf(w, "id: %s, lost: %d, duplicated: %d, out-of-order: %d, redelivered: %d, unconfirmed: %d, foreign: %d (%s)\n",
		s.ID, s.Lost, s.Duplicated, s.OutOfOrder, s.Redelivered, s.Unconfirmed, s.Foreign, checked)
	if s.Blocked {
		fmt.Fprintf(w, "id: %s, the broker blocked publishing (connection.blocked) during the run\n", s.ID)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "id: %s, error: %s\n", s.ID, s.Error)
	}
	return nil
}

// exitCode maps a summary to the process exit status.
func exitCode(s *summary) int {
	switch {
	case s.Error != "":
		return exitError
	case s.Lost > 0 || s.Duplicated > 0 || s.OutOfOrder > 0:
		return exitIntegrity
	}
	return exitOK
}
