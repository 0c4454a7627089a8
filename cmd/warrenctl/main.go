package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// main runs warrenctl with the process's arguments, environment and
// standard streams, and exits with run's code.
func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code. It reads
// standard input for the commands that take "-" or a password from it.
func run(args []string, env func(string) string, stdout, stderr io.Writer) int {
	return execute(args, env, os.Stdin, stdout, stderr)
}

// invocation is what a command's handler works with.
type invocation struct {
	ctx    context.Context
	opts   *options
	api    *client
	stdin  io.Reader
	stdout io.Writer
}

// info prints an informational line (rabbitmqctl's banner) unless quiet or
// JSON output was asked for.
func (x *invocation) info(format string, a ...any) {
	if x.opts.informative() {
		fmt.Fprintf(x.stdout, format+"\n", a...)
	}
}

// execute is run with standard input as a parameter.
func execute(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	p, err := parseArgs(args, env)
	if err != nil && !p.wantsHelp() { // help needs no valid settings
		fmt.Fprintln(stderr, err)
		if p != nil && p.cmd != nil {
			fmt.Fprintf(stderr, "Usage: warrenctl %s\n", p.cmd.synopsis())
		}
		return exitCodeFor(err)
	}
	switch {
	case p.cmd == nil && p.opts.help:
		writeUsage(stdout)
		return exitOK
	case p.cmd == nil:
		writeUsage(stderr)
		return exitUsage
	case p.cmd.name == "help":
		return help(p.args, stdout, stderr)
	case p.opts.help:
		writeCommandHelp(stdout, p.cmd)
		return exitOK
	}
	if err := p.cmd.checkArgs(p.args); err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintf(stderr, "Usage: warrenctl %s\n", p.cmd.synopsis())
		return exitCodeFor(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.timeout)
	defer cancel()
	api := newClient(p.opts.base, p.opts.username, p.opts.password)
	defer api.close()
	x := &invocation{ctx: ctx, opts: &p.opts, api: api, stdin: stdin, stdout: stdout}
	if err := p.cmd.execute(x, p.args); err != nil {
		fmt.Fprintln(stderr, strings.TrimRight(err.Error(), "\n"))
		return exitCodeFor(err)
	}
	return exitOK
}

// wantsHelp reports whether the command line asks for help: the help
// command or -h/--help.
func (p *parsed) wantsHelp() bool {
	return p != nil && (p.opts.help || p.cmd != nil && p.cmd.name == "help")
}

// help is the help command: the command list, or one command's usage.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeUsage(stdout)
		return exitOK
	}
	c := lookupCommand(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "Error: command '%s' not found. Run 'warrenctl help' for the list of commands.\n", args[0])
		return exitUsage
	}
	writeCommandHelp(stdout, c)
	return exitOK
}
