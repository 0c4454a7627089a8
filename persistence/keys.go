package persistence

import "encoding/binary"

// Key schema. Every key starts with one prefix byte naming its space; integers
// are big-endian so that keys sort numerically and a prefix scan walks them in
// order. DESIGN.md has the table.
const (
	prefixDefinition byte = 'd' // 'd' | kind | name           -> caller's value
	prefixMessage    byte = 'm' // 'm' | msgID                 -> body (under ValueThreshold)
	prefixBody       byte = 'b' // 'b' | msgID                 -> where the body is in a segment
	prefixEntry      byte = 'i' // 'i' | queueID | seq         -> msgID | meta
	prefixSequence   byte = 's' // 's' | name                  -> next unleased id
	prefixRaftLog    byte = 'r' // Raft log entries, per group (raft.go)
	prefixRaftStable byte = 'R' // Raft stable store, per group (raft.go)
	prefixRaftMoved  byte = 'w' // 'w' | group: its log was moved to the raft WAL (sharedraftlog.go)
	prefixScratch    byte = 0xff
)

var (
	// keyMessageLease and keyQueueLease hold the upper bounds of the leased
	// id ranges.
	keyMessageLease = []byte{prefixSequence, 'm'}
	keyQueueLease   = []byte{prefixSequence, 'q'}

	// keyCompactMark is written and then dropped to make Badger flush its
	// memtables (see Store.compact). It never holds data.
	keyCompactMark    = []byte{prefixScratch, 'c'}
	prefixCompactMark = keyCompactMark
)

const (
	messageKeyLen = 1 + 8
	entryKeyLen   = 1 + 8 + 8
)

func appendMessageKey(dst []byte, msgID uint64) []byte {
	dst = append(dst, prefixMessage)
	return binary.BigEndian.AppendUint64(dst, msgID)
}

func appendBodyKey(dst []byte, msgID uint64) []byte {
	dst = append(dst, prefixBody)
	return binary.BigEndian.AppendUint64(dst, msgID)
}

func appendEntryPrefix(dst []byte, queueID uint64) []byte {
	dst = append(dst, prefixEntry)
	return binary.BigEndian.AppendUint64(dst, queueID)
}

func appendEntryKey(dst []byte, queueID, seq uint64) []byte {
	dst = appendEntryPrefix(dst, queueID)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func appendDefinitionPrefix(dst []byte, kind Kind) []byte {
	return append(dst, prefixDefinition, byte(kind))
}

func appendDefinitionKey(dst []byte, kind Kind, name string) []byte {
	dst = appendDefinitionPrefix(dst, kind)
	return append(dst, name...)
}

// appendEntryValue encodes an index entry's value: msgID then meta.
func appendEntryValue(dst []byte, msgID uint64, meta []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, msgID)
	return append(dst, meta...)
}

// parseEntryKey returns the queue id and sequence number of an index key.
func parseEntryKey(k []byte) (queueID, seq uint64, ok bool) {
	if len(k) != entryKeyLen || k[0] != prefixEntry {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:]), true
}

// parseMessageKey returns the message id of a body key ('m' or 'b').
func parseMessageKey(k []byte) (uint64, bool) {
	if len(k) != messageKeyLen || k[0] != prefixMessage && k[0] != prefixBody {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}

// parseBodyKey returns the message id of a body pointer's key.
func parseBodyKey(k []byte) (uint64, bool) {
	if len(k) != messageKeyLen || k[0] != prefixBody {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}
