package pattern

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		expr, s string
		want    bool
	}{
		{"^(?!amq\\.).*", "orders", true}, // the usual "all but amq.*" policy
		{"^(?!amq\\.).*", "amq.gen-1", false},
		{"q", "my-queue", true}, // unanchored, as re:run
		{"^q$", "my-queue", false},
		{"^$", "", true},
		{"^$", "x", false},
		{"(?<=a)b", "ab", true}, // lookbehind
		{"\\d+", "x12", true},
		{"^café$", "café", true},
		{"(?P<n>a)b", "ab", true},           // RE2's syntax keeps working
		{"^[[:alnum:]_.-]+$", "abc", true},  // POSIX classes
		{"\\d", "\u0661\u0662", false},      // \d is ASCII, as in PCRE
		{"(?=.*x)(?P<n>\\w+)", "wxy", true}, // both: lookahead with a named group
	} {
		p, err := Compile(tt.expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		if got := p.Match(tt.s); got != tt.want {
			t.Errorf("%q matching %q = %v, want %v", tt.expr, tt.s, got, tt.want)
		}
	}
	if _, err := Compile("("); err == nil {
		t.Error("an unbalanced pattern compiled")
	}
}

// A pattern that backtracks without end stops at the time limit, and does
// not match; one RE2 parses does not backtrack at all.
func TestRunawayPatternDoesNotMatch(t *testing.T) {
	t.Parallel()
	p, err := Compile("^(?=a)(a+)+$")
	if err != nil {
		t.Fatal(err)
	}
	if p.Match(strings.Repeat("a", 40) + "!") {
		t.Fatal("matched")
	}
}

func BenchmarkMatch(b *testing.B) {
	for _, expr := range []string{"^orders\\.", "^(?!amq\\.).*"} { // RE2, and backtracking
		b.Run(expr, func(b *testing.B) {
			p, err := Compile(expr)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Match("orders.incoming")
			}
		})
	}
}
