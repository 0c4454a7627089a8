package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// envOf is an environment lookup over a fixed map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestParseArgsFlagsAnywhere checks flags before and after the command name and each command's own flags.
func TestParseArgsFlagsAnywhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		cmd   string
		pos   []string
		check func(o *options) bool
	}{
		{"vhost before command", []string{"-p", "v1", "list_queues", "name"}, "list_queues", []string{"name"},
			func(o *options) bool { return o.vhost == "v1" }},
		{"vhost and quiet after command", []string{"list_queues", "-p", "v1", "name", "-q"}, "list_queues", []string{"name"},
			func(o *options) bool { return o.vhost == "v1" && o.quiet }},
		{"long flag with equals", []string{"--vhost=/x", "--formatter=json", "list_exchanges"}, "list_exchanges", nil,
			func(o *options) bool { return o.vhost == "/x" && o.json() }},
		{"policy flags", []string{"set_policy", "--priority", "5", "--apply-to", "queues", "ha", "^", "{}"}, "set_policy", []string{"ha", "^", "{}"},
			func(o *options) bool { return o.priority == 5 && o.applyTo == "queues" }},
		{"policy defaults", []string{"set_policy", "ha", "^", "{}"}, "set_policy", []string{"ha", "^", "{}"},
			func(o *options) bool { return o.priority == 0 && o.applyTo == "all" }},
		{"negative priority", []string{"set_operator_policy", "--priority=-1", "p", "^", "{}"}, "set_operator_policy", []string{"p", "^", "{}"},
			func(o *options) bool { return o.priority == -1 }},
		{"command flags before command", []string{"--if-empty", "delete_queue", "q"}, "delete_queue", []string{"q"},
			func(o *options) bool { return o.ifEmpty && !o.ifUnused }},
		{"short and underscore spellings", []string{"delete_queue", "q", "-u", "--if_empty"}, "delete_queue", []string{"q"},
			func(o *options) bool { return o.ifEmpty && o.ifUnused }},
		{"bool with value", []string{"delete_queue", "q", "--if-empty=false"}, "delete_queue", []string{"q"},
			func(o *options) bool { return !o.ifEmpty }},
		{"double dash ends flags", []string{"add_user", "--", "bob", "-secret"}, "add_user", []string{"bob", "-secret"},
			func(o *options) bool { return true }},
		{"double dash before command", []string{"-q", "--", "add_user", "bob", "-x"}, "add_user", []string{"bob", "-x"},
			func(o *options) bool { return o.quiet }},
		{"dash alone is an argument", []string{"export_definitions", "-"}, "export_definitions", []string{"-"},
			func(o *options) bool { return true }},
		{"timeout in seconds", []string{"-t", "0.25", "await_startup"}, "await_startup", nil,
			func(o *options) bool { return o.timeout == 250*time.Millisecond }},
		{"silent", []string{"list_users", "-s"}, "list_users", nil,
			func(o *options) bool { return !o.informative() && !o.headers() }},
		{"vhost tags", []string{"add_vhost", "v", "--description", "d", "--tags", "a,b", "--default-queue-type", "quorum"}, "add_vhost", []string{"v"},
			func(o *options) bool {
				return o.description == "d" && o.tags == "a,b" && o.defaultQueueType == "quorum"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parseArgs(tt.args, envOf(nil))
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if p.cmd == nil || p.cmd.name != tt.cmd {
				t.Fatalf("command = %+v, want %s", p.cmd, tt.cmd)
			}
			if !slices.Equal(p.args, tt.pos) {
				t.Errorf("args = %q, want %q", p.args, tt.pos)
			}
			if !tt.check(&p.opts) {
				t.Errorf("options not as expected: %+v", p.opts)
			}
		})
	}
}

