// Command warren runs a Warren broker node.
//
//	go run ./cmd/warren [--listen 127.0.0.1:5672] [--data-dir warren-data] [--config FILE]
//
// It stops gracefully on SIGINT or SIGTERM, closing client connections with
// 320 CONNECTION_FORCED.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenmq/warren/broker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// shutdownTimeout bounds the graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	opts, ignored, err := parse(args, os.LookupEnv, os.Stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	for _, k := range ignored {
		log.Warn("config key has no effect in Warren", "key", k)
	}
	opts.broker.AMQP.Version = version
	if opts.pprof != "" {
		stop, err := servePprof(opts.pprof, log)
		if err != nil {
			log.Error("pprof listener", "err", err)
			return 1
		}
		defer stop()
	}
	// Signals are caught before the start is announced: a SIGTERM sent as
	// soon as "Warren started" is logged must stop the node gracefully,
	// not kill it. One that comes during the start is acted on after it.
	// SIGHUP reloads the TLS certificate, key and CA files.
	// A clustered node may wait long for its cluster during the start: a
	// SIGINT or SIGTERM then ends the wait.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	startCtx, abort := context.WithCancel(context.Background())
	early := make(chan os.Signal, 1)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					continue // no TLS files to reload yet
				}
				early <- s
				abort()
				return
			case <-startCtx.Done():
				return
			}
		}
	}()
	b, err := broker.StartContext(startCtx, opts.broker, log)
	abort()
	<-watching
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	code := 0
	select {
	case sig := <-early:
		log.Info("signal received", "signal", sig.String())
	default:
		code = wait(b, sigs, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return code
}

// wait serves until SIGINT or SIGTERM (0) or until the node fails (1),
// reloading the TLS files on SIGHUP, and returns the exit code.
func wait(b *broker.Broker, sigs <-chan os.Signal, log *slog.Logger) int {
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := b.ReloadTLS(); err != nil {
					log.Error("reloading the TLS files failed; the previous ones stay in use", "err", err)
				}
				continue
			}
			log.Info("signal received", "signal", sig.String())
			return 0
		case <-b.Failed():
			log.Error("the node cannot keep its durability promises and stops; a restart recovers what was synced", "err", b.Err())
			return 1
		}
	}
}
