// Package persistence is Warren's durable store, built on one Badger database.
//
// It keeps three kinds of record and knows nothing of AMQP: every value is an
// opaque []byte chosen by the caller.
//
//   - Definitions: small records (vhosts, exchanges, queues, bindings, users)
//     in caller-defined namespaces ([Kind]). They are written synchronously and
//     synced before the call returns.
//   - Message bodies: one record per message, however many queues hold it.
//   - Queue index entries: one record per (queue, sequence number), naming the
//     message and carrying a little caller metadata.
//
// Writes of bodies and index entries go through a single committer goroutine
// (group commit): operations from any goroutine are appended to a pending
// batch under a mutex and return the [Ticket] of that batch. While one batch is
// being written and synced the next one accumulates; when the write ends, the
// next batch goes at once. A delete whose put is still in the pending batch
// cancels it, so a message acknowledged before its batch is written is never
// written at all. [Store.Notify] tells a [Waiter] when its batch is durable.
//
// Raft groups keep their stable values and snapshots in Badger too; their
// logs are in Badger ([Store.RaftLog]) or, for quorum queues, in a
// write-ahead log of segment files that all groups share
// ([Store.SharedRaftLog]): appends of many groups are written and synced
// together and never go through Badger's LSM tree.
//
// Value-log garbage collection runs on a schedule so the disk shrinks after a
// backlog drains. See DESIGN.md in this directory for the key schema and the
// durability contract.
package persistence
