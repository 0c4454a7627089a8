package flowcontrol

import (
	"sync/atomic"
	"testing"
)

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1000", 1000, true},
		{"512MB", 512_000_000, true},
		{"512MiB", 512 << 20, true},
		{"2GB", 2_000_000_000, true},
		{"1gib", 1 << 30, true},
		{"100k", 100 << 10, true},
		{" 50000000 ", 50_000_000, true},
		{"", 0, false},
		{"MB", 0, false},
		{"12 parsecs", 0, false},
		{"-5", 0, false},
		{"99999999999999999999GB", 0, false},
	} {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// fakeNode is memory and disk that a test sets.
type fakeNode struct {
	resident, free atomic.Uint64
}

func (f *fakeNode) config() Config {
	return Config{
		MemoryWatermark: DefaultMemoryWatermark,
		DiskFreeLimit:   DefaultDiskFreeLimit,
		Resident:        f.resident.Load,
		Available:       func() uint64 { return 1000 },
		DiskFree:        func(string) (uint64, error) { return f.free.Load(), nil },
	}
}

func TestAlarms(t *testing.T) {
	t.Parallel()
	var node fakeNode
	node.resident.Store(500)
	node.free.Store(100_000_000)
	var changes []Status
	relieved := 0
	cfg := node.config()
	cfg.OnChange = func(s Status) { changes = append(changes, s) }
	cfg.Relieve = func() { relieved++ }
	var limits []uint64
	cfg.OnLimit = func(b uint64) { limits = append(limits, b) }
	m := New(cfg)
	if s := m.Status(); s.MemoryAlarm || s.DiskAlarm || s.MemoryLimit != 600 || s.DiskFreeLimit != 50_000_000 || s.Reason() != "" {
		t.Fatalf("at start: %+v", s)
	}
	// Memory over the watermark sets the memory alarm, reported once.
	node.resident.Store(700)
	m.sample(false)
	m.sample(false)
	if s := m.Status(); !s.MemoryAlarm || s.Reason() != "low on memory" || len(changes) != 1 || relieved != 1 { // at most once a second
		t.Fatalf("memory over the watermark: %+v, %d changes, relieved %d times", s, len(changes), relieved)
	}
	// Raising the watermark clears it at once.
	if err := m.SetMemoryWatermark(Limit{Absolute: 800}); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); s.MemoryAlarm || s.MemoryLimit != 800 || len(changes) != 2 {
		t.Fatalf("watermark raised: %+v, %d changes", s, len(changes))
	}
	if len(limits) != 2 || limits[0] != 600 || limits[1] != 800 {
		t.Fatalf("OnLimit got %v, want the watermark in bytes at start and when set: [600 800]", limits)
	}
	// A disk limit above the free space sets the disk alarm; relative is
	// of the available memory.
	if err := m.SetDiskFreeLimit(Limit{Absolute: 200_000_000}); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); !s.DiskAlarm || s.Reason() != "low on disk" {
		t.Fatalf("disk limit above free space: %+v", s)
	}
	node.resident.Store(900)
	m.sample(false)
	if s := m.Status(); s.Reason() != "low on memory and disk" {
		t.Fatalf("both: %+v", s)
	}
	if err := m.SetDiskFreeLimit(Limit{Relative: 2}); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); s.DiskAlarm || s.DiskFreeLimit != 2000 {
		t.Fatalf("relative disk limit: %+v", s)
	}
	for _, bad := range []Limit{{Relative: -1}} {
		if err := m.SetMemoryWatermark(bad); err == nil {
			t.Errorf("watermark %+v taken", bad)
		}
	}
}

// Limits of 0 from the configuration are kept, not replaced by the
// defaults: a watermark of 0 blocks all publishing, a disk limit of 0
// never alarms.
func TestZeroLimits(t *testing.T) {
	t.Parallel()
	var node fakeNode
	node.resident.Store(1)
	cfg := node.config()
	cfg.MemoryWatermark, cfg.DiskFreeLimit = Limit{}, Limit{}
	m := New(cfg)
	if s := m.Status(); !s.MemoryAlarm || s.DiskAlarm || s.MemoryLimit != 0 || s.DiskFreeLimit != 0 {
		t.Fatalf("zero limits: %+v", s)
	}
}

// The OS readers answer on Linux.
func TestReadsTheOS(t *testing.T) {
	t.Parallel()
	if ResidentMemory() == 0 || AvailableMemory() == 0 {
		t.Fatalf("resident %d, available %d", ResidentMemory(), AvailableMemory())
	}
	if free, err := DiskFree(t.TempDir()); err != nil || free == 0 {
		t.Fatalf("DiskFree = %d, %v", free, err)
	}
	if _, err := DiskFree("/no/such/dir"); err == nil {
		t.Fatal("DiskFree of a missing directory succeeded")
	}
}

func TestStartClose(t *testing.T) {
	t.Parallel()
	var node fakeNode
	m := New(node.config())
	m.Start()
	m.Close()
}
