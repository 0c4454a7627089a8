package main

import (
	"testing"

	"github.com/warrenmq/warren/flowcontrol"
)

// rabbitmq.conf's alarm keys: .relative takes a fraction, .absolute an
// amount with units; the last one given wins.
func TestSetLimit(t *testing.T) {
	t.Parallel()
	var l flowcontrol.Limit
	for _, tt := range []struct {
		v        string
		absolute bool
		want     flowcontrol.Limit
		ok       bool
	}{
		{"0.4", false, flowcontrol.Limit{Relative: 0.4}, true},
		{"1", false, flowcontrol.Limit{Relative: 1}, true},
		{"2GB", true, flowcontrol.Limit{Absolute: 2_000_000_000}, true},
		{"1073741824", true, flowcontrol.Limit{Absolute: 1 << 30}, true},
		{"-0.5", false, flowcontrol.Limit{Absolute: 1 << 30}, false},
		{"lots", true, flowcontrol.Limit{Absolute: 1 << 30}, false},
	} {
		err := setLimit(&l, tt.v, tt.absolute)
		if (err == nil) != tt.ok || l != tt.want {
			t.Errorf("setLimit(%q, absolute %v) = %+v, %v; want %+v", tt.v, tt.absolute, l, err, tt.want)
		}
	}
}
