package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Many groups' Raft lines share one limit: past it, lines are counted,
// not logged.
func TestLogLimit(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	limit := NewLogLimit(3)
	a, b := RaftLogger(log, "quorum a", limit), RaftLogger(log, "quorum b", limit)
	for range 3 {
		a.Error("failed to heartbeat")
		b.Warn("failed to contact")
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Fatalf("%d lines logged, want 3 (the limit):\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "level=ERROR") || !strings.Contains(out.String(), "level=WARN") {
		t.Fatalf("levels lost:\n%s", out.String())
	}
}
