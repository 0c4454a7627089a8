package main

import "testing"

func TestBitsetSetRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pre      []uint64
		lo, hi   uint64
		want     uint64
		wantSize uint64
	}{
		{name: "empty range", lo: 5, hi: 5, want: 0, wantSize: 0},
		{name: "small", lo: 0, hi: 10, want: 10, wantSize: 10},
		{name: "across words", lo: 60, hi: 200, want: 140, wantSize: 140},
		{name: "some already set", pre: []uint64{3, 64, 150}, lo: 0, hi: 129, want: 127, wantSize: 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bitset
			for _, i := range tt.pre {
				b.set(i)
			}
			if got := b.setRange(tt.lo, tt.hi); got != tt.want {
				t.Errorf("setRange added %d, want %d", got, tt.want)
			}
			if got := b.count(); got != tt.wantSize {
				t.Errorf("count = %d, want %d", got, tt.wantSize)
			}
			for i := tt.lo; i < tt.hi; i++ {
				if !b.has(i) {
					t.Fatalf("%d missing", i)
				}
			}
		})
	}
}

// delivery is one message a consumer received in a checker test.
type delivery struct {
	consumer    int
	producer    uint16
	seq         uint64
	redelivered bool
}

func TestCheck(t *testing.T) {
	t.Parallel()
	const start = 1000
	seqs := func(c int, p uint16, from, to uint64) []delivery {
		var ds []delivery
		for s := from; s < to; s++ {
			ds = append(ds, delivery{consumer: c, producer: p, seq: s})
		}
		return ds
	}
	join := func(parts ...[]delivery) []delivery {
		var ds []delivery
		for _, p := range parts {
			ds = append(ds, p...)
		}
		return ds
	}
	plain := func(sent uint64) publishRecord { return publishRecord{sent: sent} }
	tests := []struct {
		name       string
		consumerQ  []int // queue of each consumer
		pubs       []publishRecord
		routes     [][]int
		deliveries []delivery
		checkLoss  bool
		want       integrity
	}{
		{
			name:      "all received in order",
			consumerQ: []int{0}, pubs: []publishRecord{plain(100)}, routes: [][]int{{0}},
			deliveries: seqs(0, 0, 0, 100), checkLoss: true,
			want: integrity{Checked: true},
		},
		{
			name:      "two missing",
			consumerQ: []int{0}, pubs: []publishRecord{plain(100)}, routes: [][]int{{0}},
			deliveries: join(seqs(0, 0, 0, 40), seqs(0, 0, 42, 100)), checkLoss: true,
			want: integrity{Checked: true, Lost: 2},
		},
		{
			name:      "missing tail, loss not checked",
			consumerQ: []int{0}, pubs: []publishRecord{plain(100)}, routes: [][]int{{0}},
			deliveries: seqs(0, 0, 0, 50), checkLoss: false,
			want: integrity{},
		},
		{
			name:      "duplicate on one consumer",
			consumerQ: []int{0}, pubs: []publishRecord{plain(3)}, routes: [][]int{{0}},
			deliveries: join(seqs(0, 0, 0, 3), []delivery{{consumer: 0, producer: 0, seq: 1}}), checkLoss: true,
			want: integrity{Checked: true, Duplicated: 1, OutOfOrder: 0},
		},
		{
			name:      "redelivered copy is not a duplicate",
			consumerQ: []int{0}, pubs: []publishRecord{plain(3)}, routes: [][]int{{0}},
			deliveries: join(seqs(0, 0, 0, 3), []delivery{{consumer: 0, producer: 0, seq: 1, redelivered: true}}), checkLoss: true,
			want: integrity{Checked: true, Redelivered: 1},
		},
		{
			name:      "duplicate across two consumers of one queue",
			consumerQ: []int{0, 0}, pubs: []publishRecord{plain(4)}, routes: [][]int{{0}},
			deliveries: join(seqs(0, 0, 0, 2), seqs(1, 0, 1, 4)), checkLoss: true,
			want: integrity{Checked: true, Duplicated: 1},
		},
		{
			name:      "redelivery to another consumer is not a duplicate",
			consumerQ: []int{0, 0}, pubs: []publishRecord{plain(4)}, routes: [][]int{{0}},
			deliveries: join(seqs(0, 0, 0, 2), []delivery{{consumer: 1, producer: 0, seq: 1, redelivered: true}}, seqs(1, 0, 2, 4)),
			checkLoss:  true,
			want:       integrity{Checked: true, Redelivered: 1},
		},
		{
			name:      "split between consumers, nothing lost",
			consumerQ: []int{0, 0}, pubs: []publishRecord{plain(6)}, routes: [][]int{{0}},
			deliveries: []delivery{{0, 0, 0, false}, {1, 0, 1, false}, {0, 0, 2, false}, {1, 0, 3, false}, {1, 0, 4, false}, {0, 0, 5, false}},
			checkLoss:  true,
			want:       integrity{Checked: true},
		},
		{
			name:      "out of order within a consumer",
			consumerQ: []int{0}, pubs: []publishRecord{plain(4)}, routes: [][]int{{0}},
			deliveries: []delivery{{0, 0, 0, false}, {0, 0, 2, false}, {0, 0, 1, false}, {0, 0, 3, false}},
			checkLoss:  true,
			want:       integrity{Checked: true, OutOfOrder: 1},
		},
		{
			name:      "two producers interleaved are in order",
			consumerQ: []int{0}, pubs: []publishRecord{plain(2), plain(2)}, routes: [][]int{{0, 1}},
			deliveries: []delivery{{0, 1, 0, false}, {0, 0, 0, false}, {0, 0, 1, false}, {0, 1, 1, false}},
			checkLoss:  true,
			want:       integrity{Checked: true},
		},
		{
			name:      "fanout: each queue must get every message",
			consumerQ: []int{0, 1}, pubs: []publishRecord{plain(10)}, routes: [][]int{{0}, {0}},
			deliveries: join(seqs(0, 0, 0, 10), seqs(1, 0, 0, 9)), checkLoss: true,
			want: integrity{Checked: true, Lost: 1},
		},
		{
			name:      "same id on two queues is not a duplicate",
			consumerQ: []int{0, 1}, pubs: []publishRecord{plain(5)}, routes: [][]int{{0}, {0}},
			deliveries: join(seqs(0, 0, 0, 5), seqs(1, 0, 0, 5)), checkLoss: true,
			want: integrity{Checked: true},
		},
		{
			name:      "queue pattern: producer routed to one queue only",
			consumerQ: []int{0, 1}, pubs: []publishRecord{plain(3), plain(3)}, routes: [][]int{{0}, {1}},
			deliveries: join(seqs(0, 0, 0, 3), seqs(1, 1, 0, 3)), checkLoss: true,
			want: integrity{Checked: true},
		},
		{
			name:      "nacked, returned and unconfirmed messages are not lost",
			consumerQ: []int{0},
			pubs: []publishRecord{{
				sent: 10, confirmMode: true,
				settled:  bitsetOf(0, 1, 2, 3, 4, 5, 6, 7),
				nacked:   bitsetOf(2),
				returned: bitsetOf(3),
			}},
			routes:     [][]int{{0}},
			deliveries: []delivery{{0, 0, 0, false}, {0, 0, 1, false}, {0, 0, 4, false}, {0, 0, 5, false}, {0, 0, 6, false}},
			checkLoss:  true,
			want:       integrity{Checked: true, Lost: 1, Unconfirmed: 2}, // 7 confirmed, never received
		},
		{
			name:      "foreign producer id",
			consumerQ: []int{0}, pubs: []publishRecord{plain(1)}, routes: [][]int{{0}},
			deliveries: []delivery{{0, 0, 0, false}, {0, 7, 0, false}}, checkLoss: true,
			want: integrity{Checked: true, Foreign: 1},
		},
		{
			name:      "queue without consumers is not checked",
			consumerQ: []int{0}, pubs: []publishRecord{plain(2)}, routes: [][]int{{0}, {0}},
			deliveries: seqs(0, 0, 0, 2), checkLoss: true,
			want: integrity{Checked: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tracks := make([]*receiveTrack, len(tt.consumerQ))
			for i, q := range tt.consumerQ {
				tracks[i] = newReceiveTrack(q, len(tt.pubs), start)
			}
			for _, d := range tt.deliveries {
				body := make([]byte, headerSize)
				encodeBody(body, d.producer, d.seq, start+1)
				tracks[d.consumer].record(decodeBody(body), d.redelivered)
			}
			if got := check(tracks, tt.pubs, tt.routes, tt.checkLoss, false); got != tt.want {
				t.Errorf("check = %+v\n          want %+v", got, tt.want)
			}
		})
	}
}

