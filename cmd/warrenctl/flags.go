package main

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the global settings.
const (
	defaultURL      = "http://127.0.0.1:15672"
	defaultUsername = "guest"
	defaultPassword = "guest"
	defaultVHost    = "/"
	defaultTimeout  = 60 * time.Second
)

// Environment variables read for the connection settings.
const (
	envURL      = "WARREN_MGMT_URL"
	envUsername = "WARREN_MGMT_USERNAME"
	envPassword = "WARREN_MGMT_PASSWORD"
)

// options are the settings of one invocation: the global flags and every
// command's own flags (each command accepts only those it lists).
type options struct {
	url       string
	username  string
	password  string
	vhost     string
	formatter string
	quiet     bool
	silent    bool
	noHeaders bool
	timeout   time.Duration
	help      bool
	node      string   // rabbitmqctl's -n; refused when given
	base      *url.URL // the parsed url without credentials, set by resolve

	// Command flags.
	ifEmpty          bool
	ifUnused         bool
	priority         int
	applyTo          string
	description      string
	tags             string
	defaultQueueType string
	global           bool
	limit            int

	set map[string]bool // long names of the flags given
}

// json reports whether output is JSON.
func (o *options) json() bool { return o.formatter == "json" }

// informative reports whether informational lines are printed.
func (o *options) informative() bool { return !o.quiet && !o.silent && !o.json() }

// headers reports whether list output has a header row.
func (o *options) headers() bool { return !o.noHeaders && !o.silent }

// flagKind is how a flag's value is read.
type flagKind int

const (
	flagBool flagKind = iota + 1
	flagString
	flagInt
	flagSeconds
)

// flagSpec is one flag: its long name (without dashes), optional
// one-letter short name, kind, whether every command accepts it, and the
// option it sets.
type flagSpec struct {
	long   string
	short  string
	kind   flagKind
	global bool
	arg    string // placeholder in usage
	help   string
	target func(o *options) any
}

// flagSpecs are all of warrenctl's flags.
var flagSpecs = []flagSpec{
	{"url", "", flagString, true, "URL", "management API base URL (env " + envURL + ", default " + defaultURL + ")", func(o *options) any { return &o.url }},
	{"username", "", flagString, true, "NAME", "API user (env " + envUsername + ", default guest)", func(o *options) any { return &o.username }},
	{"password", "", flagString, true, "SECRET", "API password (env " + envPassword + ", default guest)", func(o *options) any { return &o.password }},
	{"vhost", "p", flagString, true, "VHOST", "virtual host (default /)", func(o *options) any { return &o.vhost }},
	{"formatter", "", flagString, true, "table|json", "output format (default table)", func(o *options) any { return &o.formatter }},
	{"quiet", "q", flagBool, true, "", "no informational lines", func(o *options) any { return &o.quiet }},
	{"silent", "s", flagBool, true, "", "--quiet and --no-table-headers", func(o *options) any { return &o.silent }},
	{"no-table-headers", "", flagBool, true, "", "no header row in list output", func(o *options) any { return &o.noHeaders }},
	{"timeout", "t", flagSeconds, true, "SECONDS", "time allowed for the command (default 60)", func(o *options) any { return &o.timeout }},
	{"help", "h", flagBool, true, "", "show usage", func(o *options) any { return &o.help }},
	{"node", "n", flagString, true, "NODE", "refused: warrenctl reaches the node named by --url", func(o *options) any { return &o.node }},

	{"if-empty", "e", flagBool, false, "", "only if the queue is empty", func(o *options) any { return &o.ifEmpty }},
	{"if-unused", "u", flagBool, false, "", "only if the queue has no consumers", func(o *options) any { return &o.ifUnused }},
	{"priority", "", flagInt, false, "N", "policy priority (default 0)", func(o *options) any { return &o.priority }},
	{"apply-to", "", flagString, false, "KIND", "what the policy applies to (default all)", func(o *options) any { return &o.applyTo }},
	{"description", "d", flagString, false, "TEXT", "virtual host description", func(o *options) any { return &o.description }},
	{"tags", "", flagString, false, "t1,t2", "virtual host tags, comma-separated", func(o *options) any { return &o.tags }},
	{"default-queue-type", "", flagString, false, "TYPE", "virtual host default queue type", func(o *options) any { return &o.defaultQueueType }},
	{"global", "", flagBool, false, "", "every connection, not only the vhost's", func(o *options) any { return &o.global }},
	{"limit", "", flagInt, false, "N", "close at most N connections (0: all)", func(o *options) any { return &o.limit }},
}

// lookupFlag finds a flag by its name as typed: "--if-empty", "--if_empty"
// (Elixir's spelling, which rabbitmqctl accepts) or "-e".
func lookupFlag(name string) (*flagSpec, bool) {
	long, isLong := strings.CutPrefix(name, "--")
	long = strings.ReplaceAll(long, "_", "-")
	short, _ := strings.CutPrefix(name, "-")
	for i := range flagSpecs {
		f := &flagSpecs[i]
		if isLong && f.long == long || !isLong && f.short != "" && f.short == short {
			return f, true
		}
	}
	return nil, false
}

