package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// browser is a headless chromium driven through chromedp, collecting what
// the page logs as errors and warnings.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the console's URL

	mu     sync.Mutex
	errors []string
}

// startBrowser starts Debian's chromium (make deps installs it) on the
// console of b.
func startBrowser(t *testing.T, b *broker) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make deps` installs Debian's chromium for this test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	br := &browser{t: t, ctx: ctx, base: "http://" + b.MgmtAddr}
	// The first action starts the browser, which lives as long as that
	// action's context: it gets the test's, not a deadline.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				br.record(fmt.Sprintf("%s (%s %s)", m, m.Source, m.URL))
			}
		}
	}()
	return br
}

func (br *browser) record(s string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.errors = append(br.errors, s)
}

// checkLog fails the test if the page logged an error or a warning.
func (br *browser) checkLog() {
	br.t.Helper()
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.errors) > 0 {
		br.t.Fatalf("the browser logged %d errors:\n%s", len(br.errors), strings.Join(br.errors, "\n"))
	}
}

// within runs one action with a deadline.
func within[T any](br *browser, what string, a chromedp.Action[T]) T {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		br.mu.Lock()
		logged := strings.Join(br.errors, "\n")
		br.mu.Unlock()
		br.t.Fatalf("%s: %v (browser log: %s)", what, err, logged)
	}
	return v
}

// run runs actions in order with a deadline, failing the test with what
// for.
func (br *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	br.t.Helper()
	within(br, what, chromedp.Steps(actions...))
}

// eval evaluates a script, awaiting its promise, into a T.
func eval[T any](br *browser, what, script string) T {
	br.t.Helper()
	return within(br, what, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
}

// text returns the text of the first element sel matches.
//
// It reads in one script: the page's refresh replaces elements, and a
// node looked up first and read after may be gone in between.
func (br *browser) text(sel string) string {
	br.t.Helper()
	return eval[string](br, "read "+sel, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent`, sel))
}

// awaitText waits until the element sel matches holds want.
func (br *browser) awaitText(sel, want string) {
	br.t.Helper()
	br.awaitTextIs(sel, want, false)
}

// awaitExact waits until the text of the element sel matches is want.
func (br *browser) awaitExact(sel, want string) {
	br.t.Helper()
	br.awaitTextIs(sel, want, true)
}

// awaitTextIs waits until the element sel matches holds want (exact: is
// want, but for surrounding space), failing the test with what it holds
// after 20 s.
func (br *browser) awaitTextIs(sel, want string, exact bool) {
	br.t.Helper()
	got := eval[string](br, fmt.Sprintf("wait for %q in %s", want, sel), fmt.Sprintf(`new Promise((resolve) => {
		const end = Date.now() + 20000;
		const look = () => {
			const e = document.querySelector(%q);
			const text = e ? e.textContent : '';
			if (e && (%t ? text.trim() === %q : text.includes(%q))) resolve('');
			else if (Date.now() > end) resolve((e ? 'text: ' + text : 'no such element') + '; page: ' + document.body.innerText);
			else setTimeout(look, 100);
		};
		look();
	})`, sel, exact, want, want))
	if got != "" {
		br.mu.Lock()
		logged := strings.Join(br.errors, "\n")
		br.mu.Unlock()
		br.t.Fatalf("waited 20 s for %q in %s; %.2000s\nbrowser log: %s", want, sel, got, logged)
	}
}

// hold stops the page's 5 s refresh (the console skips it while the
// document is hidden) and waits for one under way to end, so that the
// page holds still; release lets it go on.
func (br *browser) hold() {
	br.t.Helper()
	eval[bool](br, "hold the page still", `new Promise((resolve) => {
		Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
		const still = () => { if (!document.documentElement.dataset.refreshing) resolve(true); else setTimeout(still, 50); };
		still();
	})`)
}

func (br *browser) release() {
	br.t.Helper()
	eval[bool](br, "let the page refresh", `delete document.hidden; true`)
}

