package mgmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/auth"
)

// browserCall sends a request as the console does: with the session
// cookie (when not empty), the CSRF token (when not empty) and
// X-Requested-With.
func (fx *fixture) browserCall(t *testing.T, method, path, cookie, csrf string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, fx.api.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	return fx.send(t, req)
}

// status sends req and returns the answer's status.
func (fx *fixture) status(t *testing.T, req *http.Request) int {
	t.Helper()
	return fx.send(t, req).status
}

// login starts a session as user and returns its cookie and CSRF token.
func (fx *fixture) login(t *testing.T, user, pass string) (cookie, csrf string) {
	t.Helper()
	return fx.login2(t, "", user, pass)
}

// login2 is login from a browser holding the session cookie held.
func (fx *fixture) login2(t *testing.T, held, user, pass string) (cookie, csrf string) {
	t.Helper()
	r := fx.browserCall(t, "POST", "/api/session", held, "", map[string]string{"username": user, "password": pass})
	o := r.obj(t, 200)
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
			}
			cookie = c.Value
		}
	}
	csrf, _ = o["csrf_token"].(string)
	if cookie == "" || csrf == "" || o["name"] != user {
		t.Fatalf("login as %s: cookie %q, answer %v", user, cookie, o)
	}
	return cookie, csrf
}

