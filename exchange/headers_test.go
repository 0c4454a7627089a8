package exchange

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"pgregory.net/rapid"
)

func TestHeadersMatch(t *testing.T) {
	t.Parallel()
	ts := time.Unix(5, 0)
	tests := []struct {
		name    string
		args    wire.Table
		headers wire.Table
		want    bool
	}{
		// x-match all, the default.
		{name: "all by default", args: wire.Table{"a": "1", "b": "2"}, headers: wire.Table{"a": "1", "b": "2", "c": "3"}, want: true},
		{name: "all missing one", args: wire.Table{"a": "1", "b": "2"}, headers: wire.Table{"a": "1"}},
		{name: "all wrong value", args: wire.Table{"a": "1", "b": "2"}, headers: wire.Table{"a": "1", "b": "3"}},
		{name: "all explicit", args: wire.Table{"x-match": "all", "a": "1"}, headers: wire.Table{"a": "1"}, want: true},
		{name: "all no headers", args: wire.Table{"a": "1"}, headers: nil},
		{name: "all with no arguments matches anything", args: nil, headers: nil, want: true},
		{name: "all with only x-match matches anything", args: wire.Table{"x-match": "all"}, headers: wire.Table{"z": "1"}, want: true},
		{name: "key case sensitive", args: wire.Table{"a": "1"}, headers: wire.Table{"A": "1"}},
		// x-match any.
		{name: "any one of two", args: wire.Table{"x-match": "any", "a": "1", "b": "2"}, headers: wire.Table{"b": "2"}, want: true},
		{name: "any none", args: wire.Table{"x-match": "any", "a": "1", "b": "2"}, headers: wire.Table{"a": "2", "c": "2"}},
		{name: "any with no arguments matches nothing", args: wire.Table{"x-match": "any"}, headers: wire.Table{"a": "1"}},
		// x- arguments.
		{name: "all ignores x- arguments", args: wire.Table{"x-match": "all", "x-foo": "bar", "a": "1"}, headers: wire.Table{"a": "1"}, want: true},
		{name: "any ignores x- arguments", args: wire.Table{"x-match": "any", "x-foo": "bar"}, headers: wire.Table{"x-foo": "bar"}},
		{name: "all ignores x- headers too", args: wire.Table{"a": "1"}, headers: wire.Table{"a": "1", "x-foo": "bar"}, want: true},
		{name: "all-with-x needs x- arguments", args: wire.Table{"x-match": "all-with-x", "x-foo": "bar", "a": "1"}, headers: wire.Table{"a": "1"}},
		{name: "all-with-x matches x- headers", args: wire.Table{"x-match": "all-with-x", "x-foo": "bar", "a": "1"}, headers: wire.Table{"a": "1", "x-foo": "bar"}, want: true},
		{name: "any-with-x matches an x- header", args: wire.Table{"x-match": "any-with-x", "x-foo": "bar", "a": "1"}, headers: wire.Table{"x-foo": "bar"}, want: true},
		{name: "x-match itself is never matched", args: wire.Table{"x-match": "all-with-x"}, headers: nil, want: true},
		{name: "any-with-x ignores x-match", args: wire.Table{"x-match": "any-with-x"}, headers: wire.Table{"x-match": "any-with-x"}},
		// Void arguments test presence.
		{name: "void matches any value", args: wire.Table{"a": nil}, headers: wire.Table{"a": int32(5)}, want: true},
		{name: "void matches void", args: wire.Table{"a": nil}, headers: wire.Table{"a": nil}, want: true},
		{name: "void needs the header", args: wire.Table{"a": nil}, headers: wire.Table{"b": "1"}},
		{name: "void header does not match a value", args: wire.Table{"a": ""}, headers: wire.Table{"a": nil}},
		{name: "any with void", args: wire.Table{"x-match": "any", "a": nil, "b": "2"}, headers: wire.Table{"a": false}, want: true},
		// Values compare as Erlang terms, =:=.
		{name: "int widths match", args: wire.Table{"n": int32(1)}, headers: wire.Table{"n": int64(1)}, want: true},
		{name: "unsigned byte and long", args: wire.Table{"n": uint8(200)}, headers: wire.Table{"n": int64(200)}, want: true},
		{name: "unsigned int and short", args: wire.Table{"n": uint32(7)}, headers: wire.Table{"n": int16(7)}, want: true},
		{name: "negative ints", args: wire.Table{"n": int8(-1)}, headers: wire.Table{"n": int64(-1)}, want: true},
		{name: "signed and unsigned differ", args: wire.Table{"n": int8(-1)}, headers: wire.Table{"n": uint8(255)}},
		{name: "int is not float", args: wire.Table{"n": int32(1)}, headers: wire.Table{"n": float64(1)}},
		{name: "float widens to double", args: wire.Table{"f": float32(1.5)}, headers: wire.Table{"f": float64(1.5)}, want: true},
		{name: "float is not the nearest double", args: wire.Table{"f": float32(0.1)}, headers: wire.Table{"f": float64(0.1)}},
		{name: "longstr and byte array", args: wire.Table{"s": "abc"}, headers: wire.Table{"s": []byte("abc")}, want: true},
		{name: "byte array and longstr", args: wire.Table{"s": []byte("abc")}, headers: wire.Table{"s": "abc"}, want: true},
		{name: "string is not a number", args: wire.Table{"s": "1"}, headers: wire.Table{"s": int32(1)}},
		{name: "bool", args: wire.Table{"b": true}, headers: wire.Table{"b": true}, want: true},
		{name: "bool is not int", args: wire.Table{"b": true}, headers: wire.Table{"b": int8(1)}},
		{name: "decimal", args: wire.Table{"d": wire.Decimal{Scale: 2, Value: 150}}, headers: wire.Table{"d": wire.Decimal{Scale: 2, Value: 150}}, want: true},
		{name: "decimal scale matters", args: wire.Table{"d": wire.Decimal{Scale: 1, Value: 15}}, headers: wire.Table{"d": wire.Decimal{Scale: 2, Value: 150}}},
		{name: "timestamp header is in milliseconds", args: wire.Table{"t": ts}, headers: wire.Table{"t": ts}},
		{name: "milliseconds match a timestamp header", args: wire.Table{"t": int64(5000)}, headers: wire.Table{"t": ts}, want: true},
		{name: "timestamp argument is in seconds", args: wire.Table{"t": ts}, headers: wire.Table{"t": int32(5)}, want: true},
		{name: "arrays", args: wire.Table{"a": []any{int32(1), "x"}}, headers: wire.Table{"a": []any{int32(1), "x"}}, want: true},
		{name: "array elements keep their types", args: wire.Table{"a": []any{int32(1)}}, headers: wire.Table{"a": []any{int64(1)}}},
		{name: "array order", args: wire.Table{"a": []any{"x", "y"}}, headers: wire.Table{"a": []any{"y", "x"}}},
		{name: "tables", args: wire.Table{"t": wire.Table{"k": "v"}}, headers: wire.Table{"t": wire.Table{"k": "v"}}, want: true},
		{name: "table values keep their types", args: wire.Table{"t": wire.Table{"k": "v"}}, headers: wire.Table{"t": wire.Table{"k": []byte("v")}}},
		{name: "array is not a table", args: wire.Table{"t": []any{}}, headers: wire.Table{"t": wire.Table{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewHeaders()
			mustBind(t, r, Binding{Destination: qa, Key: "ignored", Args: tt.args})
			for _, key := range []string{"", "ignored"} {
				if got := len(r.Route(key, tt.headers, nil)) == 1; got != tt.want {
					t.Fatalf("Route(%q, %v) matched = %v, want %v", key, tt.headers, got, tt.want)
				}
			}
		})
	}
}

func TestHeadersBindErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		xm   any
		want string
	}{
		{name: "unknown value", xm: "foo", want: `PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x`},
		{name: "case matters", xm: "ALL", want: `PRECONDITION_FAILED - Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x`},
		{name: "empty", xm: "", want: `PRECONDITION_FAILED - Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x`},
		{name: "unicode", xm: "tôut", want: `PRECONDITION_FAILED - Invalid x-match field value <<"tôut"/utf8>>; expected all, any, all-with-x, or any-with-x`},
		{name: "not printable", xm: "\x00\x01", want: `PRECONDITION_FAILED - Invalid x-match field value <<0,1>>; expected all, any, all-with-x, or any-with-x`},
		{name: "long", xm: int64(1), want: `PRECONDITION_FAILED - Invalid x-match field type long (value 1); expected longstr`},
		{name: "byte array", xm: []byte("all"), want: `PRECONDITION_FAILED - Invalid x-match field type binary (value <<"all">>); expected longstr`},
		{name: "bool", xm: true, want: `PRECONDITION_FAILED - Invalid x-match field type bool (value true); expected longstr`},
		{name: "void", xm: nil, want: `PRECONDITION_FAILED - Invalid x-match field type void (value undefined); expected longstr`},
		{name: "double", xm: 1.5, want: `PRECONDITION_FAILED - Invalid x-match field type double (value 1.5); expected longstr`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewHeaders()
			added, err := r.Bind(Binding{Destination: qa, Args: wire.Table{"x-match": tt.xm}})
			if added {
				t.Fatal("invalid binding added")
			}
			wantWireError(t, err, wire.PreconditionFailed, tt.want)
			if r.Len() != 0 {
				t.Fatal("invalid binding kept")
			}
		})
	}
}

