package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{name: "defaults", edit: func(*Options) {}},
		{name: "zero sizes mean defaults", edit: func(o *Options) { *o = Options{Dir: o.Dir} }},
		{name: "no dir", edit: func(o *Options) { o.Dir = "" }, wantErr: "Dir is empty"},
		{name: "discard ratio 1", edit: func(o *Options) { o.GCDiscardRatio = 1 }, wantErr: "GCDiscardRatio"},
		{name: "negative discard ratio", edit: func(o *Options) { o.GCDiscardRatio = -0.1 }, wantErr: "GCDiscardRatio"},
		{name: "tiny memtable", edit: func(o *Options) { o.MemTableSize = 1000 }, wantErr: "MemTableSize"},
		{name: "one memtable", edit: func(o *Options) { o.NumMemtables = 1 }, wantErr: "NumMemtables"},
		{name: "negative cache", edit: func(o *Options) { o.BlockCacheSize = -1 }, wantErr: "BlockCacheSize"},
		{name: "huge threshold", edit: func(o *Options) { o.ValueThreshold = 1 << 20 }, wantErr: "ValueThreshold"},
		{name: "vlog file 1 GiB", edit: func(o *Options) { o.ValueLogFileSize = 1 << 30 }, wantErr: "ValueLogFileSize"},
		{name: "two errors", edit: func(o *Options) { o.Dir, o.NumMemtables = "", 1 }, wantErr: "NumMemtables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions("/nonexistent")
			tt.edit(&o)
			err := o.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenInvalidOptions(t *testing.T) {
	t.Parallel()
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open(Options{}) succeeded")
	}
}

func TestDefinitionsRoundTrip(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 4096) // goes to the value log
	tests := []struct {
		name string
		sync bool
	}{
		{name: "sync", sync: true},
		{name: "nosync", sync: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t, "")
			o.Sync = tt.sync
			s := mustOpen(t, o)
			puts := []struct {
				kind  Kind
				key   string
				value []byte
			}{
				{'v', "/", []byte("vhost /")},
				{'v', "prod", []byte("vhost prod")},
				{'x', "/\x00amq.direct", []byte("direct")},
				{'x', "/\x00logs", big},
				{'q', "/\x00orders", []byte("queue orders")},
				{'q', "/\x00gone", []byte("deleted below")},
				{'q', "/\x00orders", []byte("queue orders v2")}, // replaces
				{'b', "", []byte("empty key")},
				{'u', "guest", nil},
			}
			for _, p := range puts {
				if err := s.PutDefinition(p.kind, p.key, p.value); err != nil {
					t.Fatalf("PutDefinition(%c, %q): %v", p.kind, p.key, err)
				}
			}
			if err := s.DeleteDefinition('q', "/\x00gone"); err != nil {
				t.Fatalf("DeleteDefinition: %v", err)
			}
			if err := s.DeleteDefinition('q', "never existed"); err != nil {
				t.Fatalf("DeleteDefinition of a missing key: %v", err)
			}
			mustClose(t, s)

			s = mustOpen(t, o)
			defer mustClose(t, s)
			want := map[Kind]map[string]string{
				'v': {"/": "vhost /", "prod": "vhost prod"},
				'x': {"/\x00amq.direct": "direct", "/\x00logs": string(big)},
				'q': {"/\x00orders": "queue orders v2"},
				'b': {"": "empty key"},
				'u': {"guest": ""},
				'z': {},
			}
			for kind, w := range want {
				got := map[string]string{}
				var keys []string
				err := s.Definitions(kind, func(k string, v []byte) error {
					got[k] = string(v)
					keys = append(keys, k)
					return nil
				})
				if err != nil {
					t.Fatalf("Definitions(%c): %v", kind, err)
				}
				if !maps.Equal(got, w) {
					t.Errorf("Definitions(%c) = %q, want %q", kind, got, w)
				}
				for i := 1; i < len(keys); i++ {
					if keys[i-1] >= keys[i] {
						t.Errorf("Definitions(%c): %q before %q", kind, keys[i-1], keys[i])
					}
				}
			}
			stop := errors.New("stop")
			if err := s.Definitions('v', func(string, []byte) error { return stop }); !errors.Is(err, stop) {
				t.Errorf("Definitions with failing fn = %v, want %v", err, stop)
			}
		})
	}
}

