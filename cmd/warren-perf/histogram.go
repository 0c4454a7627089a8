package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Latencies are kept in a log-linear histogram: values below 2^subBits ns have
// a bucket each, and every power of two above that is split into 2^subBits
// buckets, so a bucket is never wider than 1/64 (1.6%) of its values. Values
// are clamped to 2^maxBits ns (about 18 minutes).
const (
	subBits    = 6
	subCount   = 1 << subBits
	maxBits    = 40
	numBuckets = (maxBits - subBits + 1) * subCount
)

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v >= 1<<maxBits {
		v = 1<<maxBits - 1
	}
	msb := bits.Len64(uint64(v)) - 1
	shift := msb - subBits
	return (shift+1)<<subBits + int(uint64(v)>>shift) - subCount
}

// bucketLow returns the smallest value in bucket i.
func bucketLow(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i>>subBits - 1
	return int64(i&(subCount-1)+subCount) << shift
}

// bucketMid returns the value reported for bucket i: the middle of its range.
func bucketMid(i int) int64 {
	lo := bucketLow(i)
	if i < subCount {
		return lo
	}
	return lo + (bucketLow(i+1)-lo)/2
}

// histogram counts latencies. It is owned by one goroutine.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
}

// atomicHistogram is written by one consumer and drained by the reporter.
type atomicHistogram struct {
	counts [numBuckets]atomic.Uint64
}

func (h *atomicHistogram) record(nanos int64) {
	h.counts[bucketOf(nanos)].Add(1)
}

// drainInto moves every count of h into dst.
func (h *atomicHistogram) drainInto(dst *histogram) {
	for i := range h.counts {
		if h.counts[i].Load() == 0 {
			continue
		}
		n := h.counts[i].Swap(0)
		dst.counts[i] += n
		dst.total += n
	}
}

func (h *histogram) record(nanos int64) {
	h.counts[bucketOf(nanos)]++
	h.total++
}

func (h *histogram) add(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
}

func (h *histogram) reset() { *h = histogram{} }

// percentile returns the value at percentile p (0 < p <= 100): the smallest
// recorded value that at least p% of the values are less than or equal to,
// rounded to its bucket. p == 0 gives the minimum. An empty histogram gives 0.
func (h *histogram) percentile(p float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return bucketMid(numBuckets - 1)
}
