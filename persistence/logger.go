package persistence

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// levelTrace is below slog.LevelDebug; Badger's debug output goes there.
const levelTrace = slog.LevelDebug - 4

// badgerLogger adapts Badger's four-method Logger to slog. Badger logs
// compactions, table openings and replays at "info": that is internal
// bookkeeping for a broker operator, so it goes to Debug; Badger's debug
// goes below Debug. Warnings and errors keep their level.
type badgerLogger struct {
	log *slog.Logger
}

func newBadgerLogger(l *slog.Logger) badgerLogger {
	return badgerLogger{log: l.With("component", "badger")}
}

func (l badgerLogger) Errorf(format string, args ...any) {
	l.logf(slog.LevelError, format, args)
}

func (l badgerLogger) Warningf(format string, args ...any) {
	l.logf(slog.LevelWarn, format, args)
}

func (l badgerLogger) Infof(format string, args ...any) {
	l.logf(slog.LevelDebug, format, args)
}

func (l badgerLogger) Debugf(format string, args ...any) {
	l.logf(levelTrace, format, args)
}

func (l badgerLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	if msg == "" {
		return
	}
	l.log.Log(ctx, level, msg)
}