func TestDefinitionLimits(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	defer mustClose(t, s)
	if err := s.PutDefinition('q', strings.Repeat("k", MaxDefinitionKey+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("long key: %v, want ErrTooLarge", err)
	}
	if err := s.PutDefinition('q', "k", make([]byte, 2<<20)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("large value: %v, want ErrTooLarge", err)
	}
	if err := s.PutDefinition('q', "k", []byte("fine")); err != nil {
		t.Errorf("store unusable after refused writes: %v", err)
	}
}

// body returns a recognisable body of n bytes for message id.
func body(id uint64, n int) []byte {
	b := fmt.Appendf(nil, "message %d:", id)
	for len(b) < n {
		b = append(b, byte('a'+len(b)%26))
	}
	return b[:max(n, len(b))]
}

func TestMessagesAndEntriesRoundTrip(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	s := mustOpen(t, o)
	sizes := []int{0, 1, 100, 511, 512, 4096, 1 << 20}
	qa, qb := s.NextQueueID(), s.NextQueueID()
	want := map[uint64]map[uint64]string{qa: {}, qb: {}}
	bodies := map[uint64][]byte{}
	var last Ticket
	for i, n := range sizes {
		id := s.NextMessageID()
		bodies[id] = body(id, n)
		s.PutMessage(id, bodies[id])
		seq := uint64(i + 1)
		meta := []byte(fmt.Sprintf("meta%d", i))
		if i%3 == 0 {
			meta = nil
		}
		last = s.PutEntry(qa, seq, id, meta)
		want[qa][seq] = fmt.Sprintf("%d:%s", id, meta)
		if i%2 == 0 {
			last = s.PutEntry(qb, seq*10, id, []byte("b"))
			want[qb][seq*10] = fmt.Sprintf("%d:b", id)
		}
	}
	mustWait(t, s, last)
	// A deleted entry and message, in a later batch than their puts.
	delID := s.NextMessageID()
	mustWait(t, s, s.PutMessage(delID, []byte("deleted")))
	mustWait(t, s, s.PutEntry(qb, 999, delID, nil))
	s.DeleteEntry(qb, 999)
	mustWait(t, s, s.DeleteMessage(delID))
	mustClose(t, s)

	s = mustOpen(t, o)
	defer mustClose(t, s)
	for q, w := range want {
		if got := entryMap(t, s, q); !maps.Equal(got, w) {
			t.Errorf("entries of %d = %v, want %v", q, got, w)
		}
	}
	buf := []byte("prefix:")
	for id, b := range bodies {
		got, err := s.Message(id, buf[:7])
		if err != nil {
			t.Fatalf("Message(%d): %v", id, err)
		}
		if !bytes.Equal(got[7:], b) || string(got[:7]) != "prefix:" {
			t.Errorf("Message(%d) = %d bytes, want prefix + %d bytes", id, len(got), len(b))
		}
	}
	if _, err := s.Message(delID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Message(deleted) = %v, want ErrNotFound", err)
	}
	var queues []uint64
	if err := s.Queues(func(q uint64) error { queues = append(queues, q); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(queues) != fmt.Sprint([]uint64{qa, qb}) {
		t.Errorf("Queues = %v, want [%d %d]", queues, qa, qb)
	}
	var ids []uint64
	if err := s.MessageIDs(func(id uint64) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(bodies) {
		t.Errorf("MessageIDs = %v, want the %d stored", ids, len(bodies))
	}
	for _, id := range ids {
		if _, ok := bodies[id]; !ok {
			t.Errorf("MessageIDs lists %d, not stored", id)
		}
	}
}

// versions counts the versions Badger holds for key, tombstones included.
func versions(t *testing.T, s *Store, key []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: key})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if bytes.Equal(it.Item().Key(), key) {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCancellation(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	const q = 7

	// Control: put and delete in different batches are both written.
	mustWait(t, s, s.PutMessage(100, []byte("control")))
	mustWait(t, s, s.PutEntry(q, 1, 100, nil))
	s.DeleteEntry(q, 1)
	mustWait(t, s, s.DeleteMessage(100))
	if n := versions(t, s, appendMessageKey(nil, 100)); n == 0 {
		t.Fatalf("control message left no version: the check below could not fail")
	}

	release := holdCommitter(t, s)
	// Acked before its batch is written: never written.
	s.PutMessage(200, []byte("cancelled"))
	s.PutEntry(q, 2, 200, []byte("m"))
	// Kept: a message in two queues, acked in one.
	s.PutMessage(300, []byte("kept"))
	s.PutEntry(q, 3, 300, nil)
	s.PutEntry(q+1, 3, 300, nil)
	s.DeleteEntry(q, 3)
	// Read your writes while pending.
	if got, err := s.Message(200, nil); err != nil || string(got) != "cancelled" {
		t.Errorf("Message(200) while pending = %q, %v", got, err)
	}
	s.DeleteEntry(q, 2)
	tk := s.DeleteMessage(200)
	if _, err := s.Message(200, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Message(200) after cancelled delete = %v, want ErrNotFound", err)
	}
	if ops, _ := s.Pending(); ops != 5 {
		t.Errorf("Pending ops = %d, want 5 (deletes that cancel are not queued)", ops)
	}
	release()
	mustWait(t, s, tk)

	for _, k := range [][]byte{appendMessageKey(nil, 200), appendEntryKey(nil, q, 2), appendEntryKey(nil, q, 3)} {
		if n := versions(t, s, k); n != 0 {
			t.Errorf("key %x: %d versions written, want none", k, n)
		}
	}
	if got := entryMap(t, s, q+1); len(got) != 1 {
		t.Errorf("entries of queue %d = %v, want seq 3", q+1, got)
	}
	if got, err := s.Message(300, nil); err != nil || string(got) != "kept" {
		t.Errorf("Message(300) = %q, %v", got, err)
	}
}

func TestIDsIncreaseAcrossReopen(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	var lastMsg, lastQueue uint64
	for round := range 3 {
		s := mustOpen(t, o)
		for range 3 * messageIDLease / 2 { // cross a lease boundary
			id := s.NextMessageID()
			if id <= lastMsg {
				t.Fatalf("round %d: message id %d after %d", round, id, lastMsg)
			}
			lastMsg = id
		}
		for range 2 * queueIDLease {
			id := s.NextQueueID()
			if id <= lastQueue {
				t.Fatalf("round %d: queue id %d after %d", round, id, lastQueue)
			}
			lastQueue = id
		}
		mustClose(t, s)
	}

	// A lost lease: data above it still pushes new ids above.
	s := mustOpen(t, o)
	mustWait(t, s, s.PutMessage(lastMsg+1e6, []byte("x")))
	mustWait(t, s, s.PutEntry(lastQueue+1e3, 1, lastMsg+1e6, nil))
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(keyMessageLease); err != nil {
			return err
		}
		return txn.Delete(keyQueueLease)
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = mustOpen(t, o)
	defer mustClose(t, s)
	if id := s.NextMessageID(); id <= lastMsg+1e6 {
		t.Errorf("message id %d not above stored %d", id, lastMsg+1e6)
	}
	if id := s.NextQueueID(); id <= lastQueue+1e3 {
		t.Errorf("queue id %d not above stored %d", id, lastQueue+1e3)
	}
}

func TestIDsConcurrentUnique(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	const workers, each = 8, 5000
	results := make([][]uint64, workers)
	done := make(chan int)
	for w := range workers {
		go func() {
			for range each {
				results[w] = append(results[w], s.NextMessageID())
			}
			done <- w
		}()
	}
	for range workers {
		<-done
	}
	seen := make(map[uint64]bool)
	for _, r := range results {
		for i, id := range r {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			if i > 0 && id <= r[i-1] {
				t.Fatalf("id %d after %d in one goroutine", id, r[i-1])
			}
			seen[id] = true
		}
	}
}

func TestReplaceStoredEntry(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	const q = 5
	mustWait(t, s, s.PutEntry(q, 1, 10, []byte("v1")))
	mustWait(t, s, s.PutEntry(q, 2, 20, []byte("v1")))

	release := holdCommitter(t, s)
	// Entry 1: replaced (delete, put), then acked before the write.
	s.DeleteEntry(q, 1)
	s.PutEntry(q, 1, 10, []byte("v2"))
	s.DeleteEntry(q, 1)
	// Entry 2: replaced and kept.
	s.DeleteEntry(q, 2)
	tk := s.PutEntry(q, 2, 20, []byte("v2"))
	release()
	mustWait(t, s, tk)

	want := map[uint64]string{2: "20:v2"}
	if got := entryMap(t, s, q); !maps.Equal(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
}
