package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// seen is one request the fake API received.
type seen struct {
	method      string
	uri         string // the request target as sent: escaped path and query
	user, pass  string
	reason      string // X-Reason
	contentType string
	body        string
}

// line is the request as "METHOD target", the key of canned replies.
func (s seen) line() string { return s.method + " " + s.uri }

// reply is a canned answer.
type reply struct {
	status int
	body   string
}

// fakeAPI records requests and answers them from canned replies; a request
// with no reply gets the API's 404.
type fakeAPI struct {
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]reply
	reqs    []seen
}

// newFakeAPI starts a fake management API with replies keyed by
// "METHOD /api/escaped/path?query".
func newFakeAPI(t *testing.T, replies map[string]reply) *fakeAPI {
	t.Helper()
	f := &fakeAPI{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// serve records a request and sends its canned reply.
func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	s := seen{method: r.Method, uri: r.RequestURI, user: user, pass: pass,
		reason: r.Header.Get("X-Reason"), contentType: r.Header.Get("Content-Type"), body: string(body)}
	f.mu.Lock()
	f.reqs = append(f.reqs, s)
	rep, ok := f.replies[s.line()]
	f.mu.Unlock()
	if !ok {
		rep = reply{http.StatusNotFound, `{"error":"Object Not Found","reason":"Not Found"}`}
	}
	if rep.body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// lines returns the requests received, as "METHOD target".
func (f *fakeAPI) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.reqs))
	for i, s := range f.reqs {
		out[i] = s.line()
	}
	return out
}

// requests returns the requests received.
func (f *fakeAPI) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// result is what one warrenctl run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runAgainst runs warrenctl with WARREN_MGMT_URL set to url and stdin as
// standard input.
func runAgainst(url, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{envURL: url})
	code := execute(args, env, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// closedURL is the URL of a loopback port that nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// ok is an empty success reply.
var ok = reply{http.StatusNoContent, ""}
