package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Options are warren-perf's settings. Flag names and meanings follow RabbitMQ
// PerfTest; the ones PerfTest does not have are marked "warren-perf only".
type Options struct {
	URI              string
	Producers        int
	Consumers        int
	Queue            string
	Size             int
	Prefetch         int
	AutoAck          bool
	Confirm          int // max outstanding confirms per producer; <= 0 means confirms off
	Flags            []string
	Exchange         string
	ExchangeType     string
	RoutingKey       string
	TimeLimit        int // seconds; 0 means no limit
	Rate             float64
	PMessages        int
	CMessages        int
	QueuePattern     string
	QueuePatternFrom int
	QueuePatternTo   int
	QueueArgs        map[string]any
	Polling          bool
	PollingInterval  int // milliseconds
	MultiAckEvery    int
	AutoDelete       bool
	ID               string
	Interval         float64 // seconds
	JSON             bool

	BindExtra           int     // warren-perf only
	ConsumeAfterPublish bool    // warren-perf only
	DrainTimeout        float64 // warren-perf only, seconds without progress
	CPUProfile          string  // warren-perf only
	Help                bool
}

// Persistent reports whether -f persistent was given.
func (o *Options) Persistent() bool { return o.hasFlag("persistent") }

// Mandatory reports whether -f mandatory was given.
func (o *Options) Mandatory() bool { return o.hasFlag("mandatory") }

func (o *Options) hasFlag(f string) bool {
	for _, v := range o.Flags {
		if v == f {
			return true
		}
	}
	return false
}

// ConfirmMode reports whether producers use publisher confirms.
func (o *Options) ConfirmMode() bool { return o.Confirm > 0 }

func defaultOptions() Options {
	return Options{
		URI:          "amqp://guest:guest@localhost:5672/",
		Producers:    1,
		Consumers:    1,
		Size:         16,
		Confirm:      -1,
		Exchange:     "direct",
		ExchangeType: "direct",
		Rate:         -1,
		AutoDelete:   true,
		Interval:     1,
		DrainTimeout: 5,
	}
}

type optKind int

const (
	kindBool optKind = iota + 1
	kindOptBool
	kindInt
	kindFloat
	kindString
	kindStrings
	kindArgs
)

// optSpec is one option: its names, with one dash (short, may be several
// letters as in PerfTest's -qa) and two dashes (long).
type optSpec struct {
	short, long string
	kind        optKind
	arg         string
	help        string
	target      func(o *Options) any
}

