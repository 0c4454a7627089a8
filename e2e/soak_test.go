package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

var perfBin lazyBinary

// Bounds of the steady-load soak: a load that overloads nothing, whose
// messages are consumed within milliseconds, must cost neither lasting
// memory nor disk.
const (
	// soakMaxRSS bounds the broker's resident set (heap plus mapped files)
	// at any moment of the soak. Measured here: 68 MiB in 30 s (50-95 MiB
	// over 2 minutes of bench/soak.sh); with Badger's mapped value log
	// holding the bodies, 176 MiB in 30 s and rising.
	soakMaxRSS = 128 << 20
	// soakMaxDisk bounds the data directory's disk use: two body segments
	// (the one being written and one whose last bodies await their acks)
	// and Badger's memtable logs and tables. Measured: 39 MiB in 30 s; with
	// Badger's value log, 115 MiB in 30 s, growing by the whole traffic
	// between two GC passes.
	soakMaxDisk = 96 << 20
)

// A steady persistent load (50 producers at 100 msg/s each, 2 KiB with
// confirms, 50 queues with a consumer each) keeps the broker's memory and
// disk flat, and loses nothing. SOAK_SECONDS makes it longer (make soak
// runs the long version with figures every 5 s).
func TestSteadyLoadStaysFlat(t *testing.T) {
	seconds := 30
	if s, err := strconv.Atoi(os.Getenv("SOAK_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	b := startBinary(t, fastBroker(t), t.TempDir(), "127.0.0.1:0")
	perf := exec.Command(perfBin.get(t, "warren-perf", "./cmd/warren-perf"), "-h", strings.TrimSuffix(b.URL(), "/"),
		"-x", "50", "-y", "50", "-qp", "soak-%d", "-qpf", "1", "-qpt", "50",
		"-s", "2048", "-f", "persistent", "-c", "100", "-r", "100", "-q", "100",
		"-z", strconv.Itoa(seconds), "--json")
	var out, errOut strings.Builder
	perf.Stdout, perf.Stderr = &out, &errOut
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- perf.Wait() }()

	var maxRSS, maxDisk int64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Duration(seconds)*time.Second + 2*time.Minute)
	var perfErr error
sampling:
	for {
		select {
		case perfErr = <-done:
			break sampling
		case <-deadline:
			_ = perf.Process.Kill()
			t.Fatalf("warren-perf did not finish; stderr:\n%s", errOut.String())
		case <-tick.C:
			anon, file := memSample(b.Pid())
			maxRSS = max(maxRSS, (anon+file)<<10)
			maxDisk = max(maxDisk, dirSize(t, b.DataDir))
		}
	}
	if perfErr != nil {
		t.Fatalf("warren-perf: %v\n%s", perfErr, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum struct {
		Sent, Confirmed, Received, Lost, Duplicated, Unconfirmed uint64
		LatencyUs                                                struct{ P99 int64 } `json:"latency_us"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("warren-perf's summary: %v\n%s", err, out.String())
	}
	t.Logf("%d s: sent %d, received %d, p99 %d µs; peak RSS %d MiB, peak data directory %d MiB",
		seconds, sum.Sent, sum.Received, sum.LatencyUs.P99, maxRSS>>20, maxDisk>>20)
	if sum.Sent < uint64(seconds)*50*100*8/10 || sum.Lost != 0 || sum.Duplicated != 0 || sum.Unconfirmed != 0 || sum.Received != sum.Confirmed {
		t.Errorf("load: %+v", sum)
	}
	if maxRSS > soakMaxRSS {
		t.Errorf("peak RSS %d MiB, bound %d MiB", maxRSS>>20, soakMaxRSS>>20)
	}
	if maxDisk > soakMaxDisk {
		t.Errorf("peak data directory %d MiB, bound %d MiB", maxDisk>>20, soakMaxDisk>>20)
	}
}
