package exchange

import (
	"errors"
	"slices"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

// testDest is a destination for tests; compare by pointer.
type testDest struct{ name string }

func (d *testDest) Name() string { return d.name }

var (
	qa = &testDest{"a"}
	qb = &testDest{"b"}
	qc = &testDest{"c"}
	qd = &testDest{"d"}
)

// names returns the sorted names of ds.
func names(ds []Destination) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name()
	}
	slices.Sort(out)
	return out
}

func mustBind(t testing.TB, r Router, b Binding) {
	t.Helper()
	if _, err := r.Bind(b); err != nil {
		t.Fatalf("Bind(%q): %v", b.Key, err)
	}
}

func route(r Router, key string, headers wire.Table) []string {
	return names(r.Route(key, headers, nil))
}

// wantWireError checks that err is a *wire.Error with code and text.
func wantWireError(t *testing.T, err error, code uint16, text string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T), want *wire.Error", err, err)
	}
	if we.Code != code || we.Text != text {
		t.Fatalf("error %d %q, want %d %q", we.Code, we.Text, code, text)
	}
}

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func noDups(t fataler, ds []Destination) {
	t.Helper()
	seen := map[Destination]bool{}
	for _, d := range ds {
		if seen[d] {
			t.Fatalf("destination %s appears twice in %v", d.Name(), names(ds))
		}
		seen[d] = true
	}
}
