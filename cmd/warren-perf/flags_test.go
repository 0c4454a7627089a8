package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseArgsPerfTestCommandLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args string
		want func(o *Options)
	}{
		{name: "defaults", args: "", want: func(o *Options) {}},
		{
			name: "1p1c autoack",
			args: "-x 1 -y 1 -u q -s 16 -a -z 10",
			want: func(o *Options) { o.Queue, o.AutoAck, o.TimeLimit = "q", true, 10 },
		},
		{
			name: "uri, confirms, persistent and mandatory",
			args: "-h amqp://u:p@127.0.0.1:5692/%2f -c 100 -f persistent -f mandatory -q 100 -s 1024",
			want: func(o *Options) {
				o.URI, o.Confirm, o.Prefetch, o.Size = "amqp://u:p@127.0.0.1:5692/%2f", 100, 100, 1024
				o.Flags = []string{"persistent", "mandatory"}
			},
		},
		{
			name: "quorum queue args",
			args: "-u qq -qa x-queue-type=quorum,x-max-length=1000,x-single-active-consumer=true",
			want: func(o *Options) {
				o.Queue = "qq"
				o.QueueArgs = map[string]any{"x-queue-type": "quorum", "x-max-length": int64(1000), "x-single-active-consumer": true}
			},
		},
		{
			name: "queue pattern, long names, equals form",
			args: "--queue-pattern perf-test-%d --queue-pattern-from 1 --queue-pattern-to=10 --producers 10 --consumers=10",
			want: func(o *Options) {
				o.QueuePattern, o.QueuePatternFrom, o.QueuePatternTo = "perf-test-%d", 1, 10
				o.Producers, o.Consumers = 10, 10
			},
		},
		{
			name: "short pattern names, rate, counts",
			args: "-qp q-%d -qpf 0 -qpt 3 -r 10.5 -C 1000 -D 2000",
			want: func(o *Options) {
				o.QueuePattern, o.QueuePatternFrom, o.QueuePatternTo = "q-%d", 0, 3
				o.Rate, o.PMessages, o.CMessages = 10.5, 1000, 2000
			},
		},
		{
			name: "exchange, type, key, polling, multi-ack",
			args: "-e ex -t topic -k a.b.c --polling --polling-interval 5 -A 50 -i 2 -d mytest --json",
			want: func(o *Options) {
				o.Exchange, o.ExchangeType, o.RoutingKey = "ex", "topic", "a.b.c"
				o.Polling, o.PollingInterval, o.MultiAckEvery = true, 5, 50
				o.Interval, o.ID, o.JSON = 2, "mytest", true
			},
		},
		{
			name: "short polling and -m multi-ack",
			args: "-po -pi 1 -m 10",
			want: func(o *Options) { o.Polling, o.PollingInterval, o.MultiAckEvery = true, 1, 10 },
		},
		{
			name: "auto-delete with a value",
			args: "-ad false -x 2",
			want: func(o *Options) { o.AutoDelete, o.Producers = false, 2 },
		},
		{
			name: "auto-delete without a value",
			args: "-ad -x 2",
			want: func(o *Options) { o.AutoDelete, o.Producers = true, 2 },
		},
		{
			name: "warren-perf extensions",
			args: "--bind-extra 1000 --consume-after-publish --drain-timeout 10 --cpuprofile /tmp/p",
			want: func(o *Options) {
				o.BindExtra, o.ConsumeAfterPublish, o.DrainTimeout, o.CPUProfile = 1000, true, 10, "/tmp/p"
			},
		},
		{
			name: "empty exchange means the default exchange",
			args: "-e '' -u q",
			want: func(o *Options) { o.Exchange, o.Queue = "", "q" },
		},
		{name: "help", args: "--help", want: func(o *Options) { o.Help = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseArgs(splitArgs(tt.args))
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			want := defaultOptions()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseArgs(%q)\n got %+v\nwant %+v", tt.args, got, want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, args, wantErr string
	}{
		{name: "unknown", args: "-zz 1", wantErr: "unknown option"},
		{name: "missing value", args: "-x", wantErr: "needs a value"},
		{name: "bad int", args: "-x many", wantErr: "invalid syntax"},
		{name: "bad flag", args: "-f sticky", wantErr: "unknown message flag"},
		{name: "bad queue arg", args: "-qa x-max-length", wantErr: "not key=value"},
		{name: "stray word", args: "-x 1 extra", wantErr: "unexpected argument"},
		{name: "queue and pattern", args: "-u q --queue-pattern q-%d", wantErr: "exclusive"},
		{name: "pattern range", args: "-qp q-%d -qpf 5 -qpt 1", wantErr: "at least"},
		{name: "multi-ack beyond prefetch", args: "-q 10 -A 20", wantErr: "would stall"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseArgs(splitArgs(tt.args))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseArgs(%q) error = %v, want it to contain %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestQueueNames(t *testing.T) {
	t.Parallel()
	o, err := parseArgs(splitArgs("--queue-pattern perf-test-%d --queue-pattern-from 1 --queue-pattern-to 3"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.queueNames(), []string{"perf-test-1", "perf-test-2", "perf-test-3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("queueNames = %v, want %v", got, want)
	}
}

// splitArgs splits on spaces; ” stands for an empty argument.
func splitArgs(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if f == "''" {
			f = ""
		}
		out = append(out, f)
	}
	return out
}
