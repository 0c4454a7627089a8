package classic

import "github.com/warrenmq/warren/queue"

// deque is a growable ring buffer of entries: push at the back, pop at the
// front, push back at the front.
type deque struct {
	buf  []queue.Entry
	head int
	n    int
}

func (d *deque) len() int { return d.n }

func (d *deque) grow() {
	size := max(16, 2*len(d.buf))
	buf := make([]queue.Entry, size)
	n := copy(buf, d.buf[d.head:min(d.head+d.n, len(d.buf))]) // up to the end of the ring
	copy(buf[n:], d.buf[:d.n-n])                              // and the part that wrapped
	d.buf, d.head = buf, 0
}

func (d *deque) pushBack(e *queue.Entry) {
	if d.n == len(d.buf) {
		d.grow()
	}
	i := d.head + d.n
	if i >= len(d.buf) {
		i -= len(d.buf)
	}
	d.buf[i] = *e
	d.n++
}

func (d *deque) pushFront(e *queue.Entry) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = *e
	d.n++
}

// front returns the first entry; the deque must not be empty.
func (d *deque) front() *queue.Entry { return &d.buf[d.head] }

// popFront moves the first entry into e; the deque must not be empty.
func (d *deque) popFront(e *queue.Entry) {
	*e = d.buf[d.head]
	d.buf[d.head] = queue.Entry{}
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if d.n == 0 {
		d.head = 0
		if len(d.buf) > 1024 {
			d.buf = nil // let a drained backlog's ring go
		}
	}
}

// insertSorted puts e into a deque kept in Seq order (for requeued entries,
// which return near their original position).
func (d *deque) insertSorted(e *queue.Entry) {
	// Requeues mostly arrive in order: check the back first.
	if d.n == 0 || d.buf[(d.head+d.n-1)%len(d.buf)].Seq < e.Seq {
		d.pushBack(e)
		return
	}
	if d.buf[d.head].Seq > e.Seq {
		d.pushFront(e)
		return
	}
	d.pushBack(e)
	for i := d.n - 1; i > 0; i-- {
		cur := (d.head + i) % len(d.buf)
		prev := (d.head + i - 1) % len(d.buf)
		if d.buf[prev].Seq < d.buf[cur].Seq {
			break
		}
		d.buf[prev], d.buf[cur] = d.buf[cur], d.buf[prev]
	}
}

// drain removes every entry, front first, passing each to fn.
func (d *deque) drain(fn func(queue.Entry)) {
	var e queue.Entry
	for d.n > 0 {
		d.popFront(&e)
		fn(e)
	}
}