func TestConsoleSession(t *testing.T) {
	fx := newFixture(t)

	// No session: GET /api/session is 204, and an API call is 401 without
	// the header that makes browsers show their own dialog.
	fx.browserCall(t, "GET", "/api/session", "", "", nil).want(t, 204)
	r := fx.browserCall(t, "GET", "/api/overview", "", "", nil)
	r.wantError(t, 401, "not_authorised", "Login failed")
	if r.header.Get("WWW-Authenticate") != "" {
		t.Error("401 to the console carries WWW-Authenticate")
	}
	if fx.call(t, "", "GET", "/api/overview", nil).header.Get("WWW-Authenticate") == "" {
		t.Error("401 to a plain client lacks WWW-Authenticate")
	}

	// Refused logins: a wrong password, a form post, another origin.
	fx.browserCall(t, "POST", "/api/session", "", "", map[string]string{"username": "admin", "password": "nope"}).
		wantError(t, 401, "not_authorised", "Login failed")
	req, _ := http.NewRequest("POST", fx.api.URL+"/api/session", strings.NewReader("username=admin&password=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if st := fx.status(t, req); st != 400 {
		t.Fatalf("form login: %d", st)
	}
	req, _ = http.NewRequest("POST", fx.api.URL+"/api/session", strings.NewReader(`{"username":"admin","password":"admin"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://evil.example")
	if st := fx.status(t, req); st != 403 {
		t.Fatalf("cross-origin login: %d", st)
	}
	// A user without a management tag gets no session.
	fx.addUser(t, "plain", nil, "/")
	fx.browserCall(t, "POST", "/api/session", "", "", map[string]string{"username": "plain", "password": "pw"}).want(t, 403)

	cookie, csrf := fx.login(t, "admin", "admin")
	if o := fx.browserCall(t, "GET", "/api/session", cookie, "", nil).obj(t, 200); o["csrf_token"] != csrf {
		t.Errorf("GET /api/session: %v", o)
	}
	fx.browserCall(t, "GET", "/api/whoami", cookie, "", nil).want(t, 200)

	// Changes need the CSRF token.
	fx.browserCall(t, "PUT", "/api/queues/%2F/s1", cookie, "", map[string]any{}).want(t, 403)
	fx.browserCall(t, "PUT", "/api/queues/%2F/s1", cookie, "wrong", map[string]any{}).want(t, 403)
	fx.browserCall(t, "PUT", "/api/queues/%2F/s1", cookie, csrf, map[string]any{}).want(t, 201)

	// A session is its user's: tags are read at each call, and a changed
	// password ends it.
	fx.do(t, "PUT", "/api/users/monitor", map[string]any{"password": "pw", "tags": "monitoring"}).want(t, 201)
	mc, _ := fx.login(t, "monitor", "pw")
	fx.browserCall(t, "GET", "/api/users", mc, "", nil).want(t, 403)
	fx.browserCall(t, "GET", "/api/nodes", mc, "", nil).want(t, 200)
	fx.do(t, "PUT", "/api/users/monitor", map[string]any{"password": "new", "tags": "monitoring"}).want(t, 204)
	fx.browserCall(t, "GET", "/api/nodes", mc, "", nil).want(t, 401)
	fx.browserCall(t, "GET", "/api/session", mc, "", nil).want(t, 204)

	// Basic credentials beside a cookie win, and need no token.
	req, _ = http.NewRequest("PUT", fx.api.URL+"/api/queues/%2F/s2", strings.NewReader("{}"))
	req.SetBasicAuth("admin", "admin")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "bogus"})
	if st := fx.status(t, req); st != 201 {
		t.Fatalf("basic auth with a stale cookie: %d", st)
	}

	// Another site's page gets nothing changed, whatever credentials the
	// browser adds: its Origin or Sec-Fetch-Site gives it away.
	for _, h := range [][2]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
		req, _ = http.NewRequest("POST", fx.api.URL+"/api/definitions", strings.NewReader(`{"users":[{"name":"evil","password":"x","tags":"administrator"}]}`))
		req.Header.Set("Content-Type", "text/plain")
		req.SetBasicAuth("admin", "admin")
		req.Header.Set(h[0], h[1])
		if st := fx.status(t, req); st != 403 {
			t.Fatalf("cross-site definitions import with %s: %s: %d", h[0], h[1], st)
		}
	}
	if fx.users.User("evil") != nil {
		t.Fatal("a cross-site request made a user")
	}
	// Behind a proxy that rewrites Host, the browser's Sec-Fetch-Site
	// still says same-origin.
	req, _ = http.NewRequest("PUT", fx.api.URL+"/api/queues/%2F/s3", strings.NewReader("{}"))
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Origin", "https://rabbit.example.com")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if st := fx.status(t, req); st != 201 {
		t.Fatalf("a same-origin PUT through a proxy: %d", st)
	}
	req, _ = http.NewRequest("GET", fx.api.URL+"/api/overview", nil)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if st := fx.status(t, req); st != 200 {
		t.Fatalf("a cross-site GET: %d", st)
	}

	// Logging in again ends the browser's earlier session.
	again, _ := fx.login2(t, cookie, "admin", "admin")
	fx.browserCall(t, "GET", "/api/whoami", cookie, "", nil).want(t, 401)
	cookie = again

	// Logout needs no CSRF token (a tab may hold an older session's), ends
	// the session and clears the cookie.
	r = fx.browserCall(t, "DELETE", "/api/session", cookie, "", nil)
	r.want(t, 204)
	if !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout Set-Cookie %q", r.header.Get("Set-Cookie"))
	}
	fx.browserCall(t, "GET", "/api/whoami", cookie, "", nil).want(t, 401)
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	ss := newSessions(time.Minute)
	u := &auth.User{Name: "u", PasswordHash: []byte("h")}
	now := time.Unix(1000, 0)
	tok, _ := ss.start(u, now)
	if _, ok := ss.lookup(tok, now.Add(59*time.Second)); !ok {
		t.Fatal("session gone before its timeout")
	}
	// Use does not extend it: the timeout counts from the login.
	if _, ok := ss.lookup(tok, now.Add(61*time.Second)); ok {
		t.Fatal("a session outlived its timeout")
	}
	if _, ok := ss.lookup(tok, now); ok {
		t.Fatal("an expired session came back")
	}

	// One user's logins push out its own oldest sessions only.
	other, _ := ss.start(&auth.User{Name: "other"}, now)
	first, _ := ss.start(u, now)
	for i := 1; i < maxUserSessions+5; i++ {
		ss.start(u, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(ss.byUser["u"]); n != maxUserSessions {
		t.Fatalf("user u holds %d sessions, bound %d", n, maxUserSessions)
	}
	if _, ok := ss.lookup(first, now); ok {
		t.Fatal("the user's oldest session survived its bound")
	}
	if _, ok := ss.lookup(other, now); !ok {
		t.Fatal("another user's session was pushed out")
	}

	// The node's bound: the oldest session goes.
	for i := 0; len(ss.byToken) < maxSessions; i++ {
		ss.start(&auth.User{Name: fmt.Sprint("user-", i)}, now.Add(time.Second))
	}
	ss.start(&auth.User{Name: "last"}, now.Add(2*time.Second))
	if n := len(ss.byToken); n != maxSessions {
		t.Fatalf("%d sessions held, bound %d", n, maxSessions)
	}
	if _, ok := ss.lookup(other, now); ok {
		t.Fatal("the node's oldest session survived the bound")
	}
	total := 0
	for _, ts := range ss.byUser {
		total += len(ts)
	}
	if total != len(ss.byToken) {
		t.Fatalf("byUser holds %d tokens, byToken %d", total, len(ss.byToken))
	}
}

func TestConsoleServed(t *testing.T) {
	fx := newFixture(t)
	r := fx.call(t, "", "GET", "/", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `<script type="module" src="/js/app.js">`) {
		t.Fatalf("GET /: %d %.200s", r.status, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/js/app.js", "/js/ui.js", "/js/pages/queues.js", "/console.css"} {
		r := fx.call(t, "", "GET", p, nil)
		if r.status != 200 || len(r.body) == 0 {
			t.Errorf("GET %s: %d", p, r.status)
		}
		etag := r.header.Get("ETag")
		req, _ := http.NewRequest("GET", fx.api.URL+p, nil)
		req.Header.Set("If-None-Match", etag)
		if st := fx.status(t, req); st != 304 {
			t.Errorf("GET %s If-None-Match %s: %d", p, etag, st)
		}
	}
	if ct := fx.call(t, "", "GET", "/js/app.js", nil).header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	for _, p := range []string{"/nope", "/js/", "/../go.mod", "/console.go"} {
		if r := fx.call(t, "", "GET", p, nil); r.status != 404 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	if r := fx.call(t, "", "POST", "/", nil); r.status != 405 {
		t.Errorf("POST /: %d", r.status)
	}
}
