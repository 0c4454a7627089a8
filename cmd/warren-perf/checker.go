package main

import (
	"math/bits"
	"sync/atomic"
)

// bitset is a growable set of sequence numbers.
type bitset []uint64

// grow makes room for word w.
func (b *bitset) grow(w int) {
	if w < len(*b) {
		return
	}
	nb := make(bitset, max(w+1, 2*len(*b), 64))
	copy(nb, *b)
	*b = nb
}

// set adds i and reports whether it was already present.
func (b *bitset) set(i uint64) bool {
	w := int(i >> 6)
	b.grow(w)
	m := uint64(1) << (i & 63)
	old := (*b)[w]&m != 0
	(*b)[w] |= m
	return old
}

func (b bitset) has(i uint64) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(i&63)) != 0
}

func (b bitset) word(w int) uint64 {
	if w < len(b) {
		return b[w]
	}
	return 0
}

// setRange adds every i with lo <= i < hi and returns how many were new.
func (b *bitset) setRange(lo, hi uint64) uint64 {
	if lo >= hi {
		return 0
	}
	b.grow(int((hi - 1) >> 6))
	var added uint64
	for i := lo; i < hi; {
		w := int(i >> 6)
		if i&63 == 0 && hi-i >= 64 {
			added += uint64(64 - bits.OnesCount64((*b)[w]))
			(*b)[w] = ^uint64(0)
			i += 64
			continue
		}
		m := uint64(1) << (i & 63)
		if (*b)[w]&m == 0 {
			(*b)[w] |= m
			added++
		}
		i++
	}
	return added
}

