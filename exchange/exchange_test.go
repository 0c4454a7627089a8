package exchange

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    string
		args    wire.Table
		wantErr string
	}{
		{name: "direct", kind: "direct"},
		{name: "fanout", kind: "fanout"},
		{name: "topic", kind: "topic"},
		{name: "headers", kind: "headers"},
		{name: "consistent hash", kind: "x-consistent-hash"},
		{name: "unknown args are ignored", kind: "direct", args: wire.Table{"foo": int32(1)}},
		{name: "unknown type", kind: "foo", wantErr: "PRECONDITION_FAILED - unknown exchange type 'foo'"},
		{name: "type is case sensitive", kind: "Direct", wantErr: "PRECONDITION_FAILED - unknown exchange type 'Direct'"},
		{name: "empty type", kind: "", wantErr: "PRECONDITION_FAILED - unknown exchange type ''"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tt.kind, tt.args)
			if tt.wantErr != "" {
				wantWireError(t, err, wire.PreconditionFailed, tt.wantErr)
				if Known(tt.kind) {
					t.Errorf("Known(%q) = true", tt.kind)
				}
				return
			}
			if err != nil || r == nil {
				t.Fatalf("New(%q) = %v, %v", tt.kind, r, err)
			}
			if !Known(tt.kind) {
				t.Errorf("Known(%q) = false", tt.kind)
			}
		})
	}
}

func TestCanonicalArgs(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	tests := []struct {
		name  string
		a, b  wire.Table
		equal bool
	}{
		{name: "nil and empty", a: nil, b: wire.Table{}, equal: true},
		{name: "same", a: wire.Table{"k": "v", "n": int32(1)}, b: wire.Table{"n": int32(1), "k": "v"}, equal: true},
		{name: "int widths differ", a: wire.Table{"n": int32(1)}, b: wire.Table{"n": int64(1)}},
		{name: "int is long", a: wire.Table{"n": 1}, b: wire.Table{"n": int64(1)}, equal: true},
		{name: "longstr and bytes differ", a: wire.Table{"k": "v"}, b: wire.Table{"k": []byte("v")}},
		{name: "values differ", a: wire.Table{"k": "v"}, b: wire.Table{"k": "w"}},
		{name: "keys differ", a: wire.Table{"k": "v"}, b: wire.Table{"j": "v"}},
		{name: "void and empty string differ", a: wire.Table{"k": nil}, b: wire.Table{"k": ""}},
		{name: "key and value boundaries", a: wire.Table{"ab": "c"}, b: wire.Table{"a": "bc"}},
		{name: "nested tables", a: wire.Table{"t": wire.Table{"x": int8(1), "y": true}}, b: wire.Table{"t": wire.Table{"y": true, "x": int8(1)}}, equal: true},
		{name: "arrays in order", a: wire.Table{"a": []any{"x", "y"}}, b: wire.Table{"a": []any{"y", "x"}}},
		{name: "timestamps", a: wire.Table{"t": ts}, b: wire.Table{"t": ts.UTC()}, equal: true},
		{name: "decimal", a: wire.Table{"d": wire.Decimal{Scale: 1, Value: 10}}, b: wire.Table{"d": wire.Decimal{Scale: 0, Value: 1}}},
		{name: "floats", a: wire.Table{"f": float32(1)}, b: wire.Table{"f": float64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := CanonicalArgs(tt.a) == CanonicalArgs(tt.b); got != tt.equal {
				t.Errorf("CanonicalArgs equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

// TestBindingIdentity checks, for every type, what makes bindings distinct,
// what Len and Bindings report, and how bindings go away.
func TestBindingIdentity(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"direct", "fanout", "topic", "headers", "x-consistent-hash"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r, err := New(kind, nil)
			if err != nil {
				t.Fatal(err)
			}
			b1 := Binding{Destination: qa, Key: "1"}
			b2 := Binding{Destination: qa, Key: "1", Args: wire.Table{"k": int32(1)}}
			b3 := Binding{Destination: qa, Key: "1", Args: wire.Table{"k": int64(1)}}
			b4 := Binding{Destination: qb, Key: "2"}
			for i, b := range []Binding{b1, b2, b3, b4} {
				if added, err := r.Bind(b); !added || err != nil {
					t.Fatalf("Bind #%d = %v, %v; want added", i, added, err)
				}
			}
			if added, err := r.Bind(Binding{Destination: qa, Key: "1", Args: wire.Table{}}); added || err != nil {
				t.Fatalf("re-Bind = %v, %v; want not added", added, err)
			}
			if n := r.Len(); n != 4 {
				t.Fatalf("Len = %d, want 4", n)
			}
			var order []string
			r.Bindings(func(b Binding) bool {
				order = append(order, b.Destination.Name()+b.Key+CanonicalArgs(b.Args))
				return true
			})
			want := []string{"a1", "a1" + CanonicalArgs(b2.Args), "a1" + CanonicalArgs(b3.Args), "b2"}
			if !equalStrings(order, want) {
				t.Fatalf("Bindings order = %q, want %q", order, want)
			}
			calls := 0
			r.Bindings(func(Binding) bool { calls++; return false })
			if calls != 1 {
				t.Fatalf("Bindings went on after false: %d calls", calls)
			}
			if r.Unbind(Binding{Destination: qa, Key: "1", Args: wire.Table{"k": int16(1)}}) {
				t.Fatal("Unbind of a binding never made reported true")
			}
			if !r.Unbind(b2) || r.Unbind(b2) {
				t.Fatal("Unbind not exactly once")
			}
			if n := r.RemoveDestination(qa); n != 2 {
				t.Fatalf("RemoveDestination = %d, want 2", n)
			}
			if n := r.RemoveDestination(qa); n != 0 {
				t.Fatalf("second RemoveDestination = %d, want 0", n)
			}
			if n := r.Len(); n != 1 {
				t.Fatalf("Len = %d, want 1", n)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBindNilDestination(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"direct", "fanout", "topic", "headers", "x-consistent-hash"} {
		r, _ := New(kind, nil)
		if added, err := r.Bind(Binding{Key: "1"}); added || err == nil {
			t.Errorf("%s: Bind(nil destination) = %v, %v", kind, added, err)
		}
	}
}