var optSpecs = []optSpec{
	{"h", "uri", kindString, "uri", "connection URI (default amqp://guest:guest@localhost:5672/)", func(o *Options) any { return &o.URI }},
	{"x", "producers", kindInt, "n", "producer count (default 1)", func(o *Options) any { return &o.Producers }},
	{"y", "consumers", kindInt, "n", "consumer count (default 1)", func(o *Options) any { return &o.Consumers }},
	{"u", "queue", kindString, "name", "queue name (default: a server-named queue per consumer)", func(o *Options) any { return &o.Queue }},
	{"s", "size", kindInt, "bytes", "message size in bytes (default 16; 16 or more gives full checking)", func(o *Options) any { return &o.Size }},
	{"q", "qos", kindInt, "n", "consumer prefetch count (default 0, unlimited)", func(o *Options) any { return &o.Prefetch }},
	{"a", "autoack", kindBool, "", "auto ack", func(o *Options) any { return &o.AutoAck }},
	{"c", "confirm", kindInt, "n", "max unconfirmed publishes per producer; enables confirms", func(o *Options) any { return &o.Confirm }},
	{"f", "flag", kindStrings, "flag", "message flag: persistent or mandatory (repeatable)", func(o *Options) any { return &o.Flags }},
	{"e", "exchange", kindString, "name", "exchange name (default direct)", func(o *Options) any { return &o.Exchange }},
	{"t", "type", kindString, "type", "exchange type (default direct)", func(o *Options) any { return &o.ExchangeType }},
	{"k", "routing-key", kindString, "key", "routing key (default: a random UUID)", func(o *Options) any { return &o.RoutingKey }},
	{"z", "time", kindInt, "s", "run duration in seconds (default unlimited)", func(o *Options) any { return &o.TimeLimit }},
	{"r", "rate", kindFloat, "msg/s", "producer rate limit per producer", func(o *Options) any { return &o.Rate }},
	{"C", "pmessages", kindInt, "n", "producer message count", func(o *Options) any { return &o.PMessages }},
	{"D", "cmessages", kindInt, "n", "consumer message count", func(o *Options) any { return &o.CMessages }},
	{"qp", "queue-pattern", kindString, "fmt", "queue name pattern, e.g. perf-test-%d", func(o *Options) any { return &o.QueuePattern }},
	{"qpf", "queue-pattern-from", kindInt, "n", "first number for the queue pattern", func(o *Options) any { return &o.QueuePatternFrom }},
	{"qpt", "queue-pattern-to", kindInt, "n", "last number for the queue pattern", func(o *Options) any { return &o.QueuePatternTo }},
	{"qa", "queue-args", kindArgs, "k=v,...", "queue arguments, e.g. x-queue-type=quorum,x-max-length=1000", func(o *Options) any { return &o.QueueArgs }},
	{"po", "polling", kindBool, "", "use basic.get instead of basic.consume", func(o *Options) any { return &o.Polling }},
	{"pi", "polling-interval", kindInt, "ms", "wait after an empty basic.get (default 0)", func(o *Options) any { return &o.PollingInterval }},
	{"A", "multi-ack-every", kindInt, "n", "ack with multiple=true every n messages", func(o *Options) any { return &o.MultiAckEvery }},
	{"m", "", kindInt, "n", "same as -A (PerfTest's -m, producer tx size, is not supported)", func(o *Options) any { return &o.MultiAckEvery }},
	{"ad", "auto-delete", kindOptBool, "[bool]", "auto-delete queues (default true)", func(o *Options) any { return &o.AutoDelete }},
	{"d", "id", kindString, "id", "test ID (default test-HHMMSS-NNN)", func(o *Options) any { return &o.ID }},
	{"i", "interval", kindFloat, "s", "report interval in seconds (default 1)", func(o *Options) any { return &o.Interval }},
	{"", "json", kindBool, "", "print the summary as JSON", func(o *Options) any { return &o.JSON }},
	{"", "bind-extra", kindInt, "n", "warren-perf only: add n non-matching bindings to the exchange", func(o *Options) any { return &o.BindExtra }},
	{"", "consume-after-publish", kindBool, "", "warren-perf only: consumers start when producers are done (backlog drain)", func(o *Options) any { return &o.ConsumeAfterPublish }},
	{"", "drain-timeout", kindFloat, "s", "warren-perf only: end the drain after this long without progress (default 5)", func(o *Options) any { return &o.DrainTimeout }},
	{"", "cpuprofile", kindString, "file", "warren-perf only: write a CPU profile", func(o *Options) any { return &o.CPUProfile }},
	{"?", "help", kindBool, "", "show usage", func(o *Options) any { return &o.Help }},
}

func lookupOpt(name string, long bool) (*optSpec, bool) {
	for i := range optSpecs {
		s := &optSpecs[i]
		if long && s.long == name || !long && s.short == name {
			return s, true
		}
	}
	return nil, false
}

// parseArgs parses a PerfTest-style command line (without the program name).
// Options have one dash and a short name of one or more letters (-x, -qa) or
// two dashes and a long name (--producers); a value follows as the next
// argument or, for long names, after '='.
func parseArgs(args []string) (Options, error) {
	o := defaultOptions()
	for i := 0; i < len(args); i++ {
		a := args[i]
		var name, value string
		var hasValue, long bool
		switch {
		case strings.HasPrefix(a, "--"):
			name, long = a[2:], true
			if k, v, ok := strings.Cut(name, "="); ok {
				name, value, hasValue = k, v, true
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name = a[1:]
		default:
			return o, fmt.Errorf("unexpected argument %q", a)
		}
		spec, ok := lookupOpt(name, long)
		if !ok {
			return o, fmt.Errorf("unknown option %q", a)
		}
		target := spec.target(&o)
		switch spec.kind {
		case kindBool:
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return o, fmt.Errorf("option %s: %w", a, err)
				}
				*target.(*bool) = b
			} else {
				*target.(*bool) = true
			}
			continue
		case kindOptBool:
			b := true
			if !hasValue && i+1 < len(args) {
				if v, err := strconv.ParseBool(args[i+1]); err == nil {
					b = v
					i++
				}
			} else if hasValue {
				v, err := strconv.ParseBool(value)
				if err != nil {
					return o, fmt.Errorf("option %s: %w", a, err)
				}
				b = v
			}
			*target.(*bool) = b
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return o, fmt.Errorf("option %s needs a value", a)
			}
			i++
			value = args[i]
		}
		if err := setValue(spec.kind, target, value); err != nil {
			return o, fmt.Errorf("option %s: %w", a, err)
		}
	}
	return o, o.validate()
}

