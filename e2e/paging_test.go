package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

// Bounds the paging test holds the broker to, for a backlog of
// pagingMessages persistent 1 KiB messages (about 2 GiB of bodies).
const (
	pagingMessages = 2_000_000
	pagingBodySize = 1024
	// maxAnonRSS bounds the broker's anonymous memory (its heap): the
	// index of the backlog, the bodies kept in memory under the paging
	// budget, and the store's memtables. Badger also maps its tables and
	// memtable logs, which show as file-backed resident pages; those belong
	// to the page cache and the kernel reclaims them, so they are
	// reported, not bound. (Bodies are read from the store's segment files
	// with pread: they are in the page cache, not mapped.)
	maxAnonRSS = 1 << 30
	// maxDiskAfterDrain is how much larger than before the backlog the data
	// directory may stay once the backlog is drained and the store's GC has
	// run: a body segment being written and a memtable's worth, with margin.
	maxDiskAfterDrain = 160 << 20
)

// memSample reads a process's resident memory (KiB) from /proc.
func memSample(pid int) (anon, file int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "RssAnon:":
			anon = n
		case "RssFile:":
			file = n
		}
	}
	return anon, file
}

var recoveredRe = regexp.MustCompile(`msg="recovered definitions and messages" elapsed=(\S+)`)

// dirSize is the disk space the files under dir take (allocated blocks,
// as du counts them: Badger's preallocated sparse files count for what
// they hold).
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += info.Size()
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rawPublisher writes pre-encoded publishes on channel 1 in confirm mode.
type rawPublisher struct {
	*rawClient
	w     *bufio.Writer
	acked atomic.Uint64
	done  chan error
}

func newRawPublisher(t *testing.T, b *broker) *rawPublisher {
	c := dialRaw(t, b)
	_ = c.nc.SetDeadline(time.Time{})
	c.open()
	c.send(1, &wire.ChannelOpen{})
	c.expectMethod(1, wire.MethodChannelOpenOk)
	c.send(1, &wire.ConfirmSelect{})
	c.expectMethod(1, wire.MethodConfirmSelectOk)
	p := &rawPublisher{rawClient: c, w: bufio.NewWriterSize(c.nc, 256<<10), done: make(chan error, 1)}
	go func() {
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				p.done <- err
				return
			}
			if f.Type != wire.FrameMethod {
				continue
			}
			m, err := wire.DecodeMethod(f.Payload)
			if err != nil {
				p.done <- err
				return
			}
			switch m := m.(type) {
			case *wire.BasicAck:
				p.acked.Store(m.DeliveryTag)
			case *wire.BasicNack:
				p.done <- fmt.Errorf("nack %d", m.DeliveryTag)
				return
			case *wire.ConnectionClose:
				p.done <- fmt.Errorf("connection closed: %d %s", m.ReplyCode, m.ReplyText)
				return
			}
		}
	}()
	return p
}

// publishSeq publishes n persistent messages whose bodies start with their
// sequence number, keeping at most window unconfirmed, and waits for all
// confirms.
func (p *rawPublisher) publishSeq(t *testing.T, queue string, n, size, window int) {
	t.Helper()
	props, _ := (&wire.Properties{DeliveryMode: 2}).Append(nil)
	method, _ := wire.AppendMethodFrame(nil, 1, &wire.BasicPublish{RoutingKey: queue})
	header := wire.AppendHeaderFrame(nil, 1, wire.ClassBasic, uint64(size), props)
	body := wire.AppendBodyFrames(nil, 1, make([]byte, size), 131072)
	seqAt := len(body) - 1 - size // where the body's payload starts in its frame
	for i := 1; i <= n; i++ {
		for uint64(i)-p.acked.Load() > uint64(window) {
			if err := p.w.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-p.done:
				t.Fatal(err)
			case <-time.After(time.Millisecond):
			}
		}
		binary.BigEndian.PutUint64(body[seqAt:], uint64(i))
		p.w.Write(method)
		p.w.Write(header)
		p.w.Write(body)
	}
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Minute, func() error {
		select {
		case err := <-p.done:
			t.Fatal(err)
		default:
		}
		if a := p.acked.Load(); a < uint64(n) {
			return fmt.Errorf("%d of %d confirmed", a, n)
		}
		return nil
	})
}

