package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Exit codes, from sysexits(3) as rabbitmqctl uses them.
const (
	exitOK          = 0
	exitUsage       = 64 // EX_USAGE
	exitDataErr     = 65 // EX_DATAERR
	exitNoUser      = 67 // EX_NOUSER
	exitUnavailable = 69 // EX_UNAVAILABLE
	exitSoftware    = 70 // EX_SOFTWARE
	exitTempFail    = 75 // EX_TEMPFAIL
	exitNoPerm      = 77 // EX_NOPERM
)

// maxErrorBody bounds how much of an error reply is read.
const maxErrorBody = 64 << 10

// exitError is a failure together with the code warrenctl exits with. Its
// message is printed to standard error as is.
type exitError struct {
	code int
	msg  string
}

// Error returns the message as printed.
func (e *exitError) Error() string { return e.msg }

// usageError is a command line mistake (exit 64).
func usageError(format string, a ...any) *exitError {
	return &exitError{code: exitUsage, msg: "Error: " + fmt.Sprintf(format, a...)}
}

// dataError is bad input data such as malformed JSON (exit 65).
func dataError(format string, a ...any) *exitError {
	return &exitError{code: exitDataErr, msg: "Error: " + fmt.Sprintf(format, a...)}
}

// apiError is an error reply of the management API.
type apiError struct {
	status int
	reason string // the body's reason (or error) field, or the status text
	code   int    // the exit code, when the request chose one (see missing)
}

// missing is what the API's 404 means for one request: rabbitmqctl's
// message for the missing object and its exit code.
type missing struct {
	reason string
	code   int
}

// noObject is a missing object other than a user or virtual host: a
// generic failure (70), as rabbitmqctl has it.
func noObject(reason string) missing { return missing{reason, exitSoftware} }

// noUser is a missing user: EX_NOUSER, as rabbitmqctl's no_such_user.
func noUser(name string) missing { return missing{`User "` + name + `" does not exist`, exitNoUser} }

// noVHost is a missing virtual host: EX_DATAERR, as rabbitmqctl's
// no_such_vhost.
func noVHost(name string) missing {
	return missing{`Virtual host "` + name + `" does not exist`, exitDataErr}
}

// Error returns rabbitmqctl's two-line form, "Error:" and the reason.
func (e *apiError) Error() string { return "Error:\n" + e.reason }

// exitCodeFor maps an error to warrenctl's exit code.
func exitCodeFor(err error) int {
	var ee *exitError
	var ae *apiError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ae) && ae.code != 0:
		return ae.code
	case errors.As(err, &ae):
		return statusExitCode(ae.status)
	default:
		return exitSoftware
	}
}

// statusExitCode maps an HTTP error status to an exit code: credentials and
// permissions refused are EX_NOPERM, every other error reply EX_SOFTWARE.
func statusExitCode(status int) int {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return exitNoPerm
	}
	return exitSoftware
}

// isNotFound reports whether err is the API's 404.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

// client calls one node's management API.
type client struct {
	base     *url.URL // scheme, host and path prefix; no user info
	username string
	password string
	http     *http.Client
}

// newClient returns a client for the API under base. It has a transport of
// its own so that close drops exactly its connections.
func newClient(base *url.URL, username, password string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &client{base: base, username: username, password: password, http: &http.Client{Transport: tr}}
}

// close releases the client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// request is one API call.
type request struct {
	method string
	path   []string   // segments after /api, unescaped; each is escaped on its own
	query  url.Values // optional
	header http.Header
	body   any // encoded as JSON unless it is a json.RawMessage; nil sends no body
	out    any // the reply is decoded into it when not nil
	// notFound is what a 404 means for this request.
	notFound missing
}

// apiURL builds the URL of an API path: the base's path, "/api", then each
// segment escaped with url.PathEscape, so "/" in a vhost or name becomes %2F
// and "%" becomes %25.
func (c *client) apiURL(segs []string, query url.Values) *url.URL {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(c.base.EscapedPath(), "/"))
	b.WriteString("/api")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	u := *c.base
	u.RawPath = b.String()
	u.Path, _ = url.PathUnescape(u.RawPath) // cannot fail: every segment was escaped above
	u.RawQuery = query.Encode()
	u.Fragment = ""
	return &u
}

// call performs r and decodes the reply into r.out. Transport failures are
// exit errors (69, or 75 on timeout); error replies are *apiError. An empty
// name in the path is refused before anything is sent: it would name
// another resource (DELETE /api/users/ is not a user).
func (c *client) call(ctx context.Context, r request) error {
	if slices.Contains(r.path, "") {
		return dataError("names cannot be empty")
	}
	u := c.apiURL(r.path, r.query)
	var body io.Reader
	if r.body != nil {
		raw, ok := r.body.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(r.body); err != nil {
				return &exitError{code: exitSoftware, msg: "Error: encoding the request: " + err.Error()}
			}
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return &exitError{code: exitUsage, msg: "Error: " + err.Error()}
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	req.SetBasicAuth(c.username, c.password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp, r.notFound)
	}
	if r.out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(r.out); err != nil {
		if ctx.Err() != nil {
			return c.transportError(ctx.Err())
		}
		return &exitError{code: exitSoftware, msg: fmt.Sprintf("Error: unexpected reply to %s %s: %v", r.method, u.EscapedPath(), err)}
	}
	return nil
}

// transportError describes a request that got no reply.
func (c *client) transportError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &exitError{code: exitTempFail, msg: fmt.Sprintf("Error: operation on the node at %s timed out", c.base)}
	}
	return &exitError{code: exitUnavailable, msg: fmt.Sprintf("Error: unable to connect to the node at %s: %v", c.base, unwrapURLError(err))}
}

// unwrapURLError drops net/url's "Get \"http://...\":" prefix, which repeats
// the URL the message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readAPIError turns an error reply into an *apiError with the body's
// reason ({"error": ..., "reason": ...}), or its text when it is not JSON.
func readAPIError(resp *http.Response, notFound missing) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &apiError{status: resp.StatusCode}
	if resp.StatusCode == http.StatusNotFound && notFound.reason != "" {
		ae.reason, ae.code = notFound.reason, notFound.code
		return ae
	}
	var body struct {
		Error  any `json:"error"`
		Reason any `json:"reason"`
	}
	if json.Unmarshal(data, &body) == nil {
		ae.reason = firstText(body.Reason, body.Error)
	} else {
		ae.reason = strings.TrimSpace(string(data))
	}
	if ae.reason == "" {
		ae.reason = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return ae
}

// firstText returns the first of vs that is a non-empty string, or the
// compact JSON of a value that is neither a string nor null.
func firstText(vs ...any) string {
	for _, v := range vs {
		switch v := v.(type) {
		case nil:
		case string:
			if v != "" {
				return v
			}
		default:
			return marshalCompact(v)
		}
	}
	return ""
}