func TestRecordStaleAndSmallBodies(t *testing.T) {
	t.Parallel()
	tr := newReceiveTrack(0, 1, 1000)
	stale := make([]byte, headerSize)
	encodeBody(stale, 0, 0, 999) // stamped before the run started
	tr.record(decodeBody(stale), false)
	tr.record(decodeBody(make([]byte, 4)), false)
	if tr.foreign != 1 || tr.unchecked != 1 || tr.received.Load() != 2 || tr.unique.Load() != 1 {
		t.Errorf("foreign %d unchecked %d received %d unique %d", tr.foreign, tr.unchecked, tr.received.Load(), tr.unique.Load())
	}
}

func TestCheckByCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		received int
		pub      publishRecord
		want     uint64
	}{
		{name: "all", received: 10, pub: publishRecord{sent: 10}, want: 0},
		{name: "short by two", received: 8, pub: publishRecord{sent: 10}, want: 2},
		{name: "returns expected missing", received: 7, pub: publishRecord{sent: 10, returns: 3}, want: 0},
		{name: "unconfirmed and nacked expected missing", received: 6,
			pub: publishRecord{sent: 10, confirmMode: true, settled: bitsetOf(0, 1, 2, 3, 4, 5, 6, 7), nacked: bitsetOf(7)}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newReceiveTrack(0, 1, 0)
			for i := 0; i < tt.received; i++ {
				tr.record(decodeBody(nil), false)
			}
			got := check([]*receiveTrack{tr}, []publishRecord{tt.pub}, [][]int{{0}}, true, true)
			if got.Lost != tt.want || got.Unchecked != uint64(tt.received) {
				t.Errorf("lost %d unchecked %d, want %d %d", got.Lost, got.Unchecked, tt.want, tt.received)
			}
		})
	}
}

func bitsetOf(ids ...uint64) bitset {
	var b bitset
	for _, i := range ids {
		b.set(i)
	}
	return b
}
