// Package pattern is the regular expressions RabbitMQ matches names with:
// permissions and topic permissions, policies, and the management API's
// name filter. RabbitMQ compiles them with Erlang's re, which is PCRE, so
// they may use what Go's RE2 syntax lacks, lookahead above all (policies
// written "^(?!amq\.).*" are common). A pattern matches anywhere in a name
// unless it anchors itself, as re:run does.
//
// A pattern RE2 can parse runs on Go's regexp, in time linear in the name
// whatever the pattern; only the others (lookaround, back references) run
// on a backtracking engine, github.com/dlclark/regexp2 in its
// RE2-compatible mode, with a time limit per match.
package pattern

import (
	"regexp"
	"time"

	"github.com/dlclark/regexp2/v2"
)

// matchTimeout bounds one backtracking match: a pattern that backtracks
// without end (an operator's mistake) must not hold a connection's reader.
const matchTimeout = 100 * time.Millisecond

// Pattern is a compiled pattern. It is safe for concurrent use.
type Pattern struct {
	re  *regexp.Regexp  // when RE2 parses it
	re2 *regexp2.Regexp // otherwise
}

// Compile compiles expr.
func Compile(expr string) (*Pattern, error) {
	if re, err := regexp.Compile(expr); err == nil {
		return &Pattern{re: re}, nil
	}
	re2, err := regexp2.Compile(expr, regexp2.RE2)
	if err != nil {
		return nil, err
	}
	re2.MatchTimeout = matchTimeout
	return &Pattern{re2: re2}, nil
}

// Match reports whether the pattern matches somewhere in s. A backtracking
// match that runs past the time limit does not match.
func (p *Pattern) Match(s string) bool {
	if p.re != nil {
		return p.re.MatchString(s)
	}
	ok, err := p.re2.MatchString(s)
	return err == nil && ok
}
