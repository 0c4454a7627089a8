package exchange

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

func TestConsistentHashArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		args         wire.Table
		wantErr      string
		wantHeader   string
		wantProperty string
	}{
		{name: "none"},
		{name: "header", args: wire.Table{"hash-header": "h"}, wantHeader: "h"},
		{name: "message_id", args: wire.Table{"hash-property": "message_id"}, wantProperty: "message_id"},
		{name: "correlation_id", args: wire.Table{"hash-property": "correlation_id"}, wantProperty: "correlation_id"},
		{name: "timestamp", args: wire.Table{"hash-property": "timestamp"}, wantProperty: "timestamp"},
		{name: "unsupported property", args: wire.Table{"hash-property": "app_id"}, wantErr: "PRECONDITION_FAILED - Unsupported property: app_id"},
		{name: "both", args: wire.Table{"hash-header": "h", "hash-property": "message_id"}, wantErr: "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive"},
		{name: "both, bad property", args: wire.Table{"hash-header": "h", "hash-property": "nope"}, wantErr: "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive"},
		{name: "header not a string", args: wire.Table{"hash-header": int32(1)}, wantErr: "PRECONDITION_FAILED - Invalid hash-header field type signedint (value 1); expected longstr"},
		{name: "other arguments ignored", args: wire.Table{"alternate-exchange": "ae"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := New("x-consistent-hash", tt.args)
			if tt.wantErr != "" {
				wantWireError(t, err, wire.PreconditionFailed, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ch := r.(*ConsistentHash)
			if ch.HashHeader() != tt.wantHeader || ch.HashProperty() != tt.wantProperty {
				t.Fatalf("hash on header %q property %q", ch.HashHeader(), ch.HashProperty())
			}
		})
	}
}

func TestConsistentHashWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key     string
		wantErr string
	}{
		{key: "1"},
		{key: "10"},
		{key: "+3"},
		{key: "007"},
		{key: strconv.Itoa(MaxWeight)},
		{key: "0", wantErr: "PRECONDITION_FAILED - The binding key must be greater than 0"},
		{key: "-1", wantErr: "PRECONDITION_FAILED - The binding key must be greater than 0"},
		{key: "-99999999999999999999999", wantErr: "PRECONDITION_FAILED - The binding key must be greater than 0"},
		{key: "", wantErr: "PRECONDITION_FAILED - The binding key must be an integer: <<>>"},
		{key: "abc", wantErr: `PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>`},
		{key: "1.5", wantErr: `PRECONDITION_FAILED - The binding key must be an integer: <<"1.5">>`},
		{key: " 1", wantErr: `PRECONDITION_FAILED - The binding key must be an integer: <<" 1">>`},
		{key: "0x10", wantErr: `PRECONDITION_FAILED - The binding key must be an integer: <<"0x10">>`},
		{key: strconv.Itoa(MaxWeight + 1), wantErr: "PRECONDITION_FAILED - The binding key must not be greater than 2147483647"},
		{key: "99999999999999999999999", wantErr: "PRECONDITION_FAILED - The binding key must not be greater than 2147483647"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			r, _ := NewConsistentHash(nil)
			added, err := r.Bind(Binding{Destination: qa, Key: tt.key})
			if tt.wantErr == "" {
				if !added || err != nil {
					t.Fatalf("Bind = %v, %v", added, err)
				}
				return
			}
			wantWireError(t, err, wire.PreconditionFailed, tt.wantErr)
			if added || r.Len() != 0 {
				t.Fatal("invalid binding kept")
			}
		})
	}
}

// countRoutes routes n distinct keys and counts the destinations.
func countRoutes(t *testing.T, r Router, n int, headers func(i int) (string, wire.Table)) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var out []Destination
	for i := range n {
		key, h := headers(i)
		out = r.Route(key, h, out[:0])
		if len(out) != 1 {
			t.Fatalf("Route(%q) = %q, want one destination", key, names(out))
		}
		counts[out[0].Name()]++
	}
	return counts
}

func byKey(i int) (string, wire.Table) { return "key-" + strconv.Itoa(i), nil }

func TestConsistentHashDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    wire.Table
		message func(i int) (string, wire.Table)
	}{
		{name: "routing key", message: byKey},
		{name: "string header", args: wire.Table{"hash-header": "h"}, message: func(i int) (string, wire.Table) {
			return "same", wire.Table{"h": strconv.Itoa(i)}
		}},
		{name: "integer header", args: wire.Table{"hash-header": "h"}, message: func(i int) (string, wire.Table) {
			return "same", wire.Table{"h": int64(i)}
		}},
		{name: "timestamp property", args: wire.Table{"hash-property": "timestamp"}, message: func(i int) (string, wire.Table) {
			return strconv.Itoa(1700000000 + i), nil
		}},
	}
	weights := map[*testDest]int{qa: 10, qb: 10, qc: 20, qd: 20}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewConsistentHash(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*testDest{qa, qb, qc, qd} {
				mustBind(t, r, Binding{Destination: d, Key: strconv.Itoa(weights[d])})
			}
			const n = 60000
			counts := countRoutes(t, r, n, tt.message)
			for d, w := range weights {
				want := float64(n) * float64(w) / 60
				if got := float64(counts[d.name]); math.Abs(got-want) > 0.05*want {
					t.Errorf("%s (weight %d) got %v of %d, want %v ±5%%", d.name, w, got, n, want)
				}
			}
		})
	}
}

