package main

import (
	"math"
	"net/http"
	"strconv"

	"github.com/warrenmq/warren/flowcontrol"
)

// nodeLimit is a threshold of the node's resource alarms, set with
// PUT /api/nodes/{node}/{setting} as rabbitmqctl sets it on the node.
type nodeLimit struct {
	setting string // the path segment after the node
	banner  string // the informational line; %s the node, then the value
	// parse checks the arguments and returns the request body and the
	// value as the banner shows it.
	parse func(args []string) (body map[string]any, shown string, err error)
}

// The two thresholds. The server parses the units of an absolute value:
// the argument is sent as given, once checked with the server's parser.
var (
	memoryWatermark = nodeLimit{setting: "vm-memory-high-watermark", banner: "Setting memory threshold on %s to %s ...", parse: parseWatermark}
	diskFreeLimit   = nodeLimit{setting: "disk-free-limit", banner: "Setting disk free limit on %s to %s ...", parse: parseDiskFreeLimit}
)

// check refuses bad arguments before anything is sent.
func (l nodeLimit) check(args []string) error {
	_, _, err := l.parse(args)
	return err
}

// set sends the threshold to the node the API runs on.
func (l nodeLimit) set(x *invocation, args []string) error {
	body, shown, err := l.parse(args)
	if err != nil {
		return err
	}
	node, err := nodeName(x)
	if err != nil {
		return err
	}
	x.info(l.banner, node, shown)
	return x.api.call(x.ctx, request{
		method:   http.MethodPut,
		path:     []string{"nodes", node, l.setting},
		body:     body,
		notFound: noObject("Node " + node + " has no resource alarms to set"),
	})
}

// nodeName is the name of the node the API runs on, GET /api/overview's node.
func nodeName(x *invocation) (string, error) {
	var ov overview
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"overview"}, out: &ov}); err != nil {
		return "", err
	}
	if ov.Node == "" {
		return "", &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/overview: no node name"}
	}
	return ov.Node, nil
}

// parseWatermark reads set_vm_memory_high_watermark's arguments: a
// fraction from 0 to 1 of the memory, or "absolute" and an amount of bytes
// above 0.
func parseWatermark(args []string) (map[string]any, string, error) {
	v, absolute, err := limitArgs("set_vm_memory_high_watermark", "absolute", args)
	switch {
	case err != nil:
		return nil, "", err
	case absolute:
		n, err := byteAmount(v)
		if err == nil && n == 0 {
			err = usageError("the memory limit must be more than 0 bytes")
		}
		return map[string]any{"absolute": v}, v + " bytes", err
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return nil, "", usageError("The threshold should be a fraction between 0.0 and 1.0, not %q", v)
	}
	return map[string]any{"relative": f}, v, nil
}

// parseDiskFreeLimit reads set_disk_free_limit's arguments: an amount of
// bytes, or "mem_relative" and a fraction (0 or more) of the memory.
func parseDiskFreeLimit(args []string) (map[string]any, string, error) {
	v, relative, err := limitArgs("set_disk_free_limit", "mem_relative", args)
	switch {
	case err != nil:
		return nil, "", err
	case !relative:
		_, err := byteAmount(v)
		return map[string]any{"absolute": v}, v + " bytes", err
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return nil, "", usageError("The fraction should be a number, 0.0 or more, not %q", v)
	}
	return map[string]any{"mem_relative": f}, v + " times the total RAM", nil
}

// limitArgs splits "[keyword] <value>": the value, and whether the keyword
// came first, or a usage error for a wrong count.
func limitArgs(cmd, keyword string, args []string) (value string, keyed bool, err error) {
	want := 1
	if keyed = args[0] == keyword; keyed {
		want = 2
	}
	switch {
	case len(args) < want:
		return "", keyed, usageError("not enough arguments for %s", cmd)
	case len(args) > want:
		return "", keyed, usageError("too many arguments for %s", cmd)
	}
	return args[want-1], keyed, nil
}

// byteAmount reads an amount of bytes with rabbitmq.conf's units (512MB,
// 2GiB, 1073741824) as the server does.
func byteAmount(s string) (uint64, error) {
	n, err := flowcontrol.ParseBytes(s)
	if err != nil {
		return 0, usageError("%v", err)
	}
	return n, nil
}
