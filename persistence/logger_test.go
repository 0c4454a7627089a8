package persistence

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recordHandler keeps the records it is given.
type recordHandler struct {
	mu      sync.Mutex
	level   slog.Level
	records []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		log     func(badgerLogger)
		level   slog.Level
		wantMsg string // "" when the record must be dropped
	}{
		{"error", func(l badgerLogger) { l.Errorf("disk %s\n", "full") }, slog.LevelError, "disk full"},
		{"warning", func(l badgerLogger) { l.Warningf("slow %d", 3) }, slog.LevelWarn, "slow 3"},
		{"info is debug", func(l badgerLogger) { l.Infof("compacting L%d", 0) }, slog.LevelDebug, "compacting L0"},
		{"debug is trace", func(l badgerLogger) { l.Debugf("x") }, levelTrace, "x"},
		{"blank dropped", func(l badgerLogger) { l.Errorf("\n") }, slog.LevelError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &recordHandler{level: levelTrace}
			tt.log(newBadgerLogger(slog.New(h)))
			if tt.wantMsg == "" {
				if len(h.records) != 0 {
					t.Fatalf("got %d records, want none", len(h.records))
				}
				return
			}
			if len(h.records) != 1 {
				t.Fatalf("got %d records, want 1", len(h.records))
			}
			if r := h.records[0]; r.Level != tt.level || r.Message != tt.wantMsg {
				t.Errorf("got %v %q, want %v %q", r.Level, r.Message, tt.level, tt.wantMsg)
			}
		})
	}

	// Below the handler's level, nothing is formatted or handled.
	h := &recordHandler{level: slog.LevelInfo}
	newBadgerLogger(slog.New(h)).Infof("chatter")
	if len(h.records) != 0 {
		t.Errorf("Infof reached an Info handler: %v", h.records)
	}
}
