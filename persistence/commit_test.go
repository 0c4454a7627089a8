package persistence

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// recorder is a Waiter that checks the contract for one writer goroutine.
type recorder struct {
	s          *Store
	mu         sync.Mutex
	last       Ticket
	calls      int
	registered int
	probe      map[Ticket]uint64 // ticket -> a message put in that batch and never deleted
	errs       []error
}

func (r *recorder) Synced(upTo Ticket, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	switch {
	case err != nil:
		r.errs = append(r.errs, fmt.Errorf("ticket %d: %w", upTo, err))
	case upTo <= r.last:
		r.errs = append(r.errs, fmt.Errorf("ticket %d reported after %d", upTo, r.last))
	case r.s.Synced() < upTo:
		r.errs = append(r.errs, fmt.Errorf("ticket %d reported while Synced() = %d", upTo, r.s.Synced()))
	}
	r.last = upTo
	if id, ok := r.probe[upTo]; ok {
		if _, err := r.s.Message(id, nil); err != nil {
			r.errs = append(r.errs, fmt.Errorf("ticket %d reported but message %d: %w", upTo, id, err))
		}
	}
}

func TestNotifyOrderingConcurrentWriters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sync    bool
		writers int
		each    int
	}{
		{name: "sync", sync: true, writers: 8, each: 300},
		{name: "nosync", sync: false, writers: 16, each: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t, "")
			o.Sync = tt.sync
			s := mustOpen(t, o)
			defer mustClose(t, s)

			recs := make([]*recorder, tt.writers)
			var wg sync.WaitGroup
			for w := range tt.writers {
				r := &recorder{s: s, probe: make(map[Ticket]uint64)}
				recs[w] = r
				q := uint64(w + 1)
				wg.Go(func() {
					var last Ticket
					for i := range tt.each {
						id := s.NextMessageID()
						s.PutMessage(id, body(id, 64+i%2000))
						tk := s.PutEntry(q, uint64(i), id, []byte{byte(i)})
						if i%4 == 3 { // acked at once: may cancel, or be written later
							s.DeleteEntry(q, uint64(i))
							tk = s.DeleteMessage(id)
						} else {
							r.mu.Lock()
							r.probe[tk] = id
							r.mu.Unlock()
						}
						if tk != last {
							r.mu.Lock()
							r.registered++
							r.mu.Unlock()
							s.Notify(tk, r)
							last = tk
						}
					}
					mustWait(t, s, last)
				})
			}
			wg.Wait()
			for w, r := range recs {
				r.mu.Lock()
				for _, err := range r.errs {
					t.Errorf("writer %d: %v", w, err)
				}
				if r.calls != r.registered {
					t.Errorf("writer %d: %d calls for %d registrations", w, r.calls, r.registered)
				}
				r.mu.Unlock()
			}
			for w := range tt.writers {
				want := tt.each - tt.each/4
				if got := len(entryMap(t, s, uint64(w+1))); got != want {
					t.Errorf("queue %d: %d entries, want %d", w+1, got, want)
				}
			}
		})
	}
}

func TestCloseFlushesPending(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	s := mustOpen(t, o)
	release := holdCommitter(t, s)
	const n = 1000
	var last Ticket
	for i := range uint64(n) {
		s.PutMessage(i+1, body(i+1, 100))
		last = s.PutEntry(1, i, i+1, nil)
	}
	done := make(doneWaiter, 1)
	s.Notify(last, done)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.stopping {
			return errNotYet
		}
		return nil
	})
	if tk := s.PutMessage(n+10, nil); tk != closedTicket {
		t.Errorf("PutMessage while closing = ticket %d, want the closed ticket", tk)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pending batch reported %v", err)
		}
	default:
		t.Fatal("waiter of the pending batch not told before Close returned")
	}

	s = mustOpen(t, o)
	defer mustClose(t, s)
	if got := len(entryMap(t, s, 1)); got != n {
		t.Errorf("%d entries after reopen, want %d", got, n)
	}
	if _, err := s.Message(n+10, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("message queued after Close began: %v, want ErrNotFound", err)
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	tk := s.PutMessage(1, []byte("x"))
	mustClose(t, s)

	checks := []struct {
		name string
		err  error
	}{
		{"Close", s.Close()},
		{"PutDefinition", s.PutDefinition('q', "a", nil)},
		{"DeleteDefinition", s.DeleteDefinition('q', "a")},
		{"Definitions", s.Definitions('q', func(string, []byte) error { return nil })},
		{"Message", func() error { _, err := s.Message(1, nil); return err }()},
		{"MessageIDs", s.MessageIDs(func(uint64) error { return nil })},
		{"Entries", s.Entries(1, func(uint64, uint64, []byte) error { return nil })},
		{"Queues", s.Queues(func(uint64) error { return nil })},
		{"DeleteQueue", s.DeleteQueue(1)},
		{"RunGC", s.RunGC()},
		{"Notify(PutMessage)", wait(t, s, s.PutMessage(2, nil))},
		{"Notify(DeleteMessage)", wait(t, s, s.DeleteMessage(2))},
		{"Notify(PutEntry)", wait(t, s, s.PutEntry(1, 1, 1, nil))},
		{"Notify(DeleteEntry)", wait(t, s, s.DeleteEntry(1, 1))},
	}
	for _, c := range checks {
		if !errors.Is(c.err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", c.name, c.err)
		}
	}
	if err := wait(t, s, tk); err != nil {
		t.Errorf("ticket written before Close = %v, want nil", err)
	}
	_ = s.NextMessageID() // must not panic
}

