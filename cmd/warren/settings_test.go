package main

import "testing"

// rabbitmq.conf's management.tcp.port and .ip change one part of the
// listener; on a listener that is off, the other part is the default's.
func TestSetPart(t *testing.T) {
	t.Parallel()
	const def = "127.0.0.1:15672"
	for _, tt := range []struct {
		cur, host, port, want string
	}{
		{"127.0.0.1:15672", "", "16000", "127.0.0.1:16000"},
		{"127.0.0.1:15672", "0.0.0.0", "", "0.0.0.0:15672"},
		{"", "", "16000", "127.0.0.1:16000"},
		{"", "::1", "", "[::1]:15672"},
	} {
		got := tt.cur
		if err := setPart(&got, def, tt.host, tt.port); err != nil || got != tt.want {
			t.Errorf("setPart(%q, host %q, port %q) = %q, %v; want %q", tt.cur, tt.host, tt.port, got, err, tt.want)
		}
	}
	got := def
	if err := setPart(&got, def, "", "http"); err == nil {
		t.Errorf("a port that is not a number was taken: %q", got)
	}
}