// click clicks the first element sel matches.
func (br *browser) click(sel string) {
	br.t.Helper()
	br.run("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// clickText clicks the button whose text is text.
func (br *browser) clickText(text string) {
	br.t.Helper()
	br.run("click "+text, chromedp.Click(chromedp.Search(`//button[text()="`+text+`"]`), chromedp.NodeVisible))
}

// typeIn types v into the field sel matches.
func (br *browser) typeIn(sel, v string) {
	br.t.Helper()
	br.run("type in "+sel, chromedp.SendKeys(chromedp.CSS(sel), v, chromedp.NodeVisible))
}

// open shows a console page and waits for its heading.
func (br *browser) open(hash, heading string) {
	br.t.Helper()
	br.run("open "+hash, chromedp.Navigate(br.base+"/"+hash))
	br.awaitText("main h1", heading)
}

// screenshot saves the page as name.png in the test's artifact directory.
func (br *browser) screenshot(name string) {
	br.t.Helper()
	br.hold()
	defer br.release()
	png := within(br, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(br.t.ArtifactDir(), name+".png"), png, 0o644); err != nil {
		br.t.Fatal(err)
	}
}

// axeViolation is what axe-core reports of a failed rule.
type axeViolation struct {
	ID    string `json:"id"`
	Help  string `json:"help"`
	Nodes []struct {
		Target         []any  `json:"target"`
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

// checkAccessibility runs axe-core (pinned in package.json) on the page:
// WCAG 2.1 A and AA rules, labels and colour contrast among them.
func (br *browser) checkAccessibility(page string) {
	br.t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		br.t.Fatalf("axe-core: %v (make deps runs npm ci, which installs it)", err)
	}
	br.hold()
	defer br.release()
	within(br, "load axe-core", chromedp.Evaluate[chromedp.Void](string(src)+";0"))
	out := eval[[]axeViolation](br, "axe on "+page,
		`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then((r) => r.violations)`)
	for _, v := range out {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+n.FailureSummary)
		}
		br.t.Errorf("%s: accessibility rule %s (%s) fails on:\n  %s", page, v.ID, v.Help, strings.Join(where, "\n  "))
	}
}

// TestConsole drives the web console in a headless chromium: it logs in,
// declares a queue, watches its depth grow while a publisher runs (and the
// overview name it), purges, publishes a message from an exchange's page
// and gets it on the queue's page, visits every page, checking each with
// axe-core and saving a screenshot (go test -artifacts keeps them), closes
// a connection with a reason, adds a user and a policy, downloads the
// definitions and logs out. The browser must log no error or warning all
// along.
func TestConsole(t *testing.T) {
	b := startBroker(t)
	br := startBrowser(t, b)

	// Log in.
	br.run("open the console", chromedp.Navigate(br.base+"/"))
	br.awaitText("main h1", "Log in")
	br.checkAccessibility("login")
	br.screenshot("login")
	br.typeIn(`input[name=username]`, "guest")
	br.typeIn(`input[name=password]`, "guest")
	br.click(`form.login button[type=submit]`)
	br.awaitText("main h1", "Overview")
	br.awaitText("#whoami", "guest")

	// Declare a queue from the queues page.
	const q = "console-q"
	br.open("#/queues", "Queues")
	br.typeIn(`form[aria-labelledby=add-queue] input[name=name]`, q)
	br.click(`form[aria-labelledby=add-queue] button[type=submit]`)
	br.awaitText("main table tbody", q)

	// Watch its depth grow on its page while a publisher runs.
	_, ch := dialChannel(t, b)
	stop := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				published <- nil
				return
			case <-tick.C:
				if err := ch.Publish("", q, false, false, amqp091.Publishing{Body: []byte("load")}); err != nil {
					published <- err
					return
				}
			}
		}
	}()
	br.open("#/queue/%2F/"+q, "Queue "+q)
	readReady := func() int {
		n, err := strconv.Atoi(strings.ReplaceAll(br.text("#depth-ready"), ",", ""))
		if err != nil {
			t.Fatalf("depth on the queue page: %v", err)
		}
		return n
	}
	first := readReady()
	// The page refreshes every 5 s: wait for a refresh to show more.
	waitFor(t, 30*time.Second, func() error {
		if n := readReady(); n <= first {
			return fmt.Errorf("depth shown %d, first %d", n, first)
		}
		return nil
	})
	br.screenshot("queue")
	// The overview names the queue among the backlogs growing fastest.
	br.open("#/", "Overview")
	br.awaitText(".problems", "Queue "+q+" (vhost /) grows by")
	br.screenshot("overview-problems")
	close(stop)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	br.open("#/queue/%2F/"+q, "Queue "+q)

	// Purge from the queue page (the confirmation is a dialog).
	purge := func() {
		br.clickText("Purge messages")
		br.click(`dialog[open] button[type=submit]`)
		waitFor(t, 10*time.Second, func() error {
			var qo struct{ Messages int }
			b.mgmtCall(t, "GET", "/api/queues/%2F/"+q, nil, 200, &qo)
			if qo.Messages != 0 {
				return fmt.Errorf("%d messages after the purge", qo.Messages)
			}
			return nil
		})
		br.awaitExact("#depth-ready", "0")
	}
	purge()

	// Bind the queue to amq.direct from its page, publish from the
	// exchange's page, get the message on the queue's page.
	br.typeIn(`form[aria-labelledby=bind-title] input[name=source]`, "amq.direct")
	br.typeIn(`form[aria-labelledby=bind-title] input[name=routing_key]`, "console-key")
	br.click(`form[aria-labelledby=bind-title] button[type=submit]`)
	br.awaitText("main", "console-key")
	br.checkAccessibility("queue")

	br.open("#/exchange/%2F/amq.direct", "Exchange amq.direct")
	const payload = "hello from the console"
	br.typeIn(`form[aria-labelledby=publish-title] input[name=routing_key]`, "console-key")
	br.typeIn(`form[aria-labelledby=publish-title] textarea[name=payload]`, payload)
	br.click(`form[aria-labelledby=publish-title] button[type=submit]`)
	br.awaitText("#publish-result", "Message published and routed.")
	br.checkAccessibility("exchange")
	br.screenshot("exchange")

	br.open("#/queue/%2F/"+q, "Queue "+q)
	br.awaitExact("#depth-ready", "1")
	br.click(`form[aria-labelledby=get-title] button[type=submit]`)
	br.awaitText("#got-messages", payload)
	br.awaitText("#got-messages", "console-key")
	// The default ack mode requeues: the message is still there to purge.
	var qo struct{ Messages int }
	b.mgmtCall(t, "GET", "/api/queues/%2F/"+q, nil, 200, &qo)
	if qo.Messages != 1 {
		t.Fatalf("%d messages after a get that requeues, want 1", qo.Messages)
	}
	purge()

	// Every other page: it renders, passes axe, and is saved.
	conn2, _ := dialChannel(t, b) // a connection and a channel to list
	// A quorum queue, for the cluster page's leaders.
	b.mgmtCall(t, "PUT", "/api/queues/%2F/console-qq", map[string]any{"durable": true, "arguments": map[string]any{"x-queue-type": "quorum"}}, 201, nil)
	// Each page is checked once its data is in: the marker is text only
	// the data puts there.
	for _, p := range []struct{ hash, heading, shot, where, marker string }{
		{"#/", "Overview", "overview", ".problems", "What is wrong"},
		{"#/connections", "Connections", "connections", "main table tbody", "guest"},
		{"#/channels", "Channels", "channels", "main table tbody", "guest"},
		{"#/exchanges", "Exchanges", "exchanges", "main table tbody", "amq.topic"},
		{"#/queues", "Queues", "queues", "main table tbody", q},
		{"#/users", "Users", "users", "main table tbody", "administrator"},
		{"#/vhosts", "Virtual hosts", "vhosts", "main table tbody", "/"},
		{"#/permissions", "Permissions", "permissions", "main table tbody", "guest"},
		{"#/policies", "Policies", "policies", "main table tbody", "None."},
		{"#/cluster", "Cluster", "cluster", "main", "console-qq"},
		{"#/definitions", "Definitions", "definitions", "main", "Download definitions"},
	} {
		br.open(p.hash, p.heading)
		br.awaitText(p.where, p.marker)
		br.checkAccessibility(p.shot)
		br.screenshot(p.shot)
	}

	// Close a connection with a reason: its client is told.
	closed := conn2.NotifyClose(make(chan *amqp091.Error, 1))
	br.open("#/connections", "Connections")
	br.awaitText("main table tbody", conn2.LocalAddr().String())
	br.hold() // the table is redrawn every 5 s
	br.click(fmt.Sprintf(`button[aria-label^="Close connection %s "]`, conn2.LocalAddr()))
	br.typeIn(`dialog[open] input[name=answer]`, "maintenance window")
	br.click(`dialog[open] button[type=submit]`)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || !strings.Contains(e.Reason, "maintenance window") {
			t.Fatalf("connection closed from the console: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection closed from the console is still open")
	}
	br.release()

	// Add a user and a policy with the forms.
	br.open("#/users", "Users")
	br.typeIn(`form[aria-labelledby=user-title] input[name=name]`, "console-user")
	br.typeIn(`form[aria-labelledby=user-title] input[name=password]`, "s3cret")
	br.typeIn(`form[aria-labelledby=user-title] input[name=tags]`, "monitoring")
	br.click(`form[aria-labelledby=user-title] button[type=submit]`)
	br.awaitText("main table tbody", "console-user")
	if st, body := b.apiAs(t, "console-user", "s3cret", "GET", "/api/whoami", nil); st != 200 || !strings.Contains(string(body), "monitoring") {
		t.Fatalf("the user added in the console: %d %s", st, body)
	}
	br.open("#/policies", "Policies")
	br.typeIn(`form[aria-labelledby=policy-title] input[name=name]`, "console-policy")
	eval[string](br, "clear the pattern", `document.querySelector('form[aria-labelledby=policy-title] input[name=pattern]').value = ''`)
	br.typeIn(`form[aria-labelledby=policy-title] input[name=pattern]`, "^console-")
	br.typeIn(`form[aria-labelledby=policy-title] textarea[name=definition]`, `{"max-length": 1000}`)
	br.click(`form[aria-labelledby=policy-title] button[type=submit]`)
	br.awaitText("main table tbody", "console-policy")
	var pol struct {
		Pattern    string         `json:"pattern"`
		Definition map[string]any `json:"definition"`
	}
	b.mgmtCall(t, "GET", "/api/policies/%2F/console-policy", nil, 200, &pol)
	if pol.Pattern != "^console-" || pol.Definition["max-length"] != 1000.0 {
		t.Fatalf("the policy added in the console: %+v", pol)
	}

	// The definitions link downloads what the API exports.
	br.open("#/definitions", "Definitions")
	href := eval[string](br, "definitions link", `document.querySelector('main a[download]').getAttribute('href')`)
	if !strings.HasPrefix(href, "/api/definitions") {
		t.Fatalf("definitions link %q", href)
	}
	var defs struct {
		Queues []struct{ Name string } `json:"queues"`
	}
	raw := eval[string](br, "fetch definitions", `fetch('`+href+`').then((r) => r.text())`)
	if err := json.Unmarshal([]byte(raw), &defs); err != nil || len(defs.Queues) != 2 {
		t.Fatalf("definitions downloaded from the console: %v %.200s", err, raw)
	}

	// Log out: the session is gone, the API refuses its cookie (the 401
	// that the page then logs was asked for: the log is checked before).
	br.click(`#whoami button`)
	br.awaitText("main h1", "Log in")
	br.checkLog()
	status := eval[int](br, "call after logout", `fetch('/api/overview', {headers: {'X-Requested-With': 'XMLHttpRequest'}}).then((r) => r.status)`)
	if status != 401 {
		t.Fatalf("API after logout: status %d, want 401", status)
	}
}
