package classic

// dedupIndex is a deduplicating queue's x-deduplication-header keys of the
// messages it holds, ready or unacknowledged (the deduplication plugin's
// queue form): a key leaves when its message leaves the queue for good,
// and stays while the message is requeued.
type dedupIndex struct {
	keys  map[string]uint64 // key: the sequence number of the message holding it
	bySeq map[uint64]string
}

func newDedupIndex() *dedupIndex {
	return &dedupIndex{keys: map[string]uint64{}, bySeq: map[uint64]string{}}
}

// holds reports whether a message with key is in the queue.
func (d *dedupIndex) holds(key string) bool {
	_, ok := d.keys[key]
	return ok
}

func (d *dedupIndex) add(key string, seq uint64) {
	d.keys[key] = seq
	d.bySeq[seq] = key
}

// remove forgets the key of the message with sequence number seq.
func (d *dedupIndex) remove(seq uint64) {
	if key, ok := d.bySeq[seq]; ok {
		delete(d.bySeq, seq)
		delete(d.keys, key)
	}
}

// clear forgets every key.
func (d *dedupIndex) clear() {
	clear(d.keys)
	clear(d.bySeq)
}