// TestParseArgsDefaultsAndEnv checks the order flag, environment, URL credentials, default.
func TestParseArgsDefaultsAndEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		args                 []string
		env                  map[string]string
		url, user, pass, vh  string
		baseString, formater string
	}{
		{"defaults", []string{"list_queues"}, nil,
			"http://127.0.0.1:15672", "guest", "guest", "/", "http://127.0.0.1:15672", "table"},
		{"environment", []string{"list_queues"},
			map[string]string{envURL: "http://h:1", envUsername: "admin", envPassword: "s3"},
			"http://h:1", "admin", "s3", "/", "http://h:1", "table"},
		{"flags beat environment", []string{"--url", "https://a:2/prefix", "--username", "u", "--password", "p", "list_queues"},
			map[string]string{envURL: "http://h:1", envUsername: "admin", envPassword: "s3"},
			"https://a:2/prefix", "u", "p", "/", "https://a:2/prefix", "table"},
		{"credentials in the url", []string{"--url", "http://bob:pw@h:3", "list_queues"}, nil,
			"http://bob:pw@h:3", "bob", "pw", "/", "http://h:3", "table"},
		{"environment beats url credentials", []string{"--url", "http://bob:pw@h:3", "list_queues"},
			map[string]string{envUsername: "env"},
			"http://bob:pw@h:3", "env", "pw", "/", "http://h:3", "table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parseArgs(tt.args, envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			o := p.opts
			got := []string{o.url, o.username, o.password, o.vhost, o.base.String(), o.formatter}
			want := []string{tt.url, tt.user, tt.pass, tt.vh, tt.baseString, tt.formater}
			if !slices.Equal(got, want) {
				t.Errorf("url, username, password, vhost, base, formatter = %q, want %q", got, want)
			}
			if o.timeout != defaultTimeout {
				t.Errorf("timeout = %v, want %v", o.timeout, defaultTimeout)
			}
		})
	}
}

// TestParseArgsErrors checks that command line mistakes are usage errors.
func TestParseArgsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"unknown option", []string{"list_queues", "--bogus"}},
		{"unknown short option", []string{"-z", "list_queues"}},
		{"option of another command", []string{"list_queues", "--priority", "1"}},
		{"missing value", []string{"list_queues", "-p"}},
		{"bad integer", []string{"set_policy", "--priority", "high", "a", "b", "{}"}},
		{"bad bool", []string{"delete_queue", "--if-empty=maybe", "q"}},
		{"bad formatter", []string{"--formatter", "xml", "list_queues"}},
		{"node refused", []string{"-n", "rabbit@h", "list_queues"}},
		{"unknown command", []string{"list_nothing"}},
		{"empty command", []string{"", "list_queues"}},
		{"bad url scheme", []string{"--url", "amqp://h:5672", "list_queues"}},
		{"url without host", []string{"--url", "http://", "list_queues"}},
		{"bad timeout", []string{"-t", "0", "ping"}},
		{"negative limit", []string{"close_all_connections", "--limit", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseArgs(tt.args, envOf(nil))
			if got := exitCodeFor(err); got != exitUsage {
				t.Errorf("parseArgs(%q) = %v (exit %d), want exit %d", tt.args, err, got, exitUsage)
			}
		})
	}
}

// TestCheckArgs checks argument counts and column names.
func TestCheckArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd  string
		args []string
		ok   bool
	}{
		{"set_permissions", []string{"u", ".*", ".*"}, false},
		{"set_permissions", []string{"u", ".*", ".*", ".*"}, true},
		{"set_permissions", []string{"u", ".*", ".*", ".*", "x"}, false},
		{"list_users", []string{"user"}, false},
		{"list_queues", []string{"name", "messages_ready", "policy"}, true},
		{"list_queues", []string{"name", "nonsense"}, false},
		{"set_user_tags", []string{"u"}, true},
		{"set_user_tags", []string{"u", "a", "b", "c"}, true},
		{"close_all_connections", nil, true},
	}
	for _, tt := range tests {
		err := lookupCommand(tt.cmd).checkArgs(tt.args)
		if (err == nil) != tt.ok {
			t.Errorf("%s %q: err = %v, want ok = %v", tt.cmd, tt.args, err, tt.ok)
		}
		if err != nil && exitCodeFor(err) != exitUsage {
			t.Errorf("%s %q: exit %d, want %d", tt.cmd, tt.args, exitCodeFor(err), exitUsage)
		}
	}
}

// FuzzParseArgs checks that no command line makes the parser or the
// argument checks panic, and that every refusal is a usage error.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"list_queues -p / name messages",
		"--formatter=json -q list_users",
		"set_policy --priority -1 --apply-to queues p ^ {}",
		"delete_queue -e -u --if_empty=false q",
		"-- add_user bob -x",
		"-p",
		"--url http://h:1/x list_vhosts -t 0.5",
		"close_all_connections --global --limit 3 bye",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, " ")
		p, err := parseArgs(args, envOf(nil))
		if err != nil {
			if code := exitCodeFor(err); code != exitUsage {
				t.Fatalf("parseArgs(%q): exit %d for %v", args, code, err)
			}
			return
		}
		if p.cmd != nil {
			if p.cmd.name != p.name {
				t.Fatalf("command %s found for name %q", p.cmd.name, p.name)
			}
			if err := p.cmd.checkArgs(p.args); err != nil && exitCodeFor(err) != exitUsage {
				t.Fatalf("checkArgs(%q): %v", p.args, err)
			}
		}
	})
}