// TestConsistentHashStable checks the point of consistent hashing: adding a
// destination moves only values that now go to it, and a value always goes
// to the same destination.
func TestConsistentHashStable(t *testing.T) {
	t.Parallel()
	r, _ := NewConsistentHash(nil)
	mustBind(t, r, Binding{Destination: qa, Key: "5"})
	mustBind(t, r, Binding{Destination: qb, Key: "5"})
	before := make([]Destination, 5000)
	for i := range before {
		before[i] = r.Route(strconv.Itoa(i), nil, nil)[0]
		if again := r.Route(strconv.Itoa(i), nil, nil)[0]; again != before[i] {
			t.Fatal("same key routed differently")
		}
	}
	mustBind(t, r, Binding{Destination: qc, Key: "5"})
	moved := 0
	for i := range before {
		after := r.Route(strconv.Itoa(i), nil, nil)[0]
		if after != before[i] {
			if after != qc {
				t.Fatalf("key %d moved from %s to %s, not to the new destination", i, before[i].Name(), after.Name())
			}
			moved++
		}
	}
	if moved < 1300 || moved > 2000 { // a third of 5000
		t.Fatalf("%d of 5000 keys moved, want about a third", moved)
	}
	// Taking the new destination off restores the old routes.
	r.RemoveDestination(qc)
	for i := range before {
		if after := r.Route(strconv.Itoa(i), nil, nil)[0]; after != before[i] {
			t.Fatalf("key %d routes to %s after removal, was %s", i, after.Name(), before[i].Name())
		}
	}
}

func TestConsistentHashRing(t *testing.T) {
	t.Parallel()
	r, _ := NewConsistentHash(nil)
	if got := r.Route("k", nil, nil); len(got) != 0 {
		t.Fatalf("empty exchange routed to %q", names(got))
	}
	mustBind(t, r, Binding{Destination: qa, Key: "1"})
	// A second binding to qa adds a binding but not a second run of buckets.
	mustBind(t, r, Binding{Destination: qa, Key: "100"})
	mustBind(t, r, Binding{Destination: qb, Key: "1"})
	if r.Len() != 3 || r.buckets != 2 {
		t.Fatalf("Len %d buckets %d, want 3 and 2", r.Len(), r.buckets)
	}
	// Removing either binding to qa takes qa off the ring (as RabbitMQ does).
	r.Unbind(Binding{Destination: qa, Key: "100"})
	if r.Len() != 2 || r.buckets != 1 {
		t.Fatalf("Len %d buckets %d, want 2 and 1", r.Len(), r.buckets)
	}
	counts := countRoutes(t, r, 100, byKey)
	if counts["b"] != 100 {
		t.Fatalf("routes %v, want all to b", counts)
	}
	// Binding qa anew puts it back, at the end of the ring.
	mustBind(t, r, Binding{Destination: qa, Key: "3"})
	if r.buckets != 4 || r.ring[1].dest != qa || r.ring[1].end != 4 {
		t.Fatalf("ring %+v", r.ring)
	}
	if n := r.RemoveDestination(qa); n != 2 || r.buckets != 1 {
		t.Fatalf("RemoveDestination = %d, buckets %d", n, r.buckets)
	}
}

func TestConsistentHashHeader(t *testing.T) {
	t.Parallel()
	r, _ := NewConsistentHash(wire.Table{"hash-header": "h"})
	for _, d := range []*testDest{qa, qb, qc, qd} {
		mustBind(t, r, Binding{Destination: d, Key: "10"})
	}
	first := func(key string, h wire.Table) Destination { return r.Route(key, h, nil)[0] }
	// The routing key does not matter; the header does.
	for i := range 50 {
		h := wire.Table{"h": "v" + strconv.Itoa(i)}
		if first("x", h) != first("y", h) {
			t.Fatal("routing key changed the destination")
		}
	}
	// Equal values of different AMQP types go to the same place.
	pairs := [][2]any{
		{"abc", []byte("abc")},
		{int32(7), int64(7)},
		{uint8(7), int16(7)},
		{time.Unix(9, 0), int64(9000)},
	}
	for _, p := range pairs {
		if first("", wire.Table{"h": p[0]}) != first("", wire.Table{"h": p[1]}) {
			t.Errorf("%T %v and %T %v routed differently", p[0], p[0], p[1], p[1])
		}
	}
	// A missing or void header always goes to one destination.
	missing := first("a", nil)
	for i := range 100 {
		if first(strconv.Itoa(i), wire.Table{"other": int32(i)}) != missing || first("", wire.Table{"h": nil}) != missing {
			t.Fatal("messages without the header routed differently")
		}
	}
}