func TestHeadersDestinations(t *testing.T) {
	t.Parallel()
	r := NewHeaders()
	for _, b := range []Binding{
		{Destination: qa, Args: wire.Table{"k": "1"}},
		{Destination: qa, Args: wire.Table{"x-match": "any", "k": "1", "j": "2"}},
		{Destination: qb, Args: wire.Table{"j": "2"}},
		{Destination: qc, Args: wire.Table{"k": "2"}},
	} {
		mustBind(t, r, b)
	}
	got := r.Route("", wire.Table{"k": "1", "j": "2"}, nil)
	noDups(t, got)
	if n := names(got); !equalStrings(n, []string{"a", "b"}) {
		t.Fatalf("routed to %q", n)
	}
	r.Unbind(Binding{Destination: qa, Args: wire.Table{"k": "1"}})
	if n := route(r, "", wire.Table{"k": "1"}); !equalStrings(n, []string{"a"}) {
		t.Fatalf("after unbind routed to %q", n)
	}
	r.RemoveDestination(qa)
	if n := route(r, "", wire.Table{"k": "1", "j": "2"}); !equalStrings(n, []string{"b"}) {
		t.Fatalf("after removal routed to %q", n)
	}
}

// TestHeadersManyMatches makes the dedup go through its set.
func TestHeadersManyMatches(t *testing.T) {
	t.Parallel()
	r := NewHeaders()
	for i := range 200 {
		d := []*testDest{qa, qb, qc, qd}[i%4]
		mustBind(t, r, Binding{Destination: d, Args: wire.Table{"x-id": int32(i)}})
	}
	for range 2 {
		got := r.Route("", nil, nil)
		noDups(t, got)
		if len(got) != 4 {
			t.Fatalf("routed to %q", names(got))
		}
	}
}

