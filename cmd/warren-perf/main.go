// Command warren-perf is a load generator for AMQP 0-9-1 brokers with the
// flags of RabbitMQ's PerfTest. It checks every message it receives: loss,
// duplicates and order, with latency from a timestamp in the body.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
		printUsage(os.Stderr)
		return exitUsage
	}
	if o.Help {
		printUsage(os.Stdout)
		return exitOK
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
			return exitError
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	lines := os.Stdout
	if o.JSON {
		lines = os.Stderr // stdout carries only the JSON summary
	}
	s, err := run(&o, lines, sig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
		return exitError
	}
	if err := printSummary(os.Stdout, s, o.JSON); err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
		return exitError
	}
	return exitCode(s)
}