// drainInOrder consumes n messages from queue and checks their sequence
// numbers run 1..n in order.
func drainInOrder(t *testing.T, b *broker, queue string, n int) {
	t.Helper()
	c := dialRaw(t, b)
	_ = c.nc.SetDeadline(time.Time{})
	c.open()
	c.send(1, &wire.ChannelOpen{})
	c.expectMethod(1, wire.MethodChannelOpenOk)
	c.send(1, &wire.BasicQos{PrefetchCount: 2000})
	c.expectMethod(1, wire.MethodBasicQosOk)
	c.send(1, &wire.BasicConsume{Queue: queue, ConsumerTag: "drain"})
	c.expectMethod(1, wire.MethodBasicConsumeOk)
	w := bufio.NewWriterSize(c.nc, 4096)
	var deliver wire.BasicDeliver
	want := uint64(1)
	for want <= uint64(n) {
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Minute))
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading message %d: %v", want, err)
		}
		switch f.Type {
		case wire.FrameMethod:
			k, args, _ := wire.ReadMethodKey(f.Payload)
			if k != wire.MethodBasicDeliver {
				t.Fatalf("got %v while draining", k)
			}
			if err := deliver.Decode(args); err != nil {
				t.Fatal(err)
			}
		case wire.FrameBody:
			if got := binary.BigEndian.Uint64(f.Payload); got != want {
				t.Fatalf("message %d arrived where %d was due", got, want)
			}
			if want%1000 == 0 || want == uint64(n) {
				ack, _ := wire.AppendMethodFrame(nil, 1, &wire.BasicAck{DeliveryTag: deliver.DeliveryTag, Multiple: true})
				w.Write(ack)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			want++
		}
	}
}

// TestPagingBacklog publishes two million persistent 1 KiB messages with no
// consumer, checks the broker's memory stays bounded while the bodies go to
// the store, restarts the broker (timing the recovery), drains them all in
// order, and checks the data directory shrinks back once the store's GC has
// run.
func TestPagingBacklog(t *testing.T) {
	b := startBinary(t, fastBroker(t), t.TempDir(), "127.0.0.1:0", "--gc-interval", "1", "--log-level", "info")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare("backlog", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, b.DataDir)

	var peakAnon, peakFile atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				anon, file := memSample(b.Pid())
				if anon > peakAnon.Load() {
					peakAnon.Store(anon)
				}
				if file > peakFile.Load() {
					peakFile.Store(file)
				}
			}
		}
	}()
	start := time.Now()
	p := newRawPublisher(t, b)
	p.publishSeq(t, "backlog", pagingMessages, pagingBodySize, 5000)
	published := time.Since(start)
	if n := queueLen(t, b, "backlog"); n != pagingMessages {
		t.Fatalf("backlog holds %d messages, want %d", n, pagingMessages)
	}
	full := dirSize(t, b.DataDir)

	// A restart recovers the whole backlog (index only: bodies stay paged).
	b.Restart()
	m := recoveredRe.FindAllStringSubmatch(b.log.String(), -1)
	if len(m) < 2 {
		t.Fatal("no recovery time in the log after the restart")
	}
	t.Logf("restart recovered %d messages in %s", pagingMessages, m[len(m)-1][1])

	start = time.Now()
	drainInOrder(t, b, "backlog", pagingMessages)
	drained := time.Since(start)
	close(stop)
	<-sampled
	t.Logf("published %d x %d B in %v (%.0f msg/s), drained in order in %v (%.0f msg/s)",
		pagingMessages, pagingBodySize, published.Round(time.Millisecond), float64(pagingMessages)/published.Seconds(),
		drained.Round(time.Millisecond), float64(pagingMessages)/drained.Seconds())
	t.Logf("peak resident memory: anonymous %d MiB (bound %d MiB), file-backed %d MiB",
		peakAnon.Load()>>10, maxAnonRSS>>20, peakFile.Load()>>10)
	if peakAnon.Load()<<10 > maxAnonRSS {
		t.Errorf("anonymous RSS peaked at %d MiB, over the %d MiB bound", peakAnon.Load()>>10, maxAnonRSS>>20)
	}

	waitFor(t, 3*time.Minute, func() error {
		if now := dirSize(t, b.DataDir); now-before > maxDiskAfterDrain {
			return fmt.Errorf("data directory %d MiB, was %d MiB before the backlog (%d MiB with it)", now>>20, before>>20, full>>20)
		}
		return nil
	})
	t.Logf("data directory: %d MiB before, %d MiB with the backlog, %d MiB after draining and GC",
		before>>20, full>>20, dirSize(t, b.DataDir)>>20)
}