// TestHeadersManyKeys goes past the stack table of interned keys, and
// checks that keys are recycled.
func TestHeadersManyKeys(t *testing.T) {
	t.Parallel()
	r := NewHeaders()
	for round := range 3 {
		for i := range 40 {
			k := "k" + strconv.Itoa(round*100+i)
			mustBind(t, r, Binding{Destination: []*testDest{qa, qb}[i%2], Args: wire.Table{k: int32(i)}})
		}
		h := wire.Table{"k" + strconv.Itoa(round*100+3): int64(3), "k" + strconv.Itoa(round*100+4): int8(4)}
		for range 2 {
			if n := route(r, "", h); !equalStrings(n, []string{"a", "b"}) {
				t.Fatalf("round %d: routed to %q", round, n)
			}
		}
		r.RemoveDestination(qa)
		r.RemoveDestination(qb)
		if len(r.keyIdx) != 0 || len(r.keyNames) > 40 {
			t.Fatalf("round %d: %d keys interned, %d slots", round, len(r.keyIdx), len(r.keyNames))
		}
	}
}

// refErlang reduces a field value to a string that is equal for two values
// exactly when RabbitMQ 4's headers exchange finds them equal (=:= on the
// Erlang terms it compares); header says which side the value is on.
func refErlang(v any, header bool) string {
	switch v := v.(type) {
	case int8:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case uint8:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case int16:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case uint16:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case int32:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case uint32:
		return "int:" + strconv.FormatInt(int64(v), 10)
	case int64:
		return "int:" + strconv.FormatInt(v, 10)
	case time.Time:
		if header {
			return "int:" + strconv.FormatInt(v.Unix()*1000, 10)
		}
		return "int:" + strconv.FormatInt(v.Unix(), 10)
	case float32:
		return "float:" + strconv.FormatFloat(float64(v), 'g', -1, 64)
	case float64:
		return "float:" + strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return "bin:" + v
	case []byte:
		return "bin:" + string(v)
	case bool:
		return "bool:" + strconv.FormatBool(v)
	case nil:
		return "undefined"
	}
	return "typed:" + CanonicalArgs(wire.Table{"": v})
}

