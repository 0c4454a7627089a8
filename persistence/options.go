package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configures a Store. Start from DefaultOptions; Open fills zero
// durations and sizes with their defaults.
type Options struct {
	// Dir is the Badger directory. It is created if missing.
	Dir string

	// Sync, when true (the default), makes every group-commit batch fsynced
	// before it is reported durable. When false the store relies on the OS page
	// cache, like RabbitMQ classic queues: a process crash loses nothing that
	// was reported, a power failure may. Definitions are synced either way.
	Sync bool

	// GCInterval is the period of value-log garbage collection; 0 means
	// DefaultGCInterval, a negative value disables the schedule (RunGC still
	// works).
	GCInterval time.Duration

	// GCDiscardRatio is the garbage fraction from which a value-log file is
	// rewritten, in (0, 1); 0 means DefaultGCDiscardRatio.
	GCDiscardRatio float64

	// Logger receives the store's logs and Badger's (Badger's "info" chatter
	// about compactions goes to Debug). Nil discards them.
	Logger *slog.Logger

	// MemTableSize, NumMemtables and BlockCacheSize bound Badger's memory:
	// roughly NumMemtables*MemTableSize plus BlockCacheSize. 0 means the
	// default of each.
	MemTableSize   int64
	NumMemtables   int
	BlockCacheSize int64

	// ValueThreshold is the body size from which bodies go to segment files
	// (bodies.go) instead of inline in the LSM tree; 0 means
	// DefaultValueThreshold.
	ValueThreshold int64

	// ValueLogFileSize is the size of one body segment, of one segment of
	// the Raft write-ahead log (and of one Badger value-log file), and the
	// largest value the store accepts; 0 means DefaultValueLogFileSize.
	ValueLogFileSize int64
}

// DefaultOptions returns the options for a store in dir: synced commits, GC
// every minute, memory for a broker (about 64 MiB in all).
func DefaultOptions(dir string) Options {
	return Options{
		Dir:              dir,
		Sync:             true,
		GCInterval:       DefaultGCInterval,
		GCDiscardRatio:   DefaultGCDiscardRatio,
		MemTableSize:     DefaultMemTableSize,
		NumMemtables:     DefaultNumMemtables,
		BlockCacheSize:   DefaultBlockCacheSize,
		ValueThreshold:   DefaultValueThreshold,
		ValueLogFileSize: DefaultValueLogFileSize,
	}
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.GCDiscardRatio == 0 {
		o.GCDiscardRatio = DefaultGCDiscardRatio
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.NumMemtables == 0 {
		o.NumMemtables = DefaultNumMemtables
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = DefaultBlockCacheSize
	}
	if o.ValueThreshold == 0 {
		o.ValueThreshold = DefaultValueThreshold
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = DefaultValueLogFileSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether o can open a store. Zero sizes and durations are
// valid (they mean the default).
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("persistence: Dir is empty"))
	}
	if o.GCDiscardRatio < 0 || o.GCDiscardRatio >= 1 {
		errs = append(errs, fmt.Errorf("persistence: GCDiscardRatio %v not in (0, 1)", o.GCDiscardRatio))
	}
	if o.MemTableSize != 0 && o.MemTableSize < 1<<20 {
		errs = append(errs, fmt.Errorf("persistence: MemTableSize %d below 1 MiB", o.MemTableSize))
	}
	if o.NumMemtables < 0 || o.NumMemtables == 1 {
		errs = append(errs, fmt.Errorf("persistence: NumMemtables %d: need at least 2", o.NumMemtables))
	}
	if o.BlockCacheSize < 0 {
		errs = append(errs, fmt.Errorf("persistence: BlockCacheSize %d is negative", o.BlockCacheSize))
	}
	if o.ValueThreshold < 0 || o.ValueThreshold > 1<<16 {
		errs = append(errs, fmt.Errorf("persistence: ValueThreshold %d not in [0, 64 KiB]", o.ValueThreshold))
	}
	if s := o.ValueLogFileSize; s != 0 && (s < 1<<20 || s >= 1<<30) {
		errs = append(errs, fmt.Errorf("persistence: ValueLogFileSize %d not in [1 MiB, 1 GiB)", s))
	}
	return errors.Join(errs...)
}

// badgerOptions translates o (with defaults filled in) into Badger's options.
func (o Options) badgerOptions() badger.Options {
	return badger.DefaultOptions(o.Dir).
		// SyncWrites makes each transaction commit fsync the value log and
		// the memtable's WAL. The committer commits one transaction per
		// batch (more only if a batch exceeds Badger's transaction limit),
		// so this is one sync per group commit.
		WithSyncWrites(o.Sync).
		// Only the latest version of a key is useful to us; older ones (and
		// deleted keys) are dropped at compaction.
		WithNumVersionsToKeep(1).
		WithMemTableSize(o.MemTableSize).
		WithBaseTableSize(baseTableSize).
		WithNumMemtables(o.NumMemtables).
		WithBlockCacheSize(o.BlockCacheSize).
		// Index caches are only needed with encryption; keep table indexes
		// in memory (the LSM tree is small: large bodies are in segments).
		WithIndexCacheSize(0).
		// Large bodies never reach Badger (bodies.go): what it stores is
		// keys, pointers, entries, small bodies and definitions, kept inline
		// but for the rare definition of more than a MiB.
		WithValueThreshold(min(1<<20, o.MemTableSize/10)).
		WithValueLogFileSize(o.ValueLogFileSize).
		// Keys are big-endian integers and values mostly pointers: little to
		// compress, so save the CPU.
		WithCompression(options.None).
		// Two compactors is Badger's minimum (one prefers L0).
		WithNumCompactors(2).
		// Writes are blind: one committer, no read-modify-write, so conflict
		// detection would only cost memory.
		WithDetectConflicts(false).
		// Badger's metrics are process-global expvars; ours are exported by
		// the broker.
		WithMetricsEnabled(false).
		WithLogger(newBadgerLogger(o.Logger))
}
