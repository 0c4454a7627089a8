package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// raftLogger passes hashicorp/raft's log lines of level warning and above
// to the node's logger; limit, when not nil, bounds how many pass.
func raftLogger(log *slog.Logger, name string, limit *LogLimit) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: name, Level: hclog.Warn, Output: &slogWriter{log: log.With("component", name), limit: limit},
		DisableTime: true,
	})
}

type slogWriter struct {
	log   *slog.Logger
	limit *LogLimit
}

func (w *slogWriter) Write(p []byte) (int, error) {
	if w.limit != nil {
		pass, dropped := w.limit.take()
		if dropped > 0 {
			w.log.Warn("raft: " + strconv.Itoa(dropped) + " more lines were not logged (at most " +
				strconv.Itoa(w.limit.perSecond) + " a second)")
		}
		if !pass {
			return len(p), nil
		}
	}
	line := string(bytes.TrimSpace(p))
	level := slog.LevelWarn
	if bytes.Contains(p, []byte("[ERROR]")) {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// LogLimit bounds the log lines of many Raft groups together: with a
// thousand quorum queues, a peer that goes down makes every group log
// each failed heartbeat.
type LogLimit struct {
	perSecond int
	mu        sync.Mutex
	window    time.Time
	passed    int
	dropped   int
}

// NewLogLimit returns a limit of perSecond lines a second.
func NewLogLimit(perSecond int) *LogLimit { return &LogLimit{perSecond: perSecond} }

// take reports whether a line may pass, and how many were dropped in the
// window that just ended (to be said once).
func (l *LogLimit) take() (pass bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.window) >= time.Second {
		l.window, l.passed, dropped, l.dropped = now, 0, l.dropped, 0
	}
	if l.passed >= l.perSecond {
		l.dropped++
		return false, dropped
	}
	l.passed++
	return true, dropped
}

// RaftLogger is raftLogger for Raft groups other than the metadata group
// (the quorum queues'): their warnings and errors go to log, at most as
// many as limit lets pass.
func RaftLogger(log *slog.Logger, name string, limit *LogLimit) hclog.Logger {
	return raftLogger(log, name, limit)
}
