package mgmt

import (
	"testing"

	"github.com/warrenmq/warren/amqp"
)

func TestConnectionRates(t *testing.T) {
	r := newRates()
	r.sampleConnections([]amqp.ConnectionInfo{{Name: "a", RecvOct: 100, SendOct: 10}, {Name: "b"}}, 5)
	if recv, send := r.connection("a"); recv != 0 || send != 0 {
		t.Fatalf("rates after one sample: %v %v, want 0 0", recv, send)
	}
	r.sampleConnections([]amqp.ConnectionInfo{{Name: "a", RecvOct: 600, SendOct: 60}}, 5)
	if recv, send := r.connection("a"); recv != 100 || send != 10 {
		t.Fatalf("rates: %v %v, want 100 10", recv, send)
	}
	if len(r.conns) != 1 {
		t.Fatalf("closed connection b still sampled: %v", r.conns)
	}
}

func TestChange(t *testing.T) {
	for _, c := range []struct {
		prev, last uint64
		secs, want float64
	}{{10, 60, 5, 10}, {60, 10, 5, -10}, {10, 60, 0, 0}} {
		if got := change(c.prev, c.last, c.secs); got != c.want {
			t.Errorf("change(%d, %d, %v) = %v, want %v", c.prev, c.last, c.secs, got, c.want)
		}
	}
}
