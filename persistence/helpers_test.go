package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testOptions returns options for a store in a fresh temporary directory,
// with the schedule off (tests run GC themselves) and logs to the test log
// when -v.
func testOptions(t testing.TB, dir string) Options {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := DefaultOptions(dir)
	o.GCInterval = -1
	if testing.Verbose() {
		level := slog.LevelWarn
		if os.Getenv("WARREN_TEST_DEBUG") != "" {
			level = slog.LevelDebug
		}
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return o
}

func mustOpen(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%s): %v", o.Dir, err)
	}
	return s
}

func mustClose(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// checkFor calls f every `every` until it returns nil or `total` has passed.
func checkFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}

// wait blocks until ticket tk's batch completes and returns its outcome.
func wait(t testing.TB, s *Store, tk Ticket) error {
	t.Helper()
	done := make(doneWaiter, 1)
	s.Notify(tk, done)
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("ticket %d: not completed after 30s (synced %d)", tk, s.Synced())
		return nil
	}
}

func mustWait(t testing.TB, s *Store, tk Ticket) {
	t.Helper()
	if err := wait(t, s, tk); err != nil {
		t.Fatalf("ticket %d: %v", tk, err)
	}
}

// holder is a Waiter that stalls the committer until released, so that
// operations pile up in the pending batch.
type holder struct {
	entered chan struct{}
	release chan struct{}
}

func (h *holder) Synced(Ticket, error) {
	close(h.entered)
	<-h.release
}

// holdCommitter stalls the committer and returns the function that lets it go.
func holdCommitter(t testing.TB, s *Store) (release func()) {
	t.Helper()
	h := &holder{entered: make(chan struct{}), release: make(chan struct{})}
	s.Notify(s.DeleteMessage(^uint64(0)), h) // a tombstone: leaves no id behind
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("committer not held after 10s")
	}
	var released bool
	release = func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	t.Cleanup(release)
	return release
}

// diskUsage returns the bytes allocated on disk (like du) under dir.
func diskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// entryMap reads all entries of queue q.
func entryMap(t testing.TB, s *Store, q uint64) map[uint64]string {
	t.Helper()
	m := make(map[uint64]string)
	var last uint64
	err := s.Entries(q, func(seq, msgID uint64, meta []byte) error {
		if len(m) > 0 && seq <= last {
			return fmt.Errorf("seq %d after %d: not in order", seq, last)
		}
		last = seq
		m[seq] = fmt.Sprintf("%d:%s", msgID, meta)
		return nil
	})
	if err != nil {
		t.Fatalf("Entries(%d): %v", q, err)
	}
	return m
}

var errNotYet = errors.New("not yet")
