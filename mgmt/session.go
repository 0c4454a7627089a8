package mgmt

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/warrenmq/warren/auth"
)

// The console logs in once and then holds a session: a random token in an
// HttpOnly, SameSite=Strict cookie, so that the password is neither kept
// by the page nor sent with every request. A request authenticated by the
// cookie that changes anything (any method but GET and HEAD) must also
// carry the session's CSRF token in the X-CSRF-Token header: a page of
// another site can make the browser send the cookie, but cannot read the
// token. HTTP basic authentication works beside it, unchanged, for
// rabbitmqadmin and scripts.
//
// Sessions live in the node's memory: a restart, or another node of the
// cluster, asks for a new login.

const (
	sessionCookie = "warren_session"
	csrfHeader    = "X-CSRF-Token"
	// DefaultSessionTimeout is how long a session lasts after its login,
	// as RabbitMQ's management.login_session_timeout (480 minutes). It
	// does not slide with use: a console left open refreshes its pages by
	// itself, so use would keep it alive for ever.
	DefaultSessionTimeout = 480 * time.Minute
	// maxSessions bounds the sessions held, and maxUserSessions one
	// user's: a user's oldest session goes when it logs in once more, so
	// that no user can crowd out the others'.
	maxSessions     = 10000
	maxUserSessions = 32
)

// session is one console login.
type session struct {
	user string
	// hash is the user's password hash at login: a changed password or a
	// deleted and remade user ends the session.
	hash    []byte
	csrf    string
	started time.Time
	expires time.Time
}

// sessions are the node's console logins by token.
type sessions struct {
	mu      sync.Mutex
	timeout time.Duration
	byToken map[string]*session
	byUser  map[string][]string // tokens, oldest first
}

func newSessions(timeout time.Duration) *sessions {
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	return &sessions{timeout: timeout, byToken: map[string]*session{}, byUser: map[string][]string{}}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a session for u and returns its token and a copy of it.
func (ss *sessions) start(u *auth.User, now time.Time) (token string, s session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byUser[u.Name]) >= maxUserSessions {
		ss.endLocked(ss.byUser[u.Name][0])
	}
	if len(ss.byToken) >= maxSessions {
		ss.expireLocked(now)
	}
	token = randomToken()
	ses := &session{user: u.Name, hash: u.PasswordHash, csrf: randomToken(), started: now, expires: now.Add(ss.timeout)}
	ss.byToken[token] = ses
	ss.byUser[u.Name] = append(ss.byUser[u.Name], token)
	return token, *ses
}

// expireLocked drops expired sessions and, when none had, the oldest.
func (ss *sessions) expireLocked(now time.Time) {
	oldest := ""
	for t, s := range ss.byToken {
		if now.After(s.expires) {
			ss.endLocked(t)
			continue
		}
		if oldest == "" || s.started.Before(ss.byToken[oldest].started) {
			oldest = t
		}
	}
	if len(ss.byToken) >= maxSessions && oldest != "" {
		ss.endLocked(oldest)
	}
}

// lookup returns a copy of the live session of token.
func (ss *sessions) lookup(token string, now time.Time) (session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byToken[token]
	if s == nil {
		return session{}, false
	}
	if now.After(s.expires) {
		ss.endLocked(token)
		return session{}, false
	}
	return *s, true
}

// end drops token's session.
func (ss *sessions) end(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.endLocked(token)
}

func (ss *sessions) endLocked(token string) {
	s := ss.byToken[token]
	if s == nil {
		return
	}
	delete(ss.byToken, token)
	ts := slices.DeleteFunc(ss.byUser[s.user], func(t string) bool { return t == token })
	if len(ts) == 0 {
		delete(ss.byUser, s.user)
	} else {
		ss.byUser[s.user] = ts
	}
}

// sessionOf returns the user and session of r's session cookie: token is
// the cookie's value ("" when r has none), u is nil when it names no live
// session of a user whose password is unchanged.
func (s *Server) sessionOf(r *http.Request) (u *auth.User, ses session, token string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, session{}, ""
	}
	ses, ok := s.sessions.lookup(c.Value, time.Now())
	if !ok {
		return nil, session{}, c.Value
	}
	u = s.d.Users.User(ses.user)
	if u == nil || !bytes.Equal(u.PasswordHash, ses.hash) {
		s.sessions.end(c.Value)
		return nil, session{}, c.Value
	}
	return u, ses, c.Value
}

// changes reports whether a request may change something (any method but
// GET and HEAD).
func changes(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

// checkCSRF refuses a request that changes something without its
// session's CSRF token.
func checkCSRF(r *http.Request, ses session) error {
	if !changes(r) || subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(ses.csrf)) == 1 {
		return nil
	}
	return forbidden("missing or wrong " + csrfHeader + " header")
}

// sameOrigin reports whether a request comes from a page of this
// listener, or from no page at all (curl, rabbitmqadmin and client
// libraries send neither header). A browser names the page's origin in
// Origin on every request that changes something, and says in
// Sec-Fetch-Site whether it is another site's: a page elsewhere may make
// the browser send cached basic credentials, or a body the API reads as
// JSON whatever its Content-Type, but not pass these checks.
//
// Sec-Fetch-Site, when a browser sends it, decides: it is the browser's own
// judgement, right behind a proxy that rewrites Host too. Origin against
// Host is for browsers too old to send it.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// sessionReply is what the console learns of its session.
func sessionReply(u *auth.User, csrf string) map[string]any {
	return map[string]any{"name": u.Name, "tags": u.Tags, "csrf_token": csrf}
}

// startSession answers POST /api/session: a JSON body {"username", "password"}
// (JSON only, so that a form on another site cannot post it) starts a
// session for a user with management access.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.fail(w, badRequest("login takes a JSON body"))
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	u, err := s.d.Users.Authenticate(body.Username, body.Password, remoteAddr(r))
	if err != nil {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Login failed")
		return
	}
	if !hasLevel(u, levelManagement) {
		s.fail(w, forbidden("Not management user"))
		return
	}
	// A login ends the session the browser held before (another user's,
	// or its own from an earlier login).
	if _, _, old := s.sessionOf(r); old != "" {
		s.sessions.end(old)
	}
	token, ses := s.sessions.start(u, time.Now())
	setSessionCookie(w, r, token)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, sessionReply(u, ses.csrf))
}

// currentSession answers GET /api/session: who the cookie's session is,
// with its CSRF token (a reloaded page learns it again here), or 204 when
// there is none: not an error, for a page that has yet to log in.
func (s *Server) currentSession(w http.ResponseWriter, r *http.Request) {
	u, ses, _ := s.sessionOf(r)
	if u == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, sessionReply(u, ses.csrf))
}

// endSession answers DELETE /api/session: the cookie's session ends and
// the cookie is cleared. It needs no CSRF token: the SameSite=Strict
// cookie is not sent from another site's page, and a tab holding an older
// session's token must still be able to log out.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(c.Value)
	}
	setSessionCookie(w, r, "")
	w.WriteHeader(http.StatusNoContent)
}

// setSessionCookie sets the session cookie to token, or clears it when
// token is "".
func setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	c := &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
	if token == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
