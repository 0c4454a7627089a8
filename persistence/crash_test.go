package persistence

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashDirEnv names the store directory of the child process of TestCrash;
// crashNoSyncEnv, if set, makes the child open it with Options.Sync false (a
// process crash must lose nothing reported either way).
const (
	crashDirEnv    = "WARREN_PERSISTENCE_CRASH_DIR"
	crashNoSyncEnv = "WARREN_PERSISTENCE_CRASH_NOSYNC"
)

// crashPrinter serialises the child's report lines. Lines are flushed when a
// batch is reported durable, so the parent sees every operation line that a
// report it sees can cover... or not: a lost operation line only means that
// operation goes unchecked.
type crashPrinter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *crashPrinter) printf(flush bool, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
	if flush {
		p.w.Flush()
	}
}

// crashWaiter reports durable batches for one writer goroutine.
type crashWaiter struct{ p *crashPrinter }

func (w crashWaiter) Synced(upTo Ticket, err error) {
	if err != nil {
		w.p.printf(true, "fail %d %v\n", upTo, err)
		return
	}
	w.p.printf(true, "ok %d\n", upTo)
}

// TestCrashChild is the child of TestCrash: it writes until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	o := DefaultOptions(dir)
	o.Sync = os.Getenv(crashNoSyncEnv) == ""
	s, err := Open(o)
	if err != nil {
		fmt.Printf("open failed: %v\n", err)
		os.Exit(2)
	}
	p := &crashPrinter{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	q := s.NextQueueID()
	var seq struct {
		sync.Mutex
		n uint64
	}
	for range 4 {
		go func() {
			w := crashWaiter{p}
			var last Ticket
			for i := 0; ; i++ {
				seq.Lock()
				seq.n++
				n := seq.n
				seq.Unlock()
				id := s.NextMessageID()
				s.PutMessage(id, body(id, 100+int(n%3000)))
				tk := s.PutEntry(q, n, id, []byte(strconv.FormatUint(n, 10)))
				p.printf(false, "put %d %d %d %d\n", q, n, id, tk)
				if i%5 == 4 {
					s.DeleteEntry(q, n)
					tk = s.DeleteMessage(id)
					p.printf(false, "del %d %d %d %d\n", q, n, id, tk)
				}
				if tk != last {
					s.Notify(tk, w)
					last = tk
				}
				if i%32 == 31 { // a publisher's confirm window
					done := make(doneWaiter, 1)
					s.Notify(tk, done)
					<-done
				}
			}
		}()
	}
	select {} // until SIGKILL
}

// crashOp is one operation the child reported issuing.
type crashOp struct {
	q, seq, id uint64
	put, del   Ticket // del 0: not deleted
}

// TestCrash kills a writing child process at random moments and checks that
// every operation the child was told is durable survived.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	const rounds = 4
	for round := range rounds {
		ops, maxOK := runCrashChild(t, dir, round)
		if maxOK == 0 {
			t.Fatalf("round %d: child reported nothing durable", round)
		}
		s := mustOpen(t, testOptions(t, dir))
		checked, deleted := 0, 0
		entries := map[uint64]map[uint64]string{}
		for _, op := range ops {
			if op.put > maxOK {
				continue
			}
			if entries[op.q] == nil {
				entries[op.q] = entryMap(t, s, op.q)
			}
			got, present := entries[op.q][op.seq]
			_, msgErr := s.Message(op.id, nil)
			if op.del != 0 && op.del <= maxOK {
				deleted++
				if present || msgErr == nil {
					t.Errorf("round %d: %d/%d deleted in durable batch %d but still stored", round, op.q, op.seq, op.del)
				}
				continue
			}
			if op.del != 0 {
				continue // deletion not known durable: either state is fine
			}
			checked++
			if want := fmt.Sprintf("%d:%d", op.id, op.seq); got != want {
				t.Errorf("round %d: entry %d/%d = %q, want %q (durable in batch %d, reported up to %d)",
					round, op.q, op.seq, got, want, op.put, maxOK)
			}
			if msgErr != nil {
				t.Errorf("round %d: message %d of durable entry %d/%d: %v", round, op.id, op.q, op.seq, msgErr)
			}
		}
		t.Logf("round %d (sync %v): %d ops reported, durable up to batch %d: %d entries checked present, %d checked deleted",
			round, round%2 == 0, len(ops), maxOK, checked, deleted)
		mustClose(t, s)
	}
}

// runCrashChild runs the child on dir, SIGKILLs it at a random moment after
// its first durable report, and returns what it reported.
func runCrashChild(t *testing.T, dir string, round int) ([]crashOp, Ticket) {
	t.Helper()
	env := []string{crashDirEnv + "=" + dir}
	if round%2 == 1 {
		env = append(env, crashNoSyncEnv+"=1")
	}
	var ops []crashOp
	var maxOK Ticket
	index := map[[2]uint64]int{}
	runUntilKilled(t, "TestCrashChild", env, func(line string) (bool, error) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "ok":
			tk, _ := strconv.ParseUint(f[1], 10, 64)
			maxOK = max(maxOK, Ticket(tk))
			return true, nil
		case len(f) == 5 && (f[0] == "put" || f[0] == "del"):
			var v [4]uint64
			for i := range v {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			k := [2]uint64{v[0], v[1]}
			if f[0] == "put" {
				index[k] = len(ops)
				ops = append(ops, crashOp{q: v[0], seq: v[1], id: v[2], put: Ticket(v[3])})
			} else if i, ok := index[k]; ok {
				ops[i].del = Ticket(v[3])
			}
		case len(f) > 0 && f[0] == "fail":
			return false, fmt.Errorf("child reported a failed batch: %s", line)
		}
		return false, nil
	})
	return ops, maxOK
}

// runUntilKilled runs test, a child test of this package, in a process of
// its own with env added, and passes each line of its output to line,
// which reports whether the child has told of something durable yet (and
// an error that fails the test). A random 50-1050 ms after the first such
// line it SIGKILLs the child; it returns once the child is gone and all its
// output is read. A child that fails to open its store prints a line
// starting with "open".
func runUntilKilled(t *testing.T, test string, env []string, line func(string) (bool, error)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	parsed := make(chan error, 1)
	go func() {
		var perr error
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		started := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "open") {
				perr = fmt.Errorf("child: %s", sc.Text())
				continue
			}
			ok, err := line(sc.Text())
			if err != nil && perr == nil {
				perr = err
			}
			if ok && !started {
				started = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		parsed <- perr
	}()

	select {
	case <-ready:
	case err := <-parsed:
		_ = cmd.Wait()
		t.Fatalf("child ended before reporting: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("no durable report after 60s\n%s", stderr.String())
	}
	kill := time.NewTimer(time.Duration(50+rand.IntN(1000)) * time.Millisecond)
	<-kill.C
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	err = <-parsed
	_ = cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
}
