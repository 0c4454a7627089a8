// Package flowcontrol watches the node's resources as RabbitMQ's alarms
// do: a memory alarm when the process's resident memory passes a high
// watermark, and a disk alarm when the free space on the data directory's
// filesystem falls below a limit. It only watches and reports: what to do
// while an alarm is set (block publishers) is its caller's.
//
// The watermark defaults to 0.6 of the memory available to the process, as
// RabbitMQ 4 has it (3.x had 0.4): Warren's resident memory includes the
// store's mapped files, which the kernel can drop under pressure, so the
// higher of RabbitMQ's two defaults fits it better. The disk limit
// defaults to RabbitMQ's 50 MB.
package flowcontrol

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limit is a threshold: an absolute number of bytes when Absolute is set,
// else Relative times a base (the memory available to the process).
type Limit struct {
	Relative float64
	Absolute uint64
}

// Bytes is the limit in bytes against base.
func (l Limit) Bytes(base uint64) uint64 {
	if l.Absolute > 0 {
		return l.Absolute
	}
	return uint64(l.Relative * float64(base))
}

// String is the limit as rabbitmq.conf would say it.
func (l Limit) String() string {
	if l.Absolute > 0 {
		return strconv.FormatUint(l.Absolute, 10)
	}
	return strconv.FormatFloat(l.Relative, 'g', -1, 64)
}

// The defaults.
var (
	DefaultMemoryWatermark = Limit{Relative: 0.6}
	DefaultDiskFreeLimit   = Limit{Absolute: 50_000_000}
)

// units are the suffixes RabbitMQ's information units take: powers of
// 1000 for kB, MB, GB and of 1024 for the others.
var units = map[string]uint64{
	"": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1000_000,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1000_000_000,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1000_000_000_000,
}

// ParseBytes reads an amount of memory or disk as rabbitmq.conf writes
// it: a whole number of bytes, optionally followed by a unit (512MB, 2GiB,
// 100k).
func ParseBytes(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	mult, ok := units[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok || i == 0 {
		return 0, fmt.Errorf("%q is not an amount of bytes (a number, optionally with kB, MB, GB, KiB, MiB, GiB)", s)
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is not an amount of bytes", s)
	}
	return n * mult, nil
}

// Status is what the monitor last saw.
type Status struct {
	MemoryAlarm, DiskAlarm bool
	// MemoryUsed is the resident set; MemoryLimit the watermark in bytes;
	// MemoryAvailable what the watermark is relative to.
	MemoryUsed, MemoryLimit, MemoryAvailable uint64
	MemoryWatermark                          Limit
	// DiskFree is the free space on the data directory's filesystem,
	// DiskFreeLimit the limit in bytes.
	DiskFree, DiskFreeLimit uint64
	DiskLimit               Limit
}

// Reason is the connection.blocked reason for the alarms set ("" when
// none is), as RabbitMQ words it.
func (s Status) Reason() string {
	switch {
	case s.MemoryAlarm && s.DiskAlarm:
		return "low on memory and disk"
	case s.MemoryAlarm:
		return "low on memory"
	case s.DiskAlarm:
		return "low on disk"
	}
	return ""
}

// Config configures a Monitor.
type Config struct {
	// MemoryWatermark and DiskFreeLimit are taken as given (the defaults
	// are DefaultMemoryWatermark and DefaultDiskFreeLimit): a watermark of
	// 0 blocks all publishing and a disk limit of 0 never alarms, as on
	// RabbitMQ. The disk limit's Relative is of the available memory.
	MemoryWatermark Limit
	DiskFreeLimit   Limit
	DataDir         string
	// Interval is how often memory is sampled (default 25 ms: reading
	// the resident set costs microseconds, and a publisher can add only
	// what it sends in one interval before it is blocked: on this machine
	// a fast one added up to 100 MiB in 100 ms); the disk about once a
	// second.
	Interval time.Duration
	// OnChange is called, from the monitor's goroutine or a Set call,
	// each time an alarm sets or clears.
	OnChange func(Status)
	// Relieve is called while the memory alarm is set, at most once a
	// second, to give memory back (the broker has the Go runtime return
	// freed heap to the OS, so that what consumers drained shows in the
	// resident set).
	Relieve func()
	// OnLimit is called with the watermark in bytes when the monitor
	// starts and each time the watermark changes (the broker makes it the
	// Go runtime's soft memory limit, so the collector works harder as the
	// heap nears the watermark instead of letting garbage carry the
	// process past it).
	OnLimit func(bytes uint64)
	Log     *slog.Logger

	// What is measured; the defaults read the OS (see memory.go). Tests
	// replace them.
	Resident  func() uint64
	Available func() uint64
	DiskFree  func(dir string) (uint64, error)
}

// Monitor samples the node's memory and disk and keeps the alarms.
type Monitor struct {
	cfg Config

	sampling sync.Mutex // one sample at a time, so changes are reported in order
	relieved time.Time  // when Relieve last ran, under sampling
	mu       sync.Mutex
	status   Status

	stop chan struct{}
	done chan struct{}
}

// New returns a monitor that has sampled once. Start samples on.
func New(cfg Config) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = 25 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Resident == nil {
		cfg.Resident = ResidentMemory
	}
	if cfg.Available == nil {
		cfg.Available = AvailableMemory
	}
	if cfg.DiskFree == nil {
		cfg.DiskFree = DiskFree
	}
	m := &Monitor{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	m.status.MemoryWatermark, m.status.DiskLimit = cfg.MemoryWatermark, cfg.DiskFreeLimit
	m.status.MemoryAvailable = cfg.Available()
	m.sample(true)
	m.reportLimit()
	return m
}

// Start samples every Interval until Close.
func (m *Monitor) Start() {
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		diskEvery := max(1, int(time.Second/m.cfg.Interval))
		for n := 1; ; n++ {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.sample(n%diskEvery == 0)
			}
		}
	}()
}

