package cluster

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// raftLogger passes hashicorp/raft's log lines of level warning and above
// to the node's logger.
func raftLogger(log *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: name, Level: hclog.Warn, Output: &slogWriter{log: log.With("component", name)},
		DisableTime: true,
	})
}

type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelWarn
	if bytes.Contains(p, []byte("[ERROR]")) {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// RaftLogger is raftLogger for Raft groups other than the metadata group
// (the quorum queues'): their warnings and errors go to log.
func RaftLogger(log *slog.Logger, name string) hclog.Logger { return raftLogger(log, name) }
