package persistence

import "time"

// Defaults for Options. Memory figures are per Store (one per node).
const (
	// DefaultGCInterval is how often value-log garbage collection runs.
	DefaultGCInterval = time.Minute

	// DefaultGCDiscardRatio is the fraction of a value-log file that must be
	// garbage before the file is rewritten.
	DefaultGCDiscardRatio = 0.5

	// DefaultMemTableSize is the size of one Badger memtable. Large bodies
	// live in segments, so a memtable holds keys, pointers, index entries
	// and small bodies: 4 MiB is about 50k records. Badger builds each
	// flushed memtable (and each compacted table, baseTableSize) in memory
	// and keeps up to eight such buffers for reuse, so these sizes bound a
	// good part of its memory: with 16 MiB memtables and 2 MiB tables,
	// paging ten queues' backlogs (bench's fanout-10q-ack-256B) kept 220 MB
	// of Badger's buffers live and the broker reached 690 MB of RSS; with
	// these, 340 MB, and 1 KiB persistent messages went as fast.
	DefaultMemTableSize = 4 << 20

	// baseTableSize is the size of Badger's tables at the first level.
	baseTableSize = 1 << 20

	// DefaultNumMemtables is how many memtables may exist (one mutable, the
	// rest waiting to be flushed) before writes stall.
	DefaultNumMemtables = 3

	// DefaultBlockCacheSize is the size of Badger's cache of LSM blocks (keys,
	// value pointers, index entries). Bodies are read from the value log
	// through the OS page cache and do not use it.
	DefaultBlockCacheSize = 16 << 20

	// DefaultValueThreshold is the body size from which a message body is
	// stored in a segment file (bodies.go) instead of inline in the LSM
	// tree. Inline bodies make Badger's memtables, table builds and mapped
	// tables grow with them: paging ten queues of 256-byte messages, the
	// broker's RSS peaked at 340 MB with a threshold of 512 bytes and at
	// 210 MB with this one. Tiny bodies stay inline, where a record costs
	// less than a segment's header and pointer.
	DefaultValueThreshold = 128

	// DefaultValueLogFileSize is the size at which a value-log file is closed
	// and a new one started. It is also the largest value (message body or
	// definition) the store accepts. Garbage collection works file by file
	// and never rewrites the file being written, so after a backlog drains up
	// to this much garbage can remain until more is written.
	DefaultValueLogFileSize = 32 << 20
)

// Limits.
const (
	// MaxEntryMeta is the largest metadata an index entry may carry. With the
	// 8-byte message id it keeps every entry inline in the LSM tree, so
	// Entries never touches the value log.
	MaxEntryMeta = 256

	// MaxDefinitionKey is the longest definition key.
	MaxDefinitionKey = 60000
)

// Internal tuning.
const (
	// messageIDLease and queueIDLease are how many ids are reserved by one
	// durable write of a sequence's upper bound.
	messageIDLease = 1 << 14
	queueIDLease   = 64

	// dropChunk is how many index entries DeleteQueue deletes per transaction.
	dropChunk = 8192

	// compactAfterDeletes is how many deletes must have been written since the
	// last forced LSM compaction before a GC pass that finds no value-log file
	// to rewrite forces one (see gc.go).
	compactAfterDeletes = 10000

	// A scheduled GC pass forces the compaction only after the committer
	// has been idle for compactQuiet, unless it was put off
	// compactMaxDeferrals times already.
	compactQuiet        = 2 * time.Second
	compactMaxDeferrals = 10

	// rememberedFailures is how many failed batches Notify can still report
	// after they completed.
	rememberedFailures = 64

	// maxBodyMoves is how many bodies one step of segment compaction moves
	// (in one transaction, well under Badger's limit).
	maxBodyMoves = 4096

	// maxWALMove bounds the bytes one compaction step of the Raft
	// write-ahead log copies (and reads while segment deletion waits);
	// maxWALCompactSteps bounds the steps of one GC pass.
	maxWALMove         = 4 << 20
	maxWALCompactSteps = 64

	// moveChunk is how many entries of a Badger-held Raft log are read and
	// stored in the write-ahead log at a time when it moves there.
	moveChunk = 1024

	// opBytes is what a queued put costs in memory besides its payload
	// (the op, its slot in the batch's index of puts): Backlog counts it,
	// so that a budget of pending bytes also bounds many small puts.
	opBytes = 128

	// Scratch buffers of a batch larger than these after a burst are dropped
	// rather than kept for reuse.
	keepOps   = 1 << 16
	keepBytes = 4 << 20
)
