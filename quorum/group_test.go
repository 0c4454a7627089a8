package quorum

import (
	"testing"

	"github.com/hashicorp/raft"
)

// A log that ends before the latest snapshot (the node stopped between
// raft installing it and emptying the log) is emptied before the group
// starts; one that reaches the snapshot is left alone.
func TestDropStaleLog(t *testing.T) {
	for _, c := range []struct {
		name      string
		snapshot  uint64 // 0: none
		wantFirst uint64
	}{
		{"no snapshot", 0, 1},
		{"snapshot within the log", 8, 1},
		{"snapshot at the log's end", 10, 1},
		{"snapshot past the log's end", 20, 0},
	} {
		log := raft.NewInmemStore()
		for i := uint64(1); i <= 10; i++ {
			if err := log.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand}); err != nil {
				t.Fatal(err)
			}
		}
		snaps := raft.NewInmemSnapshotStore()
		if c.snapshot != 0 {
			sink, err := snaps.Create(1, c.snapshot, 2, raft.Configuration{}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := dropStaleLog(log, snaps); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		first, _ := log.FirstIndex()
		last, _ := log.LastIndex()
		if wantLast := map[bool]uint64{true: 10, false: 0}[c.wantFirst != 0]; first != c.wantFirst || last != wantLast {
			t.Errorf("%s: log %d-%d, want %d-%d", c.name, first, last, c.wantFirst, wantLast)
		}
	}
}
