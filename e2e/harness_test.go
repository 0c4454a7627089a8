package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// warrenBin is the broker binary built once for the whole run, with the
// race detector; other binaries are built without it on first use.
var (
	warrenBin string
	binDir    string
	fastBin   lazyBinary
	ctlBin    lazyBinary
)

// lazyBinary is a program of the repository built on first use.
type lazyBinary struct {
	once sync.Once
	path string
	err  error
}

// get builds pkg (once) into binDir as name and returns its path.
func (l *lazyBinary) get(t testing.TB, name, pkg string) string {
	t.Helper()
	l.once.Do(func() {
		l.path = filepath.Join(binDir, name)
		build := exec.Command("go", "build", "-o", l.path, pkg)
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			l.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	})
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.path
}

// fastBroker returns the path of a warren binary built without the race
// detector, for tests that push a large load through the broker.
func fastBroker(t testing.TB) string { return fastBin.get(t, "warren-fast", "./cmd/warren") }

// warrenctlBinary returns the path of the warrenctl binary.
func warrenctlBinary(t testing.TB) string { return ctlBin.get(t, "warrenctl", "./cmd/warrenctl") }

// repoRoot is the repository's top directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	warrenBin = filepath.Join(dir, "warren")
	build := exec.Command("go", "build", "-race", "-o", warrenBin, "./cmd/warren")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building warren:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// broker is a running warren process.
type broker struct {
	t    testing.TB
	bin  string
	cmd  *exec.Cmd
	Addr string // host:port of the AMQP listener
	// TLSAddr is the AMQP-over-TLS listener's host:port ("" when off).
	TLSAddr string
	// MgmtAddr and PromAddr are the management API's and the metrics'
	// host:port ("" when off).
	MgmtAddr, PromAddr string
	DataDir            string
	args               []string
	log                *logBuffer
	exited             chan struct{}
	waitErr            error
	pid                atomic.Int64 // of the current process, for samplers running across restarts
}

// Pid returns the broker process's id.
func (b *broker) Pid() int { return int(b.pid.Load()) }

// logBuffer collects the broker's log, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	startedRe  = regexp.MustCompile(`msg="Warren started" (?:listen=(\S+))?`)
	tlsAddrRe  = regexp.MustCompile(` tls_listen=(\S+)`)
	httpAddrRe = regexp.MustCompile(` http=(\S+)`)
	promAddrRe = regexp.MustCompile(` prometheus=(\S+)`)
)

// startBroker builds nothing (TestMain did), starts warren on a free
// loopback port with a temporary data directory and waits until it listens.
// Extra flags go after the defaults, so they win.
func startBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	return startBrokerIn(t, t.TempDir(), "127.0.0.1:0", extra...)
}

// startBrokerIn starts warren on listen with dataDir.
func startBrokerIn(t testing.TB, dataDir, listen string, extra ...string) *broker {
	t.Helper()
	return startBinary(t, warrenBin, dataDir, listen, extra...)
}

// startBinary starts the given warren binary.
func startBinary(t testing.TB, bin, dataDir, listen string, extra ...string) *broker {
	t.Helper()
	// The HTTP listeners take free ports too, unless the test says.
	args := append([]string{"--listen", listen, "--data-dir", dataDir, "--log-level", "debug",
		"--mgmt-listen", "127.0.0.1:0", "--prometheus-listen", "127.0.0.1:0"}, extra...)
	b := &broker{t: t, bin: bin, DataDir: dataDir, args: args, log: &logBuffer{}, exited: make(chan struct{})}
	b.start()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", b.log.String())
		}
	})
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.awaitStart(b.launch())
}