func TestBatchErrors(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	defer mustClose(t, s)

	bad := []struct {
		name  string
		write func() Ticket
		want  error
	}{
		{"entry meta too large", func() Ticket { return s.PutEntry(1, 1, 1, make([]byte, MaxEntryMeta+1)) }, ErrTooLarge},
		{"body larger than a value-log file", func() Ticket { return s.PutMessage(5, make([]byte, 2<<20)) }, nil},
	}
	for _, tt := range bad {
		tk := tt.write()
		err := wait(t, s, tk)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: batch reported %v, want an error (%v)", tt.name, err, tt.want)
		}
		// Remembered for a late Notify.
		if err2 := wait(t, s, tk); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%s: late Notify reported %v, want %v", tt.name, err2, err)
		}
		// The store goes on serving.
		ok := s.PutMessage(6, []byte("fine"))
		if err := wait(t, s, ok); err != nil {
			t.Errorf("%s: next batch failed: %v", tt.name, err)
		}
	}
	if err := wait(t, s, s.Synced()+100); !errors.Is(err, ErrInvalidTicket) {
		t.Errorf("Notify of an unissued ticket = %v, want ErrInvalidTicket", err)
	}
	if err := wait(t, s, 0); err != nil {
		t.Errorf("Notify(0) = %v, want nil", err)
	}
}

func TestBatchLargerThanTransaction(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.MemTableSize = 1 << 20 // Badger's transactions then hold ~150 KiB
	s := mustOpen(t, o)
	defer mustClose(t, s)
	release := holdCommitter(t, s)
	const n = 30000
	var last Ticket
	for i := range uint64(n) {
		last = s.PutEntry(3, i, i, []byte("some metadata to make it bigger"))
	}
	if ops, _ := s.Pending(); ops != n {
		t.Fatalf("pending = %d, want one batch of %d", ops, n)
	}
	release()
	mustWait(t, s, last)
	if got := len(entryMap(t, s, 3)); got != n {
		t.Errorf("%d entries, want %d", got, n)
	}
}

func TestDeleteQueue(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	const q, other, written = 10, 11, 3*dropChunk + 5
	var last Ticket
	for i := range uint64(written) {
		last = s.PutEntry(q, i, i, nil)
	}
	s.PutEntry(other, 1, 1, nil)
	mustWait(t, s, last)

	release := holdCommitter(t, s)
	for i := range uint64(10) {
		s.PutEntry(q, written+i, i, nil) // pending: cancelled by the purge
	}
	purged := make(chan error, 1)
	go func() { purged <- s.DeleteQueue(q) }()
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pending.drops == 0 {
			return errNotYet
		}
		return nil
	})
	want := map[uint64]string{}
	for i := range uint64(5) {
		seq := 100000 + i
		last = s.PutEntry(q, seq, 42, []byte("new"))
		want[seq] = "42:new"
	}
	release()
	if err := <-purged; err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	mustWait(t, s, last)
	if got := entryMap(t, s, q); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entries after purge = %v, want %v", got, want)
	}
	if got := entryMap(t, s, other); len(got) != 1 {
		t.Errorf("other queue: %v, want one entry", got)
	}
	if err := s.DeleteQueue(99); err != nil {
		t.Errorf("DeleteQueue of an empty queue: %v", err)
	}
}

func TestGCScheduleStops(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.GCInterval = time.Millisecond
	s := mustOpen(t, o)
	for i := range uint64(100) {
		s.PutMessage(i, body(i, 1000))
		s.DeleteMessage(i)
	}
	mustWait(t, s, s.DeleteMessage(1000))
	if err := s.RunGC(); err != nil {
		t.Errorf("RunGC: %v", err)
	}
	mustClose(t, s) // goleak checks the GC goroutine is gone
}

// Deletes with no waiter are written lazily: not at once, but after the
// lazy delay or once enough pile up, and at once when something urgent
// joins their batch.
func TestLazyDeletes(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	// Stored first, so the deletes below cannot cancel pending puts.
	for i := uint64(1); i <= 3; i++ {
		s.PutEntry(1, i, i, nil)
	}
	waitTicket(t, s, s.PutMessage(99, []byte("x")))

	lone := s.DeleteEntry(1, 1)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if s.Synced() < lone {
			return fmt.Errorf("a lone delete is not written after the lazy delay")
		}
		return nil
	})

	del := s.DeleteEntry(1, 2)
	put := s.PutEntry(1, 4, 99, nil)
	if put != del {
		t.Fatalf("delete and put in different batches: %d, %d", del, put)
	}
	waitTicket(t, s, put) // the put makes the batch urgent: its delete goes along
	var seqs []uint64
	if err := s.Entries(1, func(seq, _ uint64, _ []byte) error { seqs = append(seqs, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 || seqs[0] != 3 || seqs[1] != 4 {
		t.Fatalf("entries %v, want [3 4]", seqs)
	}
}

// waitTicket waits until t's batch is complete and fails on its error.
func waitTicket(t *testing.T, s *Store, tk Ticket) {
	t.Helper()
	done := make(doneWaiter, 1)
	s.Notify(tk, done)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ticket %d not complete within 10s", tk)
	}
}