func (b bitset) count() uint64 {
	var n int
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// seenByProducer is what one consumer received from one producer.
type seenByProducer struct {
	seen        bitset
	redelivered bitset // ids that arrived with the redelivered flag
	last        int64  // highest sequence number received without redelivery; -1 none
}

// receiveTrack is one consumer's record of what it received. Only the
// consumer's goroutine writes it; the atomic counters are read by the reporter,
// everything else after the consumer has stopped.
type receiveTrack struct {
	queue     int // index of the consumer's queue
	producers []seenByProducer
	startNano int64 // messages stamped before the run started are foreign

	received    atomic.Uint64 // every delivery
	unique      atomic.Uint64 // deliveries of ids this consumer had not seen
	duplicated  uint64
	outOfOrder  uint64
	redelivered uint64
	foreign     uint64 // not from this run's producers
	unchecked   uint64 // bodies too small to carry an id
}

func newReceiveTrack(queue, producers int, startNano int64) *receiveTrack {
	t := &receiveTrack{queue: queue, producers: make([]seenByProducer, producers), startNano: startNano}
	for i := range t.producers {
		t.producers[i].last = -1
	}
	return t
}

// record notes one delivery.
func (t *receiveTrack) record(bi bodyInfo, redelivered bool) {
	t.received.Add(1)
	if redelivered {
		t.redelivered++
	}
	if !bi.hasID {
		t.unchecked++
		t.unique.Add(1)
		return
	}
	if int(bi.producer) >= len(t.producers) || bi.hasTime && bi.sentNano < t.startNano {
		t.foreign++
		return
	}
	p := &t.producers[bi.producer]
	if p.seen.set(bi.seq) {
		if redelivered {
			p.redelivered.set(bi.seq)
		} else {
			t.duplicated++
		}
		return
	}
	t.unique.Add(1)
	if redelivered {
		p.redelivered.set(bi.seq)
		return
	}
	if int64(bi.seq) < p.last {
		t.outOfOrder++
	} else {
		p.last = int64(bi.seq)
	}
}

// publishRecord is what one producer knows about its messages at the end:
// how many it sent and which were confirmed, nacked or returned.
type publishRecord struct {
	sent        uint64
	confirmMode bool
	settled     bitset // acked or nacked (confirm mode only)
	nacked      bitset
	returned    bitset
	returns     uint64 // basic.returns, including bodies without an id
}

// expectedCount is how many messages the producer should have delivered to
// each queue it routes to, by count alone (for bodies without ids).
func (p *publishRecord) expectedCount() uint64 {
	n := p.sent
	if p.confirmMode {
		n = min(n, p.settled.count())
	}
	n -= min(n, p.nacked.count())
	return n - min(n, p.returns)
}

// integrity is the verdict on what was received.
type integrity struct {
	Checked     bool   `json:"loss_checked"`
	Reason      string `json:"loss_not_checked_reason,omitempty"`
	Lost        uint64 `json:"lost"`
	Duplicated  uint64 `json:"duplicated"`
	OutOfOrder  uint64 `json:"out_of_order"`
	Redelivered uint64 `json:"redelivered"`
	Unconfirmed uint64 `json:"unconfirmed"`
	Foreign     uint64 `json:"foreign"`
	Unchecked   uint64 `json:"unchecked"`
}

// check merges the consumers' records queue by queue. routes[q] lists the
// producers whose messages queue q should have received. Loss is counted only
// when checkLoss is set (a clean finish where everything sent should have
// arrived): a message is lost when its producer sent it, it was not nacked,
// not returned and, in confirm mode, was confirmed, yet no consumer of an
// expected queue received it. With bodies too small to carry ids (byCount),
// loss is the shortfall of each queue's count against what its producers
// should have delivered. A message received twice on one queue without
// the redelivered flag is a duplicate; one received by a consumer after a
// higher sequence number from the same producer, not redelivered, is out of
// order.
func check(tracks []*receiveTrack, pubs []publishRecord, routes [][]int, checkLoss, byCount bool) integrity {
	var res integrity
	byQueue := make([][]*receiveTrack, len(routes))
	for _, t := range tracks {
		res.Duplicated += t.duplicated
		res.OutOfOrder += t.outOfOrder
		res.Redelivered += t.redelivered
		res.Foreign += t.foreign
		res.Unchecked += t.unchecked
		if t.queue >= 0 && t.queue < len(byQueue) {
			byQueue[t.queue] = append(byQueue[t.queue], t)
		}
	}
	for _, p := range pubs {
		if p.confirmMode {
			res.Unconfirmed += p.sent - min(p.sent, p.settled.count())
		}
	}
	for q, ts := range byQueue {
		// Ids seen by more than one consumer of the queue are duplicates
		// unless one of the copies was a redelivery.
		merged := make([]bitset, len(pubs))
		for p := range pubs {
			for _, t := range ts {
				if p >= len(t.producers) {
					continue
				}
				sp := &t.producers[p]
				for w, bitsW := range sp.seen {
					if w >= len(merged[p]) {
						merged[p] = append(merged[p], make(bitset, w+1-len(merged[p]))...)
					}
					overlap := merged[p][w] & bitsW &^ sp.redelivered.word(w)
					if overlap != 0 {
						overlap &^= redeliveredWord(ts, p, w)
					}
					res.Duplicated += uint64(bits.OnesCount64(overlap))
					merged[p][w] |= bitsW
				}
			}
		}
		if !checkLoss || len(ts) == 0 {
			continue
		}
		if byCount {
			var got, want uint64
			for _, t := range ts {
				got += t.unique.Load()
			}
			for _, p := range routes[q] {
				want += pubs[p].expectedCount()
			}
			res.Lost += want - min(want, got)
			continue
		}
		for _, p := range routes[q] {
			res.Lost += lostFrom(&pubs[p], merged[p])
		}
	}
	res.Checked = checkLoss
	return res
}

// redeliveredWord ORs word w of producer p's redelivered sets over consumers.
func redeliveredWord(ts []*receiveTrack, p, w int) uint64 {
	var r uint64
	for _, t := range ts {
		if p < len(t.producers) {
			r |= t.producers[p].redelivered.word(w)
		}
	}
	return r
}

// lostFrom counts the ids producer pub should have delivered that are not in seen.
func lostFrom(pub *publishRecord, seen bitset) uint64 {
	var lost uint64
	words := int((pub.sent + 63) / 64)
	for w := 0; w < words; w++ {
		want := ^uint64(0)
		if rem := pub.sent - uint64(w)*64; rem < 64 {
			want = 1<<rem - 1
		}
		want &^= pub.nacked.word(w) | pub.returned.word(w)
		if pub.confirmMode {
			want &= pub.settled.word(w)
		}
		lost += uint64(bits.OnesCount64(want &^ seen.word(w)))
	}
	return lost
}
