package main

import (
	"fmt"
	"testing"
	"time"
)

func TestRunAgainstFakeBroker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cmdline       string
		wantReceived  uint64
		wantReturned  uint64
		wantChecked   bool
		wantUnchecked uint64
	}{
		{name: "1p1c autoack", cmdline: "-x 1 -y 1 -u q -s 16 -a -C 5000", wantReceived: 5000, wantChecked: true},
		{name: "confirms and manual ack", cmdline: "-x 2 -y 2 -u q -s 100 -c 10 -q 10 -C 3000", wantReceived: 6000, wantChecked: true},
		{name: "multi-ack", cmdline: "-x 1 -y 1 -u q -A 10 -C 1005", wantReceived: 1005, wantChecked: true},
		{name: "fanout to server-named queues", cmdline: "-x 1 -y 3 -e fx -t fanout -a -C 1000", wantReceived: 3000, wantChecked: true},
		{name: "queue pattern", cmdline: "-x 4 -y 2 --queue-pattern p-%d -qpf 1 -qpt 2 -a -C 500", wantReceived: 2000, wantChecked: true},
		{name: "bodies over frame_max", cmdline: "-x 1 -y 1 -u q -s 300000 -c 5 -C 40", wantReceived: 40, wantChecked: true},
		{name: "polling", cmdline: "-x 1 -y 1 -u q --polling -C 300", wantReceived: 300, wantChecked: true},
		{name: "consume after publish", cmdline: "-x 1 -y 1 -u q -c 100 -a -C 2000 --consume-after-publish", wantReceived: 2000, wantChecked: true},
		{name: "bodies too small for ids", cmdline: "-x 1 -y 1 -u q -s 4 -a -C 100", wantReceived: 100, wantChecked: true, wantUnchecked: 100},
		{name: "mandatory, unroutable", cmdline: "-x 1 -y 0 -e ex -k nowhere -f mandatory -c 10 -C 100", wantReturned: 100},
		{name: "consumer message count", cmdline: "-x 1 -y 1 -u q -a -C 100 -D 100", wantReceived: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startFakeBroker(t)
			s := runAgainst(t, b, tt.cmdline+" --drain-timeout 2")
			if s.Error != "" {
				t.Fatalf("error: %s", s.Error)
			}
			if s.Received != tt.wantReceived || s.Returned != tt.wantReturned || s.Checked != tt.wantChecked || s.Unchecked != tt.wantUnchecked {
				t.Errorf("received %d returned %d checked %v unchecked %d, want %d %d %v %d",
					s.Received, s.Returned, s.Checked, s.Unchecked, tt.wantReceived, tt.wantReturned, tt.wantChecked, tt.wantUnchecked)
			}
			if !s.Drained {
				t.Error("drain did not see every expected message")
			}
			if s.Lost+s.Duplicated+s.OutOfOrder+s.Unconfirmed != 0 {
				t.Errorf("integrity %+v, want all zero", s.integrity)
			}
			if got := exitCode(s); got != exitOK {
				t.Errorf("exit code %d, want %d", got, exitOK)
			}
		})
	}
}

// TestRunDetectsFaults makes the fake broker lose, duplicate and reorder a
// message and checks that warren-perf reports it and fails.
func TestRunDetectsFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cmdline string
		action  faultAction
		want    integrity
	}{
		{name: "lost", cmdline: "-x 1 -y 1 -u q -a -C 1000", action: faultDrop, want: integrity{Checked: true, Lost: 1}},
		{name: "lost with confirms", cmdline: "-x 1 -y 2 -u q -c 50 -q 20 -C 1000", action: faultDrop, want: integrity{Checked: true, Lost: 1}},
		{name: "duplicated", cmdline: "-x 1 -y 1 -u q -a -C 1000", action: faultDuplicate, want: integrity{Checked: true, Duplicated: 1}},
		{name: "duplicated across consumers", cmdline: "-x 1 -y 2 -u q -a -C 1000", action: faultDuplicate, want: integrity{Checked: true, Duplicated: 1}},
		{name: "out of order", cmdline: "-x 1 -y 1 -u q -a -C 1000", action: faultHold, want: integrity{Checked: true, OutOfOrder: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startFakeBroker(t)
			b.fault = func(n int) faultAction {
				if n == 500 {
					return tt.action
				}
				return faultNone
			}
			s := runAgainst(t, b, tt.cmdline+" --drain-timeout 0.5")
			if s.Error != "" {
				t.Fatalf("error: %s", s.Error)
			}
			if s.integrity != tt.want {
				t.Errorf("integrity %+v, want %+v", s.integrity, tt.want)
			}
			if got := exitCode(s); got != exitIntegrity {
				t.Errorf("exit code %d, want %d", got, exitIntegrity)
			}
		})
	}
}

// TestProducerWaitsForSlowConfirms: a broker that confirms nothing for
// longer than --drain-timeout (RabbitMQ paging a backlog to disk did this
// for over 5 s) must not end a producer's run before -C messages.
func TestProducerWaitsForSlowConfirms(t *testing.T) {
	t.Parallel()
	b := startFakeBroker(t)
	b.confirmGate = make(chan struct{})
	release := time.AfterFunc(500*time.Millisecond, func() { close(b.confirmGate) })
	defer release.Stop()
	s := runAgainst(t, b, "-x 1 -y 1 -u q -a -c 10 -C 100 --drain-timeout 0.1")
	if s.Error != "" {
		t.Fatalf("error: %s", s.Error)
	}
	if s.Sent != 100 || s.Confirmed != 100 || s.Received != 100 || s.Lost != 0 {
		t.Errorf("sent %d confirmed %d received %d lost %d, want 100 100 100 0", s.Sent, s.Confirmed, s.Received, s.Lost)
	}
}

func TestRunReportsBrokerError(t *testing.T) {
	t.Parallel()
	b := startFakeBroker(t)
	o, err := parseArgs([]string{"-h", "amqp://guest:guest@127.0.0.1:1/", "-x", "1", "-y", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(&o, nil, nil); err == nil {
		t.Error("run against a closed port: no error")
	}
	_ = b
}

// BenchmarkLoopback measures warren-perf's own cost: one producer and one
// consumer through the in-process fake broker, which does little work.
func BenchmarkLoopback(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			fb := startFakeBroker(b)
			o, err := parseArgs([]string{"-h", fb.uri(), "-x", "1", "-y", "1", "-u", "q", "-a", "-s", fmt.Sprint(size), "-C", fmt.Sprint(max(b.N, 1))})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			s, err := run(&o, discard{}, nil)
			b.StopTimer()
			if err != nil || s.Error != "" || s.Lost != 0 {
				b.Fatalf("run: %v %s lost %d", err, s.Error, s.Lost)
			}
			b.ReportMetric(s.RecvRate, "msgs/s")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
