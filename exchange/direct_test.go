package exchange

import (
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

func TestDirectRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		bindings []Binding
		unbind   []Binding
		key      string
		want     []string
	}{
		{name: "no bindings", key: "k", want: []string{}},
		{name: "exact key", bindings: []Binding{{Destination: qa, Key: "k"}}, key: "k", want: []string{"a"}},
		{name: "other key", bindings: []Binding{{Destination: qa, Key: "k"}}, key: "j", want: []string{}},
		{name: "case sensitive", bindings: []Binding{{Destination: qa, Key: "k"}}, key: "K", want: []string{}},
		{name: "no wildcards", bindings: []Binding{{Destination: qa, Key: "*"}, {Destination: qb, Key: "#"}}, key: "k", want: []string{}},
		{name: "empty key", bindings: []Binding{{Destination: qa, Key: ""}, {Destination: qb, Key: "k"}}, key: "", want: []string{"a"}},
		{
			name:     "several destinations",
			bindings: []Binding{{Destination: qa, Key: "k"}, {Destination: qb, Key: "k"}, {Destination: qc, Key: "j"}},
			key:      "k", want: []string{"a", "b"},
		},
		{
			name: "one copy per destination",
			bindings: []Binding{
				{Destination: qa, Key: "k"},
				{Destination: qa, Key: "k", Args: wire.Table{"x": "1"}},
				{Destination: qa, Key: "k", Args: wire.Table{"x": "2"}},
			},
			key: "k", want: []string{"a"},
		},
		{
			name: "destination stays while a binding remains",
			bindings: []Binding{
				{Destination: qa, Key: "k"},
				{Destination: qa, Key: "k", Args: wire.Table{"x": "1"}},
			},
			unbind: []Binding{{Destination: qa, Key: "k"}},
			key:    "k", want: []string{"a"},
		},
		{
			name: "shared key, then one destination again",
			bindings: []Binding{
				{Destination: qa, Key: "k"},
				{Destination: qb, Key: "k"},
				{Destination: qa, Key: "k", Args: wire.Table{"x": "1"}},
				{Destination: qc, Key: "k"},
			},
			unbind: []Binding{{Destination: qb, Key: "k"}, {Destination: qc, Key: "k"}, {Destination: qa, Key: "k"}},
			key:    "k", want: []string{"a"},
		},
		{
			name: "shared key, all gone",
			bindings: []Binding{
				{Destination: qa, Key: "k"},
				{Destination: qb, Key: "k"},
				{Destination: qa, Key: "k", Args: wire.Table{"x": "1"}},
			},
			unbind: []Binding{{Destination: qb, Key: "k"}, {Destination: qa, Key: "k"}, {Destination: qa, Key: "k", Args: wire.Table{"x": "1"}}},
			key:    "k", want: []string{},
		},
		{
			name:     "unbound",
			bindings: []Binding{{Destination: qa, Key: "k"}, {Destination: qb, Key: "k"}},
			unbind:   []Binding{{Destination: qa, Key: "k"}},
			key:      "k", want: []string{"b"},
		},
		{
			name:     "unbind needs the same arguments",
			bindings: []Binding{{Destination: qa, Key: "k", Args: wire.Table{"x": "1"}}},
			unbind:   []Binding{{Destination: qa, Key: "k"}},
			key:      "k", want: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewDirect()
			for _, b := range tt.bindings {
				mustBind(t, r, b)
			}
			for _, b := range tt.unbind {
				r.Unbind(b)
			}
			if got := route(r, tt.key, nil); !equalStrings(got, tt.want) {
				t.Errorf("Route(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestDirectManyDestinationsOneKey(t *testing.T) {
	t.Parallel()
	r := NewDirect()
	ds := make([]*testDest, 100)
	for i := range ds {
		ds[i] = &testDest{name: string(rune('A' + i%26))}
		mustBind(t, r, Binding{Destination: ds[i], Key: "k"})
	}
	for i := 0; i < 100; i += 2 {
		if n := r.RemoveDestination(ds[i]); n != 1 {
			t.Fatalf("RemoveDestination = %d", n)
		}
	}
	got := r.Route("k", nil, nil)
	noDups(t, got)
	if len(got) != 50 {
		t.Fatalf("routed to %d, want 50", len(got))
	}
	for _, d := range got {
		for i := 0; i < 100; i += 2 {
			if d == ds[i] {
				t.Fatalf("routed to removed destination %d", i)
			}
		}
	}
}

func TestRouteAppends(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"direct", "fanout", "topic", "headers", "x-consistent-hash"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r, _ := New(kind, nil)
			mustBind(t, r, Binding{Destination: qb, Key: "1"})
			out := []Destination{qa, qb}
			out = r.Route("1", nil, out)
			if got := names(out); !equalStrings(got, []string{"a", "b", "b"}) {
				t.Fatalf("Route appended to %q, want a b b (no dedup against earlier entries)", got)
			}
		})
	}
}

func TestFanoutRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		bindings []Binding
		unbind   []Binding
		remove   []Destination
		want     []string
	}{
		{name: "none", want: []string{}},
		{name: "all", bindings: []Binding{{Destination: qa}, {Destination: qb, Key: "x"}, {Destination: qc, Key: "y"}}, want: []string{"a", "b", "c"}},
		{name: "once each", bindings: []Binding{{Destination: qa}, {Destination: qa, Key: "x"}, {Destination: qa, Args: wire.Table{"k": true}}}, want: []string{"a"}},
		{name: "unbind one of two", bindings: []Binding{{Destination: qa}, {Destination: qa, Key: "x"}}, unbind: []Binding{{Destination: qa}}, want: []string{"a"}},
		{name: "unbind all", bindings: []Binding{{Destination: qa}, {Destination: qa, Key: "x"}}, unbind: []Binding{{Destination: qa}, {Destination: qa, Key: "x"}}, want: []string{}},
		{name: "remove destination", bindings: []Binding{{Destination: qa}, {Destination: qa, Key: "x"}, {Destination: qb}}, remove: []Destination{qa}, want: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewFanout()
			for _, b := range tt.bindings {
				mustBind(t, r, b)
			}
			for _, b := range tt.unbind {
				r.Unbind(b)
			}
			for _, d := range tt.remove {
				r.RemoveDestination(d)
			}
			for _, key := range []string{"", "x", "anything"} {
				if got := route(r, key, wire.Table{"h": "v"}); !equalStrings(got, tt.want) {
					t.Errorf("Route(%q) = %q, want %q", key, got, tt.want)
				}
			}
		})
	}
}
