package main

import "testing"

// TestAlarmLimitCommands checks set_vm_memory_high_watermark and
// set_disk_free_limit: the node's name from the overview, then one PUT.
func TestAlarmLimitCommands(t *testing.T) {
	t.Parallel()
	const (
		overview  = "GET /api/overview"
		watermark = "PUT /api/nodes/warren@h/vm-memory-high-watermark"
		disk      = "PUT /api/nodes/warren@h/disk-free-limit"
	)
	node := reply{200, `{"node":"warren@h"}`}
	set := func(put string) map[string]reply { return map[string]reply{overview: node, put: ok} }
	runCases(t, []cmdCase{
		{name: "relative watermark", args: []string{"set_vm_memory_high_watermark", "0.4"}, replies: set(watermark),
			stdout: "Setting memory threshold on warren@h to 0.4 ...\n",
			reqs:   []string{overview, watermark}, bodies: []string{"", `{"relative":0.4}`}},
		{name: "watermark of 1", args: []string{"-q", "set_vm_memory_high_watermark", "1"}, replies: set(watermark),
			reqs: []string{overview, watermark}, bodies: []string{"", `{"relative":1}`}},
		{name: "absolute watermark", args: []string{"set_vm_memory_high_watermark", "absolute", "512MB"}, replies: set(watermark),
			stdout: "Setting memory threshold on warren@h to 512MB bytes ...\n",
			reqs:   []string{overview, watermark}, bodies: []string{"", `{"absolute":"512MB"}`}},
		{name: "absolute watermark in bytes, silent", args: []string{"set_vm_memory_high_watermark", "--silent", "absolute", "1073741824"}, replies: set(watermark),
			reqs: []string{overview, watermark}, bodies: []string{"", `{"absolute":"1073741824"}`}},
		{name: "disk limit", args: []string{"set_disk_free_limit", "2GiB"}, replies: set(disk),
			stdout: "Setting disk free limit on warren@h to 2GiB bytes ...\n",
			reqs:   []string{overview, disk}, bodies: []string{"", `{"absolute":"2GiB"}`}},
		{name: "disk limit relative to memory", args: []string{"set_disk_free_limit", "mem_relative", "1.5"}, replies: set(disk),
			stdout: "Setting disk free limit on warren@h to 1.5 times the total RAM ...\n",
			reqs:   []string{overview, disk}, bodies: []string{"", `{"mem_relative":1.5}`}},
		{name: "disk limit json formatter is quiet", args: []string{"--formatter", "json", "set_disk_free_limit", "mem_relative", "0"}, replies: set(disk),
			reqs: []string{overview, disk}, bodies: []string{"", `{"mem_relative":0}`}},
		{name: "value refused by the server", args: []string{"set_vm_memory_high_watermark", "0"},
			replies: map[string]reply{overview: node, watermark: {400, `{"error":"bad_request","reason":"the memory watermark must be a positive fraction or number of bytes"}`}},
			code:    exitSoftware, stdout: "Setting memory threshold on warren@h to 0 ...\n", stderr: "Error:\nthe memory watermark must be a positive fraction or number of bytes\n",
			reqs: []string{overview, watermark}},
		{name: "permission refused", args: []string{"-q", "set_disk_free_limit", "1GB"},
			replies: map[string]reply{overview: node, disk: {403, `{"error":"not_authorised","reason":"Not administrator user"}`}},
			code:    exitNoPerm, stderr: "Error:\nNot administrator user\n",
			reqs: []string{overview, disk}},
		{name: "credentials refused", args: []string{"set_disk_free_limit", "1GB"},
			replies: map[string]reply{overview: {401, `{"error":"not_authorised","reason":"Login failed"}`}},
			code:    exitNoPerm, stderr: "Error:\nLogin failed\n",
			reqs: []string{overview}},
		{name: "node without alarms", args: []string{"-q", "set_disk_free_limit", "1GB"},
			replies: map[string]reply{overview: node},
			code:    exitSoftware, stderr: "Error:\nNode warren@h has no resource alarms to set\n",
			reqs: []string{overview, disk}},
		{name: "overview without a node", args: []string{"set_disk_free_limit", "1GB"},
			replies: map[string]reply{overview: {200, `{}`}},
			code:    exitSoftware, stderr: "no node name",
			reqs: []string{overview}},
	})
}

// TestAlarmLimitUsage checks the arguments refused before any request.
func TestAlarmLimitUsage(t *testing.T) {
	t.Parallel()
	usage := func(name string, args []string, stderr string) cmdCase {
		return cmdCase{name: name, args: args, code: exitUsage, stderr: stderr}
	}
	const (
		wm   = "set_vm_memory_high_watermark"
		disk = "set_disk_free_limit"
	)
	runCases(t, []cmdCase{
		usage("watermark without arguments", []string{wm}, "not enough arguments for "+wm+"\nUsage: warrenctl "+wm+" <fraction> | absolute <memory_limit>\n"),
		usage("absolute without a value", []string{wm, "absolute"}, "not enough arguments for "+wm),
		usage("absolute with two values", []string{wm, "absolute", "1GB", "2GB"}, "too many arguments for "+wm),
		usage("two fractions", []string{wm, "0.4", "0.5"}, "too many arguments for "+wm),
		usage("fraction above 1", []string{wm, "1.5"}, `The threshold should be a fraction between 0.0 and 1.0, not "1.5"`),
		usage("negative fraction", []string{wm, "--", "-0.1"}, "between 0.0 and 1.0"),
		usage("fraction that is not a number", []string{wm, "lots"}, `not "lots"`),
		usage("NaN fraction", []string{wm, "NaN"}, "between 0.0 and 1.0"),
		usage("unknown unit", []string{wm, "absolute", "512XB"}, `"512XB" is not an amount of bytes`),
		usage("fractional bytes", []string{wm, "absolute", "1.5GB"}, "is not an amount of bytes"),
		usage("absolute zero", []string{wm, "absolute", "0"}, "more than 0 bytes"),
		usage("disk limit without arguments", []string{disk}, "not enough arguments for "+disk),
		usage("mem_relative without a value", []string{disk, "mem_relative"}, "not enough arguments for "+disk),
		usage("two disk limits", []string{disk, "1GB", "2GB"}, "too many arguments for "+disk),
		usage("disk limit unknown unit", []string{disk, "10 parsecs"}, "is not an amount of bytes"),
		usage("disk limit not a number", []string{disk, "GB"}, "is not an amount of bytes"),
		usage("negative mem_relative", []string{disk, "mem_relative", "--", "-1"}, `0.0 or more, not "-1"`),
		usage("infinite mem_relative", []string{disk, "mem_relative", "Inf"}, "0.0 or more"),
		{name: "help", args: []string{"help", wm},
			stdout: "Usage: warrenctl " + wm + " <fraction> | absolute <memory_limit>\n\nSets the memory alarm's threshold: a fraction of RAM, or bytes (e.g. 2GiB)\n"},
		{name: "help flag", args: []string{disk, "--help"},
			stdout: "Usage: warrenctl " + disk + " <disk_limit> | mem_relative <fraction>\n\nSets the free disk space limit: bytes (e.g. 1GB), or a multiple of RAM\n"},
	})
}