// Close stops sampling (after Start).
func (m *Monitor) Close() {
	close(m.stop)
	<-m.done
}

// Status returns what the monitor last saw.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// SetMemoryWatermark changes the memory watermark and applies it at once.
// A watermark of 0 sets the alarm for good: it stops all publishing, as
// on RabbitMQ.
func (m *Monitor) SetMemoryWatermark(l Limit) error {
	return m.setLimit(&m.status.MemoryWatermark, l, "memory high watermark", false)
}

// SetDiskFreeLimit changes the disk free limit and applies it at once.
func (m *Monitor) SetDiskFreeLimit(l Limit) error {
	return m.setLimit(&m.status.DiskLimit, l, "disk free limit", true)
}

// setLimit sets *field (a limit in status) to l and samples at once, the
// disk too when disk is set.
func (m *Monitor) setLimit(field *Limit, l Limit, what string, disk bool) error {
	if l.Relative < 0 || math.IsNaN(l.Relative) || math.IsInf(l.Relative, 0) {
		return fmt.Errorf("the %s must be a fraction or a number of bytes, not negative", what)
	}
	m.mu.Lock()
	*field = l
	m.mu.Unlock()
	m.cfg.Log.Info(what+" set", "value", l.String())
	m.sample(disk)
	if !disk {
		m.reportLimit()
	}
	return nil
}

// reportLimit hands the watermark in bytes to OnLimit.
func (m *Monitor) reportLimit() {
	if m.cfg.OnLimit != nil {
		m.cfg.OnLimit(m.Status().MemoryLimit)
	}
}

// sample measures memory (and the disk when disk is set), updates the
// alarms and reports a change.
func (m *Monitor) sample(disk bool) {
	m.sampling.Lock()
	defer m.sampling.Unlock()
	used := m.cfg.Resident()
	var free uint64
	var diskErr error
	if disk {
		free, diskErr = m.cfg.DiskFree(m.cfg.DataDir)
	}
	m.mu.Lock()
	before := m.status
	s := &m.status
	s.MemoryUsed = used
	s.MemoryLimit = s.MemoryWatermark.Bytes(s.MemoryAvailable)
	s.MemoryAlarm = used > s.MemoryLimit
	s.DiskFreeLimit = s.DiskLimit.Bytes(s.MemoryAvailable)
	if disk && diskErr == nil {
		s.DiskFree = free
		s.DiskAlarm = free < s.DiskFreeLimit
	}
	after := *s
	m.mu.Unlock()
	if after.MemoryAlarm && m.cfg.Relieve != nil && time.Since(m.relieved) >= time.Second {
		m.relieved = time.Now()
		m.cfg.Relieve()
	}
	if diskErr != nil {
		m.cfg.Log.Warn("measuring free disk space", "dir", m.cfg.DataDir, "err", diskErr)
	}
	if before.MemoryAlarm != after.MemoryAlarm {
		m.cfg.Log.Warn("memory alarm "+setOrCleared(after.MemoryAlarm), "used", after.MemoryUsed, "limit", after.MemoryLimit)
	}
	if before.DiskAlarm != after.DiskAlarm {
		m.cfg.Log.Warn("disk alarm "+setOrCleared(after.DiskAlarm), "free", after.DiskFree, "limit", after.DiskFreeLimit)
	}
	if (before.MemoryAlarm != after.MemoryAlarm || before.DiskAlarm != after.DiskAlarm) && m.cfg.OnChange != nil {
		m.cfg.OnChange(after)
	}
}

func setOrCleared(set bool) string {
	if set {
		return "set"
	}
	return "cleared"
}