func setValue(kind optKind, target any, value string) error {
	switch kind {
	case kindInt:
		n, err := strconv.Atoi(value)
		if err != nil {
			return err
		}
		*target.(*int) = n
	case kindFloat:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return err
		}
		*target.(*float64) = f
	case kindString:
		*target.(*string) = value
	case kindStrings:
		p := target.(*[]string)
		*p = append(*p, value)
	case kindArgs:
		args, err := parseQueueArgs(value)
		if err != nil {
			return err
		}
		p := target.(*map[string]any)
		if *p == nil {
			*p = map[string]any{}
		}
		for k, v := range args {
			(*p)[k] = v
		}
	}
	return nil
}

// parseQueueArgs parses "k=v,k=v". Integer values become int64, true and
// false become booleans, anything else stays a string.
func parseQueueArgs(s string) (map[string]any, error) {
	out := map[string]any{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("queue argument %q is not key=value", kv)
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		} else if v == "true" || v == "false" {
			out[k] = v == "true"
		} else {
			out[k] = v
		}
	}
	return out, nil
}

func (o *Options) validate() error {
	if o.Help {
		return nil
	}
	var errs []error
	if o.Producers < 0 || o.Consumers < 0 {
		errs = append(errs, errors.New("producer and consumer counts must not be negative"))
	}
	if o.Producers > math.MaxUint16+1 {
		errs = append(errs, fmt.Errorf("at most %d producers", math.MaxUint16+1))
	}
	if o.Size < 0 {
		errs = append(errs, errors.New("size must not be negative"))
	}
	for _, f := range o.Flags {
		if f != "persistent" && f != "mandatory" {
			errs = append(errs, fmt.Errorf("unknown message flag %q (persistent, mandatory)", f))
		}
	}
	if o.QueuePattern != "" {
		if o.Queue != "" {
			errs = append(errs, errors.New("-u and --queue-pattern are exclusive"))
		}
		if o.QueuePatternTo < o.QueuePatternFrom {
			errs = append(errs, errors.New("--queue-pattern-to must be at least --queue-pattern-from"))
		}
		if !strings.Contains(o.QueuePattern, "%") {
			errs = append(errs, errors.New("--queue-pattern needs a %d verb"))
		}
	}
	if o.Interval <= 0 {
		errs = append(errs, errors.New("interval must be positive"))
	}
	if o.Prefetch < 0 || o.Prefetch > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("prefetch must be in 0..%d", math.MaxUint16))
	}
	if o.TimeLimit < 0 || o.PMessages < 0 || o.CMessages < 0 || o.BindExtra < 0 || o.MultiAckEvery < 0 {
		errs = append(errs, errors.New("-z, -C, -D, -A and --bind-extra must not be negative"))
	}
	if o.MultiAckEvery > 0 && o.Prefetch > 0 && o.MultiAckEvery > o.Prefetch && !o.AutoAck {
		errs = append(errs, errors.New("-A larger than -q would stall: the broker stops at the prefetch limit before the ack is due"))
	}
	return errors.Join(errs...)
}

// queueNames returns the queues named on the command line: the -u queue,
// the --queue-pattern queues, or none (server-named queues).
func (o *Options) queueNames() []string {
	if o.QueuePattern != "" {
		var qs []string
		for i := o.QueuePatternFrom; i <= o.QueuePatternTo; i++ {
			qs = append(qs, fmt.Sprintf(o.QueuePattern, i))
		}
		return qs
	}
	if o.Queue != "" {
		return []string{o.Queue}
	}
	return nil
}

func (o *Options) interval() time.Duration {
	return time.Duration(o.Interval * float64(time.Second))
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: warren-perf [options]   (RabbitMQ PerfTest flags)")
	for _, s := range optSpecs {
		var names []string
		if s.short != "" {
			names = append(names, "-"+s.short)
		}
		if s.long != "" {
			names = append(names, "--"+s.long)
		}
		n := strings.Join(names, ",")
		if s.arg != "" {
			n += " <" + s.arg + ">"
		}
		fmt.Fprintf(w, "  %-34s %s\n", n, s.help)
	}
}
