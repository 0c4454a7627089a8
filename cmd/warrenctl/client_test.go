package main

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAPIURL checks that each path segment is escaped on its own under the base URL's path.
func TestAPIURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base  string
		segs  []string
		query url.Values
		want  string
	}{
		{"http://h:15672", []string{"queues", "/"}, nil, "http://h:15672/api/queues/%2F"},
		{"http://h:15672/", []string{"overview"}, nil, "http://h:15672/api/overview"},
		{"http://h:15672/mgmt", []string{"queues", "a/b", "q%1", "contents"}, nil, "http://h:15672/mgmt/api/queues/a%2Fb/q%251/contents"},
		{"https://h/x%2Fy/", []string{"users", "bob smith"}, nil, "https://h/x%2Fy/api/users/bob%20smith"},
		{"http://h", []string{"queues", "/", "q?#"}, url.Values{"if-unused": {"true"}, "if-empty": {"true"}},
			"http://h/api/queues/%2F/q%3F%23?if-empty=true&if-unused=true"},
		{"http://h", []string{"exchanges", "/", ""}, nil, "http://h/api/exchanges/%2F/"},
		{"http://h", []string{"vhosts", "ü"}, nil, "http://h/api/vhosts/%C3%BC"},
	}
	for _, tt := range tests {
		base, err := parseBaseURL(tt.base)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(base, "u", "p")
		if got := c.apiURL(tt.segs, tt.query).String(); got != tt.want {
			t.Errorf("apiURL(%s, %q) = %s, want %s", tt.base, tt.segs, got, tt.want)
		}
	}
}

// TestExitCodeFor checks the mapping of errors and HTTP statuses to exit codes.
func TestExitCodeFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"401", &apiError{status: 401}, exitNoPerm},
		{"403", &apiError{status: 403}, exitNoPerm},
		{"404", &apiError{status: 404}, exitSoftware},
		{"no such user", readAPIError(&http.Response{StatusCode: 404, Body: http.NoBody}, noUser("u")), exitNoUser},
		{"no such vhost", readAPIError(&http.Response{StatusCode: 404, Body: http.NoBody}, noVHost("v")), exitDataErr},
		{"no such queue", readAPIError(&http.Response{StatusCode: 404, Body: http.NoBody}, noQueue("q", "/")), exitSoftware},
		{"400", &apiError{status: 400}, exitSoftware},
		{"500", &apiError{status: 500}, exitSoftware},
		{"usage", usageError("x"), exitUsage},
		{"data", dataError("x"), exitDataErr},
		{"unavailable", &exitError{code: exitUnavailable}, exitUnavailable},
		{"wrapped", errors.Join(&apiError{status: 403}, errors.New("more")), exitNoPerm},
		{"other", errors.New("boom"), exitSoftware},
	}
	for _, tt := range tests {
		if got := exitCodeFor(tt.err); got != tt.want {
			t.Errorf("%s: exitCodeFor = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestReadAPIError checks which text of an error reply is shown.
func TestReadAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		notFound missing
		want     string
	}{
		{"reason", 400, `{"error":"bad_request","reason":"inequivalent arg 'durable'"}`, missing{}, "inequivalent arg 'durable'"},
		{"error only", 401, `{"error":"not_authorised"}`, missing{}, "not_authorised"},
		{"structured reason", 400, `{"error":"bad_request","reason":{"k":1}}`, missing{}, `{"k":1}`},
		{"not json", 502, "bad gateway\n", missing{}, "bad gateway"},
		{"empty", 500, "", missing{}, "500 Internal Server Error"},
		{"not found message", 404, `{"error":"Object Not Found","reason":"Not Found"}`, noQueue("q", "/"), "Queue 'q' in vhost '/' does not exist"},
		{"not found default", 404, `{"error":"Object Not Found","reason":"Not Found"}`, missing{}, "Not Found"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body))}
		err := readAPIError(resp, tt.notFound)
		if got := err.Error(); got != "Error:\n"+tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, "Error:\n"+tt.want)
		}
	}
}
