package exchange

import (
	"math/big"
	"regexp"
	"testing"
)

// FuzzTopicMatch checks the trie against refTopicMatch for any binding key
// and routing key.
func FuzzTopicMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"#", ""}, {"*", "."}, {"a.#.b", "a.b"}, {"#.*.#", "x"},
		{"a..b", "a.*.b"}, {"*.*", "."}, {"#.#.#", "a.b.c"}, {"a.*", "a."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, key string) {
		r := NewTopic()
		mustBind(t, r, Binding{Destination: qa, Key: pattern})
		want := refTopicMatch(refWords(pattern), refWords(key))
		for pass := range 3 {
			if got := len(r.Route(key, nil, nil)) == 1; got != want {
				t.Fatalf("pass %d: %q matches %q = %v, want %v", pass, pattern, key, got, want)
			}
		}
		r.Unbind(Binding{Destination: qa, Key: pattern})
		if !r.root.unused() {
			t.Fatalf("trie not empty after unbinding %q", pattern)
		}
	})
}

var erlangInteger = regexp.MustCompile(`^[+-]?[0-9]+$`)

// FuzzParseWeight checks consistent-hash weights against Erlang's
// list_to_integer: an optional sign and decimal digits, then greater than 0.
func FuzzParseWeight(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "+5", "007", "", "abc", "1.5", " 1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		w, err := parseWeight(key)
		if !erlangInteger.MatchString(key) {
			if err == nil {
				t.Fatalf("parseWeight(%q) = %d, want an error", key, w)
			}
			return
		}
		n, _ := new(big.Int).SetString(key, 10)
		valid := n.Sign() > 0 && n.Cmp(big.NewInt(MaxWeight)) <= 0
		if valid != (err == nil) || (valid && n.Int64() != w) {
			t.Fatalf("parseWeight(%q) = %d, %v", key, w, err)
		}
	})
}
