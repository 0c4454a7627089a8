package persistence

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// confirmWaiter tracks the highest batch reported for one benchmark writer.
type confirmWaiter struct {
	mu   sync.Mutex
	cond sync.Cond
	upTo Ticket
	err  error
}

func newConfirmWaiter() *confirmWaiter {
	w := &confirmWaiter{}
	w.cond.L = &w.mu
	return w
}

func (w *confirmWaiter) Synced(upTo Ticket, err error) {
	w.mu.Lock()
	w.upTo = max(w.upTo, upTo)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *confirmWaiter) waitFor(t Ticket) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.upTo < t && w.err == nil {
		w.cond.Wait()
	}
	return w.err
}

// BenchmarkPublishConfirm measures durable publishes of 1 KiB messages: each
// is PutMessage + PutEntry, then Notify; a writer waits for its confirms once
// `window` messages are outstanding (window=1: a synchronous publisher).
func BenchmarkPublishConfirm(b *testing.B) {
	for _, durable := range []bool{true, false} {
		for _, writers := range []int{1, 8} {
			for _, window := range []int{1, 256} {
				name := fmt.Sprintf("sync=%v/writers=%d/window=%d", durable, writers, window)
				b.Run(name, func(b *testing.B) { benchPublish(b, durable, writers, window) })
			}
		}
	}
}

func benchPublish(b *testing.B, durable bool, writers, window int) {
	o := testOptions(b, "")
	o.Sync = durable
	s := mustOpen(b, o)
	defer mustClose(b, s)
	payload := body(0, 1024)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		q := uint64(w + 1)
		wg.Go(func() {
			cw := newConfirmWaiter()
			ring := make([]Ticket, window)
			var last Ticket
			for i := range n {
				if i >= window {
					if err := cw.waitFor(ring[i%window]); err != nil {
						b.Error(err)
						return
					}
				}
				id := s.NextMessageID()
				s.PutMessage(id, payload)
				tk := s.PutEntry(q, uint64(i), id, nil)
				if tk != last {
					s.Notify(tk, cw)
					last = tk
				}
				ring[i%window] = tk
			}
			if err := cw.waitFor(last); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkDeleteEntryAndMessage measures acknowledging stored messages:
// DeleteEntry + DeleteMessage of messages written earlier, from one writer,
// waiting for the last batch at the end.
func BenchmarkDeleteEntryAndMessage(b *testing.B) {
	for _, durable := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", durable), func(b *testing.B) {
			o := testOptions(b, "")
			o.Sync = durable
			s := mustOpen(b, o)
			defer mustClose(b, s)
			payload := body(0, 1024)
			var last Ticket
			for i := range uint64(b.N) {
				s.PutMessage(i+1, payload)
				last = s.PutEntry(1, i, i+1, nil)
				if i%4096 == 4095 {
					mustWait(b, s, last)
				}
			}
			mustWait(b, s, last)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range uint64(b.N) {
				s.DeleteEntry(1, i)
				last = s.DeleteMessage(i + 1)
				if i%4096 == 4095 {
					mustWait(b, s, last)
				}
			}
			mustWait(b, s, last)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCancelledPublish measures a message published and acknowledged
// before its batch is written: the put and delete of body and entry cancel in
// the pending batch, so this is the store's own cost (the committer then finds
// batches with nothing to write, or writes the odd delete whose put it had
// already taken).
func BenchmarkCancelledPublish(b *testing.B) {
	s := mustOpen(b, testOptions(b, ""))
	defer mustClose(b, s)
	payload := body(0, 1024)
	meta := []byte{1, 2, 3}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		s.PutMessage(i+1, payload)
		s.PutEntry(1, i, i+1, meta)
		s.DeleteEntry(1, i)
		s.DeleteMessage(i + 1)
	}
}
