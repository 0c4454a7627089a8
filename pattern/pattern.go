// Package pattern is the regular expressions RabbitMQ matches names with:
// permissions and topic permissions, policies, and the management API's
// name filter. RabbitMQ compiles them with Erlang's re, which is PCRE, so
// they may use what Go's RE2 syntax lacks, lookahead above all (policies
// written "^(?!amq\.).*" are common). A pattern matches anywhere in a name
// unless it anchors itself, as re:run does.
package pattern

import (
	"time"

	"github.com/dlclark/regexp2/v2"
)

// matchTimeout bounds one match: a pattern that backtracks without end
// (an operator's mistake) must not hold a connection's reader.
const matchTimeout = 100 * time.Millisecond

// Pattern is a compiled pattern. It is safe for concurrent use.
type Pattern struct {
	re *regexp2.Regexp
}

// Compile compiles expr in Perl's syntax.
func Compile(expr string) (*Pattern, error) {
	re, err := regexp2.Compile(expr)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = matchTimeout
	return &Pattern{re: re}, nil
}

// Match reports whether the pattern matches somewhere in s. A match that
// runs past the time limit does not match.
func (p *Pattern) Match(s string) bool {
	ok, err := p.re.MatchString(s)
	return err == nil && ok
}