// isFlag reports whether an argument is a flag rather than a value: it
// starts with a dash and is not "-" alone (which names standard input or
// output).
func isFlag(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

// parsed is a command line taken apart.
type parsed struct {
	opts options
	cmd  *command // nil when no command was named
	name string   // the command name as typed
	args []string // positional arguments after the command name
}

// parseArgs reads a command line. Flags may come before or after the
// command name; a command's own flags are accepted only for that command.
// Settings not given as flags come from env (which returns "" for an unset
// variable), then from credentials in the URL, then from the defaults.
func parseArgs(args []string, env func(string) string) (*parsed, error) {
	p := &parsed{opts: options{set: map[string]bool{}}}
	name, found, err := findCommandName(args)
	if err != nil {
		return nil, err
	}
	if found {
		p.name = name
		p.cmd = lookupCommand(name)
		if p.cmd == nil {
			return p, usageError("command '%s' not found. Run 'warrenctl help' for the list of commands.", name)
		}
	}
	seenName := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest := args[i+1:]
			if !seenName && len(rest) > 0 {
				rest = rest[1:] // the command name
			}
			p.args = append(p.args, rest...)
			break
		}
		if !isFlag(a) {
			if !seenName {
				seenName = true // the command name itself
				continue
			}
			p.args = append(p.args, a)
			continue
		}
		typed, value, hasValue := strings.Cut(a, "=")
		f, _ := lookupFlag(typed) // findCommandName has checked that it exists
		if !f.global && (p.cmd == nil || !slices.Contains(p.cmd.flags, f.long)) {
			return p, usageError("option %s is not valid for %s", typed, commandLabel(p.name))
		}
		if f.kind != flagBool && !hasValue {
			i++
			value = args[i] // findCommandName has checked that it exists
			hasValue = true
		}
		if err := setFlag(&p.opts, f, typed, value, hasValue); err != nil {
			return p, err
		}
	}
	if err := resolve(&p.opts, env); err != nil {
		return p, err
	}
	return p, nil
}

// commandLabel names a command in messages.
func commandLabel(name string) string {
	if name == "" {
		return "warrenctl"
	}
	return name
}

// findCommandName returns the first argument that is neither a flag nor a
// flag's value, and whether there is one, checking on the way that every
// flag exists and that those taking a value have one.
func findCommandName(args []string) (string, bool, error) {
	name, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if !found && i+1 < len(args) {
				name, found = args[i+1], true
			}
			break
		}
		if !isFlag(a) {
			if !found {
				name, found = a, true
			}
			continue
		}
		typed, _, hasValue := strings.Cut(a, "=")
		f, ok := lookupFlag(typed)
		if !ok {
			return "", false, usageError("unknown option %s", typed)
		}
		if f.kind != flagBool && !hasValue {
			if i+1 >= len(args) {
				return "", false, usageError("option %s needs a value", typed)
			}
			i++
		}
	}
	return name, found, nil
}

// setFlag stores one flag's value.
func setFlag(o *options, f *flagSpec, typed, value string, hasValue bool) error {
	switch t := f.target(o).(type) {
	case *bool:
		v := true
		if hasValue {
			b, err := strconv.ParseBool(value)
			if err != nil {
				return usageError("option %s takes true or false, not %q", typed, value)
			}
			v = b
		}
		*t = v
	case *string:
		*t = value
	case *int:
		n, err := strconv.Atoi(value)
		if err != nil {
			return usageError("option %s takes an integer, not %q", typed, value)
		}
		*t = n
	case *time.Duration:
		s, err := strconv.ParseFloat(value, 64)
		if err != nil || s <= 0 || math.IsInf(s, 0) || s > math.MaxInt64/float64(time.Second) {
			return usageError("option %s takes a positive number of seconds, not %q", typed, value)
		}
		*t = time.Duration(s * float64(time.Second))
	}
	o.set[f.long] = true
	return nil
}

// resolve fills what the flags left unset from the environment, the URL's
// credentials and the defaults, and checks the values.
func resolve(o *options, env func(string) string) error {
	if o.set["node"] {
		return usageError("-n/--node is not supported: warrenctl talks to the management API named by --url (env %s)", envURL)
	}
	pick := func(flag string, current *string, envName, def string) {
		if o.set[flag] {
			return
		}
		if v := env(envName); v != "" {
			*current = v
			return
		}
		*current = def
	}
	pick("url", &o.url, envURL, defaultURL)
	base, err := parseBaseURL(o.url)
	if err != nil {
		return err
	}
	userDefault, passDefault := defaultUsername, defaultPassword
	if base.User != nil {
		userDefault = base.User.Username()
		if pw, ok := base.User.Password(); ok {
			passDefault = pw
		}
	}
	pick("username", &o.username, envUsername, userDefault)
	pick("password", &o.password, envPassword, passDefault)
	base.User = nil
	o.base = base
	if !o.set["vhost"] {
		o.vhost = defaultVHost
	}
	if !o.set["timeout"] {
		o.timeout = defaultTimeout
	}
	if !o.set["apply-to"] {
		o.applyTo = "all"
	}
	switch o.formatter {
	case "":
		o.formatter = "table"
	case "table", "json":
	default:
		return usageError("unsupported formatter %q: use table or json", o.formatter)
	}
	if o.limit < 0 {
		return usageError("--limit must not be negative")
	}
	return nil
}

// parseBaseURL checks the --url value: http or https with a host.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, usageError("invalid --url %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, usageError("invalid --url %q: want http://host:port or https://host:port", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, usageError("invalid --url %q: no query or fragment expected", s)
	}
	return u, nil
}

// String shows a flag in usage text.
func (f *flagSpec) String() string {
	s := "--" + f.long
	if f.short != "" {
		s = "-" + f.short + ", " + s
	}
	if f.arg != "" {
		s += " " + f.arg
	}
	return s
}

// describeFlags writes one line per flag in names (long names).
func describeFlags(b *strings.Builder, names []string) {
	for _, n := range names {
		f, ok := lookupFlag("--" + n)
		if !ok {
			continue
		}
		fmt.Fprintf(b, "  %-28s %s\n", f.String(), f.help)
	}
}
