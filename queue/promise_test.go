package queue

import (
	"errors"
	"slices"
	"testing"
)

// doneLedger is a Ledger whose every position has come due; failed maps
// positions to their failures.
type doneLedger struct{ failed map[uint64]error }

func (l *doneLedger) Notify(at uint64, w Waiter) { w.Due(l, at, l.failed[at]) }
func (l *doneLedger) Wait(at uint64) error       { return l.failed[at] }
func (l *doneLedger) FirstFailure(after uint64) (uint64, error) {
	var first uint64
	for p := range l.failed {
		if p > after && (first == 0 || p < first) {
			first = p
		}
	}
	return first, l.failed[first]
}

func TestPromisesMergePerLedger(t *testing.T) {
	t.Parallel()
	a, b := &doneLedger{}, &doneLedger{}
	var ps Promises
	if !ps.Kept() {
		t.Fatal("an empty set is not kept")
	}
	ps.Add(Promise{})
	ps.Add(Promise{Ledger: a, First: 5, Last: 7})
	ps.Add(Promise{Ledger: b, First: 1, Last: 1})
	ps.Add(Promise{Ledger: a, First: 3, Last: 4})
	ps.Add(Promise{Ledger: b, First: 2, Last: 9})
	ps.Add(Promise{})
	got := slices.Collect(ps.All())
	want := []Promise{{Ledger: a, First: 3, Last: 7}, {Ledger: b, First: 1, Last: 9}}
	if !slices.Equal(got, want) {
		t.Fatalf("promises %+v, want %+v", got, want)
	}
	var all Promises
	all.Add(Promise{Ledger: b, First: 10, Last: 10})
	all.AddAll(ps)
	if got := slices.Collect(all.All()); !slices.Equal(got, []Promise{{Ledger: b, First: 1, Last: 10}, {Ledger: a, First: 3, Last: 7}}) {
		t.Fatalf("AddAll: %+v", got)
	}
}

func TestPromiseWaitReportsEveryPositionsFailure(t *testing.T) {
	t.Parallel()
	lost := errors.New("lost")
	tests := []struct {
		name    string
		failed  map[uint64]error
		p       Promise
		wantErr error
	}{
		{"kept", nil, Promise{}, nil},
		{"all positions fine", map[uint64]error{9: lost}, Promise{First: 2, Last: 5}, nil},
		{"the last one failed", map[uint64]error{5: lost}, Promise{First: 2, Last: 5}, lost},
		{"an earlier one failed", map[uint64]error{3: lost}, Promise{First: 2, Last: 5}, lost},
		{"one before the first failed", map[uint64]error{1: lost}, Promise{First: 2, Last: 5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.p
			if p.Last != 0 {
				p.Ledger = &doneLedger{failed: tt.failed}
			}
			var ps Promises
			ps.Add(p)
			if err := ps.Wait(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Wait = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// fakeQueue takes every message and promises it on a ledger.
type fakeQueue struct {
	Queue // only Enqueue is called
	r     Receipt
	got   []*Message
}

func (q *fakeQueue) Enqueue(m *Message) Receipt {
	q.got = append(q.got, m)
	return q.r
}

// countingHolder counts the publishes it was told have ended.
type countingHolder struct{ routed int }

func (h *countingHolder) Routed(*Message) { h.routed++ }

func TestPublish(t *testing.T) {
	t.Parallel()
	l := &doneLedger{}
	h := &countingHolder{}
	holding := &fakeQueue{r: Receipt{Result: Enqueued, Promise: Promise{Ledger: l, First: 4, Last: 4}}}
	full := &fakeQueue{r: Receipt{Result: Rejected}}
	gone := &fakeQueue{r: Receipt{Result: Gone}}
	later := &fakeQueue{r: Receipt{Result: Enqueued, Promise: Promise{Ledger: l, First: 6, Last: 6}}}
	m := BuildMessage("x", "k", nil, []byte("body"))
	m.Hold(h)
	var out Outcome
	Publish([]Queue{holding, full, gone, later}, m, &out)
	if !out.Routed || !out.Rejected {
		t.Fatalf("outcome %+v, want routed and rejected", out)
	}
	if got := slices.Collect(out.Promises.All()); !slices.Equal(got, []Promise{{Ledger: l, First: 4, Last: 6}}) {
		t.Fatalf("promises %+v", got)
	}
	for _, q := range []*fakeQueue{holding, full, gone, later} {
		if len(q.got) != 1 || q.got[0] != m {
			t.Fatalf("a queue got %v, want the message once", q.got)
		}
	}
	if h.routed != 1 || m.Holder() != nil {
		t.Fatalf("holder told %d times, still held %v; want once, released", h.routed, m.Holder())
	}
	if Publish([]Queue{gone}, BuildMessage("x", "k", nil, nil), &out); out.Routed || !out.Promises.Kept() {
		t.Fatalf("to a deleted queue only: %+v, want unroutable", out)
	}
}
