package mgmt

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
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
	// DefaultSessionTimeout is how long a session lasts without use, as
	// RabbitMQ's management.login_session_timeout (480 minutes).
	DefaultSessionTimeout = 480 * time.Minute
	// maxSessions bounds the sessions held; the oldest go first.
	maxSessions = 10000
)

// session is one console login.
type session struct {
	user string
	// hash is the user's password hash at login: a changed password or a
	// deleted and remade user ends the session.
	hash    []byte
	csrf    string
	expires time.Time
}

// sessions are the node's console logins by token.
type sessions struct {
	mu      sync.Mutex
	timeout time.Duration
	byToken map[string]*session
}

func newSessions(timeout time.Duration) *sessions {
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	return &sessions{timeout: timeout, byToken: map[string]*session{}}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a session for u and returns its token.
func (ss *sessions) start(u *auth.User, now time.Time) (token string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byToken) >= maxSessions {
		ss.expireLocked(now, true)
	}
	token = randomToken()
	s = &session{user: u.Name, hash: u.PasswordHash, csrf: randomToken(), expires: now.Add(ss.timeout)}
	ss.byToken[token] = s
	return token, s
}

// expireLocked drops expired sessions and, when oldest is set and none
// expired, the one closest to expiry.
func (ss *sessions) expireLocked(now time.Time, oldest bool) {
	var first string
	for t, s := range ss.byToken {
		if now.After(s.expires) {
			delete(ss.byToken, t)
			oldest = false
			continue
		}
		if first == "" || s.expires.Before(ss.byToken[first].expires) {
			first = t
		}
	}
	if oldest && first != "" {
		delete(ss.byToken, first)
	}
}

// lookup returns the live session of token, extending it, or nil.
func (ss *sessions) lookup(token string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byToken[token]
	if s == nil {
		return nil
	}
	if now.After(s.expires) {
		delete(ss.byToken, token)
		return nil
	}
	s.expires = now.Add(ss.timeout)
	c := *s
	return &c
}

// end drops token's session.
func (ss *sessions) end(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byToken, token)
}

// sessionOf returns the user and session of r's session cookie: token is
// the cookie's value ("" when r has none), u and ses are nil when it names
// no live session of a user whose password is unchanged.
func (s *Server) sessionOf(r *http.Request) (u *auth.User, ses *session, token string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil, ""
	}
	ses = s.sessions.lookup(c.Value, time.Now())
	if ses == nil {
		return nil, nil, c.Value
	}
	u = s.d.Users.User(ses.user)
	if u == nil || !bytes.Equal(u.PasswordHash, ses.hash) {
		s.sessions.end(c.Value)
		return nil, nil, c.Value
	}
	return u, ses, c.Value
}

// checkCSRF refuses a request that changes something without its
// session's CSRF token.
func checkCSRF(r *http.Request, ses *session) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead ||
		subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(ses.csrf)) == 1 {
		return nil
	}
	return forbidden("missing or wrong " + csrfHeader + " header")
}

// sameOrigin reports whether a browser request comes from a page of this
// listener: its Origin header, when there is one, names the request's
// host.
func sameOrigin(r *http.Request) bool {
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
	if !sameOrigin(r) {
		s.fail(w, forbidden("cross-origin login refused"))
		return
	}
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
	token, ses := s.sessions.start(u, time.Now())
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
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
	writeJSON(w, sessionReply(u, ses.csrf))
}

// endSession answers DELETE /api/session: the session ends and its
// cookie is cleared. It needs the CSRF token, so that another site cannot
// log the user out.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if u, ses, token := s.sessionOf(r); u != nil {
		if err := checkCSRF(r, ses); err != nil {
			s.fail(w, err)
			return
		}
		s.sessions.end(token)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
