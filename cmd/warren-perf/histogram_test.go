package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsCoverValues(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 999_999, 1 << 30, 1<<40 - 1} {
		i := bucketOf(v)
		if lo, hi := bucketLow(i), bucketLow(i+1); v < lo || v >= hi {
			t.Errorf("value %d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
	}
	prev := int64(-1)
	for i := 0; i < numBuckets; i++ {
		lo := bucketLow(i)
		if lo <= prev {
			t.Fatalf("bucket %d low %d not above previous %d", i, lo, prev)
		}
		prev = lo
		if bucketOf(lo) != i {
			t.Fatalf("bucketOf(bucketLow(%d)) = %d", i, bucketOf(lo))
		}
	}
	if got := bucketOf(1 << 50); got != numBuckets-1 {
		t.Errorf("clamped value bucket = %d, want last (%d)", got, numBuckets-1)
	}
	if got := bucketOf(-5); got != 0 {
		t.Errorf("negative value bucket = %d, want 0", got)
	}
}

func TestPercentileSmallExact(t *testing.T) {
	t.Parallel()
	// Values under 64 ns have exact buckets.
	tests := []struct {
		name   string
		values []int64
		p      float64
		want   int64
	}{
		{name: "empty", values: nil, p: 50, want: 0},
		{name: "single", values: []int64{7}, p: 99, want: 7},
		{name: "min", values: []int64{9, 3, 5}, p: 0, want: 3},
		{name: "median odd", values: []int64{1, 2, 3, 4, 5}, p: 50, want: 3},
		{name: "median even takes lower", values: []int64{1, 2, 3, 4}, p: 50, want: 2},
		{name: "75th of 1..4", values: []int64{4, 3, 2, 1}, p: 75, want: 3},
		{name: "99th of 1..10", values: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, p: 99, want: 10},
		{name: "max", values: []int64{10, 50, 20}, p: 100, want: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h histogram
			for _, v := range tt.values {
				h.record(v)
			}
			if got := h.percentile(tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %d, want %d", tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentileMatchesSortWithinBucketError(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	values := make([]int64, 100_000)
	for i := range values {
		// Log-normal-ish spread from ~1 µs to ~100 ms.
		values[i] = int64(1000 * (1 + r.ExpFloat64()*r.ExpFloat64()*500))
		h.record(values[i])
	}
	slices.Sort(values)
	for _, p := range []float64{0, 50, 75, 95, 99, 99.9, 100} {
		idx := int(float64(len(values))*p/100+0.999999) - 1
		if idx < 0 {
			idx = 0
		}
		exact := values[idx]
		got := h.percentile(p)
		if diff := float64(got-exact) / float64(exact); diff > 1.0/64 || diff < -1.0/64 {
			t.Errorf("p%v = %d, exact %d (relative error %.4f)", p, got, exact, diff)
		}
	}
}

func TestAtomicHistogramDrain(t *testing.T) {
	t.Parallel()
	var a atomicHistogram
	for _, v := range []int64{100, 200, 300} {
		a.record(v)
	}
	var h histogram
	a.drainInto(&h)
	if h.total != 3 {
		t.Fatalf("total = %d, want 3", h.total)
	}
	var again histogram
	a.drainInto(&again)
	if again.total != 0 {
		t.Errorf("second drain total = %d, want 0", again.total)
	}
	var sum histogram
	sum.add(&h)
	sum.add(&h)
	if sum.total != 6 || sum.percentile(50) != h.percentile(50) {
		t.Errorf("add: total %d p50 %d", sum.total, sum.percentile(50))
	}
}