// refHeadersMatch is RabbitMQ 4's headers matching written out plainly.
func refHeadersMatch(args, headers wire.Table) bool {
	mode, _ := args["x-match"].(string)
	isAny, withX := mode == "any" || mode == "any-with-x", strings.HasSuffix(mode, "-with-x")
	for k, want := range args {
		if k == "x-match" || (!withX && strings.HasPrefix(k, "x-")) {
			continue
		}
		got, present := headers[k]
		ok := present && (want == nil || refErlang(want, false) == refErlang(got, true))
		if isAny && ok {
			return true
		}
		if !isAny && !ok {
			return false
		}
	}
	return !isAny
}

func TestHeadersProperty(t *testing.T) {
	t.Parallel()
	ts := time.Unix(2, 0)
	values := []any{
		nil, int8(2), uint8(2), int16(-2), int32(2), int64(2000), uint32(2), ts,
		float32(2), float64(2), float32(0.1), float64(0.1),
		"2", []byte("2"), "", true, false,
		wire.Decimal{Scale: 1, Value: 20}, []any{int32(2)}, []any{int64(2)}, wire.Table{"k": "2"},
	}
	keys := []string{"a", "b", "x-a", "x-b"}
	modes := []any{"all", "any", "all-with-x", "any-with-x", nil}
	table := func(withMode bool) *rapid.Generator[wire.Table] {
		return rapid.Custom(func(t *rapid.T) wire.Table {
			tb := wire.Table{}
			for _, k := range keys {
				if rapid.Bool().Draw(t, "has "+k) {
					tb[k] = rapid.SampledFrom(values).Draw(t, k)
				}
			}
			if withMode {
				if m := rapid.SampledFrom(modes).Draw(t, "x-match"); m != nil {
					tb["x-match"] = m
				}
			}
			return tb
		})
	}
	rapid.Check(t, func(t *rapid.T) {
		r := NewHeaders()
		bindings := rapid.SliceOfN(table(true), 1, 6).Draw(t, "bindings")
		dests := make([]*testDest, len(bindings))
		for i, args := range bindings {
			dests[i] = &testDest{strconv.Itoa(i)}
			if _, err := r.Bind(Binding{Destination: dests[i], Args: args}); err != nil {
				t.Fatalf("Bind(%v): %v", args, err)
			}
		}
		for range 5 {
			h := table(false).Draw(t, "headers")
			got := map[string]bool{}
			for _, d := range r.Route("", h, nil) {
				got[d.Name()] = true
			}
			for i, args := range bindings {
				if want := refHeadersMatch(args, h); got[dests[i].name] != want {
					t.Fatalf("binding %v, headers %v: matched %v, want %v", args, h, got[dests[i].name], want)
				}
			}
		}
	})
}
