package amqp

import (
	"cmp"
	"slices"

	"github.com/warrenmq/warren/queue"
)

// delivery is one unacknowledged delivery on a channel.
type delivery struct {
	tag      uint64
	queue    queue.Queue
	consumer *queue.Consumer // nil for basic.get
	entry    queue.Entry
	deadline int64 // unix ms by which it must be acknowledged; 0 for none
	timeout  int64 // the timeout that set deadline, ms
	settled  bool  // acked out of order; dropped when it reaches the front
}

// unackedList holds a channel's unacknowledged deliveries in delivery-tag
// order. Tags increase, so a single ack is a binary search and a multiple
// ack pops from the front; deliveries settled out of order stay as
// tombstones until they reach the front.
type unackedList struct {
	buf  []delivery
	head int
	n    int // slots in use, tombstones included
	live int // deliveries not settled
	// earliest is at or before the earliest deadline of a live delivery
	// (0: none), so a timeout check can usually skip the scan.
	earliest int64
}

func (l *unackedList) at(i int) *delivery { return &l.buf[(l.head+i)%len(l.buf)] }

func (l *unackedList) push(d delivery) {
	if l.n == len(l.buf) {
		buf := make([]delivery, max(16, 2*len(l.buf)))
		for i := 0; i < l.n; i++ {
			buf[i] = *l.at(i)
		}
		l.buf, l.head = buf, 0
	}
	*l.at(l.n) = d
	l.n++
	l.live++
	if d.deadline != 0 && (l.earliest == 0 || d.deadline < l.earliest) {
		l.earliest = d.deadline
	}
}

// overdue returns the first live delivery whose deadline is before now,
// and tightens earliest when there is none.
func (l *unackedList) overdue(now int64) (*delivery, bool) {
	if l.earliest == 0 || now < l.earliest {
		return nil, false
	}
	l.earliest = 0
	for i := 0; i < l.n; i++ {
		d := l.at(i)
		if d.settled || d.deadline == 0 {
			continue
		}
		if d.deadline <= now {
			return d, true
		}
		if l.earliest == 0 || d.deadline < l.earliest {
			l.earliest = d.deadline
		}
	}
	return nil, false
}

func (l *unackedList) popFront() delivery {
	d := *l.at(0)
	*l.at(0) = delivery{}
	l.head = (l.head + 1) % len(l.buf)
	l.n--
	return d
}

// trimFront drops tombstones at the front.
func (l *unackedList) trimFront() {
	for l.n > 0 && l.at(0).settled {
		l.popFront()
	}
}

// take removes the delivery with tag (or, with multiple, every delivery up
// to and including tag; tag 0 with multiple means all) and appends them to
// out. ok is false, and nothing is removed, when tag names no outstanding
// delivery: RabbitMQ's "unknown delivery tag", for multiple acks too.
func (l *unackedList) take(tag uint64, multiple bool, out []delivery) ([]delivery, bool) {
	if multiple && tag == 0 {
		for l.n > 0 {
			if d := l.popFront(); !d.settled {
				out = append(out, d)
			}
		}
		l.live = 0
		return out, true
	}
	lo, hi := 0, l.n
	for lo < hi {
		mid := (lo + hi) / 2
		if l.at(mid).tag < tag {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == l.n || l.at(lo).tag != tag || l.at(lo).settled {
		return out, false
	}
	if multiple {
		for i := 0; i <= lo; i++ {
			if d := l.popFront(); !d.settled {
				out = append(out, d)
				l.live--
			}
		}
		l.trimFront()
		return out, true
	}
	d := l.at(lo)
	out = append(out, *d)
	d.settled = true
	d.entry = queue.Entry{}
	l.live--
	l.trimFront()
	if tomb := l.n - l.live; tomb > 1024 && tomb > 2*l.live {
		l.compact()
	}
	return out, true
}

// compact drops the tombstones behind a delivery that stays unacknowledged
// while later ones are acked, so they cannot pile up.
func (l *unackedList) compact() {
	j := 0
	for i := 0; i < l.n; i++ {
		if d := *l.at(i); !d.settled {
			*l.at(j) = d
			j++
		}
	}
	for i := j; i < l.n; i++ {
		*l.at(i) = delivery{}
	}
	l.n = j
}

// takeAll removes every outstanding delivery.
func (l *unackedList) takeAll(out []delivery) []delivery {
	out, _ = l.take(0, true, out)
	return out
}

// restore puts deliveries taken earlier back in tag order.
func (l *unackedList) restore(ds []delivery) {
	all := l.takeAll(make([]delivery, 0, l.live+len(ds)))
	all = append(all, ds...)
	slices.SortFunc(all, func(a, b delivery) int { return cmp.Compare(a.tag, b.tag) })
	for _, d := range all {
		l.push(d)
	}
}