// launch starts the process; awaitStart waits until it listens (a
// clustered node listens once its cluster has formed, so the nodes of a
// cluster are launched together and awaited after).
func (b *broker) launch() chan []string {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, b.args...)
	pr, pw := io.Pipe()
	b.cmd.Stdout = b.log
	b.cmd.Stderr = pw
	b.exited = make(chan struct{})
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.pid.Store(int64(b.cmd.Process.Pid))
	addr := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			b.log.Write([]byte(line + "\n"))
			if m := startedRe.FindStringSubmatch(line); m != nil && !sent {
				addrs := []string{m[1], "", "", ""}
				if tl := tlsAddrRe.FindStringSubmatch(line); tl != nil {
					addrs[3] = tl[1]
				}
				if h := httpAddrRe.FindStringSubmatch(line); h != nil {
					addrs[1] = h[1]
				}
				if p := promAddrRe.FindStringSubmatch(line); p != nil {
					addrs[2] = p[1]
				}
				addr <- addrs
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		b.waitErr = b.cmd.Wait()
		pw.Close()
		close(b.exited)
	}()
	return addr
}

func (b *broker) awaitStart(addr chan []string) {
	b.t.Helper()
	select {
	case a := <-addr:
		b.Addr, b.MgmtAddr, b.PromAddr, b.TLSAddr = a[0], a[1], a[2], a[3]
	case <-b.exited:
		b.t.Fatalf("warren exited at start: %v\n%s", b.waitErr, b.log.String())
	case <-time.After(30 * time.Second):
		b.t.Fatalf("warren did not start within 30s\n%s", b.log.String())
	}
}

// URL returns an amqp:// URL for the broker with guest credentials.
func (b *broker) URL() string { return "amqp://guest:guest@" + b.Addr + "/" }

// Stop sends SIGTERM and waits for the process to exit.
func (b *broker) Stop() {
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
		b.t.Errorf("warren did not stop within 30s of SIGTERM")
	}
}

// Kill stops the process with SIGKILL, as a crash would.
func (b *broker) Kill() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}

// Restart stops the broker (SIGTERM) and starts it again with the same
// flags and data directory, on the same address.
func (b *broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.Start()
}

// Start starts a stopped or killed broker again with the same flags and
// data directory, on the same address.
func (b *broker) Start() {
	b.t.Helper()
	for i, a := range b.args {
		if a == "--listen" {
			b.args[i+1] = b.Addr
		}
	}
	b.start()
}

// waitFor polls cond every few milliseconds until it returns nil or the
// deadline passes, then fails the test with cond's last error.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientScript runs a client program (Python with Debian's pika, or Node
// with the repo's pinned amqplib) against the broker and returns its
// output. The script gets the broker's URL, host and port in AMQP_URL,
// AMQP_HOST and AMQP_PORT, its TLS listener's in AMQPS_HOST and
// AMQPS_PORT, and the management API's URL in MGMT_URL.
func clientScript(t testing.TB, b *broker, timeout time.Duration, script string, args ...string) string {
	t.Helper()
	var cmd *exec.Cmd
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := filepath.Join(repoRoot, "e2e", "clients", script)
	switch filepath.Ext(script) {
	case ".py":
		cmd = exec.CommandContext(ctx, "/usr/bin/python3", append([]string{path}, args...)...)
	case ".js":
		cmd = exec.CommandContext(ctx, "node", append([]string{path}, args...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(repoRoot, "node_modules"))
	default:
		t.Fatalf("no runner for %s", script)
	}
	host, port, _ := strings.Cut(b.Addr, ":")
	tlsHost, tlsPort, _ := strings.Cut(b.TLSAddr, ":")
	cmd.Env = append(append(cmd.Env, os.Environ()...), "AMQP_URL="+b.URL(), "AMQP_HOST="+host, "AMQP_PORT="+port,
		"AMQPS_HOST="+tlsHost, "AMQPS_PORT="+tlsPort, "MGMT_URL=http://"+b.MgmtAddr)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v; output:\n%s", script, timeout, out)
	}
	if err != nil {
		t.Fatalf("%s failed: %v; output:\n%s", script, err, out)
	}
	return string(out)
}

// apiClient keeps no idle connections, which the leak check at the end of
// the run would count as leaked goroutines.
var apiClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   30 * time.Second,
}

// api sends one request to the broker's management API as guest and returns
// the status and body. body, when not nil, is sent as JSON (a string or
// []byte as it is).
func (b *broker) api(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	return b.apiAs(t, "guest", "guest", method, path, body)
}

// apiAs is api with the given user's credentials.
func (b *broker) apiAs(t testing.TB, user, pass, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+b.MgmtAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, data
}
