package mgmt

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The alarms as an operator sees and sets them: /api/nodes, the health
// checks, the metrics, and the watermark and disk limit changed at run
// time, which block and unblock publishers.
func TestAlarms(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	node := func() map[string]any {
		return fx.do(t, "GET", "/api/nodes/"+nodeName, nil).obj(t, 200)
	}
	fields(t, "node", node(), map[string]any{"mem_used": 100_000, "mem_limit": 600_000, "mem_alarm": false,
		"disk_free": 100_000_000, "disk_free_limit": 50_000_000, "disk_free_alarm": false})
	fx.do(t, "GET", "/api/health/checks/alarms", nil).want(t, 200)

	conn, ch := fx.dial(t, adminCred)
	blocked := conn.NotifyBlocked(make(chan amqp091.Blocking, 2))
	if err := ch.Publish("", "nowhere", false, false, amqp091.Publishing{}); err != nil { // a publisher now
		t.Fatal(err)
	}
	path := "/api/nodes/" + nodeName
	fx.run(t, []step{
		{"watermark below use", "PUT", path + "/vm-memory-high-watermark", map[string]any{"absolute": "50kB"}, 204},
		{"both forms", "PUT", path + "/vm-memory-high-watermark", map[string]any{"absolute": 1, "relative": 0.5}, 400},
		{"neither", "PUT", path + "/vm-memory-high-watermark", map[string]any{}, 400},
		{"bad unit", "PUT", path + "/disk-free-limit", map[string]any{"absolute": "5 parsecs"}, 400},
		{"negative", "PUT", path + "/disk-free-limit", map[string]any{"mem_relative": -1}, 400},
		{"other node", "PUT", "/api/nodes/rabbit@elsewhere/disk-free-limit", map[string]any{"mem_relative": 1}, 404},
		{"GET is not allowed", "GET", path + "/disk-free-limit", nil, 405},
	})
	fields(t, "node", node(), map[string]any{"mem_limit": 50_000, "mem_alarm": true})
	r := fx.do(t, "GET", "/api/health/checks/local-alarms", nil).obj(t, 503)
	fields(t, "check", r, map[string]any{"status": "failed", "reason": "resource alarm(s) in effect on the node",
		"alarms": []any{map[string]any{"node": nodeName, "resource": "memory"}}})
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on memory" {
			t.Fatalf("got %+v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not blocked")
	}
	// Disk: a limit relative to the memory available (1,000,000 bytes).
	fx.do(t, "PUT", path+"/disk-free-limit", map[string]any{"mem_relative": 200.0}).want(t, 204)
	fields(t, "node", node(), map[string]any{"disk_free_limit": 200_000_000, "disk_free_alarm": true})
	if v, ok := value(fx.scrape(t, "/metrics"), "rabbitmq_alarms_free_disk_space_watermark"); !ok || v != 1 {
		t.Fatalf("rabbitmq_alarms_free_disk_space_watermark = %v, %v", v, ok)
	}
	fx.do(t, "PUT", path+"/disk-free-limit", map[string]any{"absolute": 1000}).want(t, 204)
	fx.do(t, "PUT", path+"/vm-memory-high-watermark", map[string]any{"relative": 0.6}).want(t, 204)
	fx.do(t, "GET", "/api/health/checks/alarms", nil).want(t, 200)
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("got %+v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not unblocked")
	}
	fams := fx.scrape(t, "/metrics")
	for name, want := range map[string]float64{"rabbitmq_alarms_memory_used_watermark": 0, "rabbitmq_alarms_free_disk_space_watermark": 0,
		"rabbitmq_resident_memory_limit_bytes": 600_000, "rabbitmq_disk_space_available_limit_bytes": 1000} {
		if v, ok := value(fams, name); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, want)
		}
	}
	// Only administrators change them.
	fx.addUser(t, "mon", []string{"monitoring"}, "/")
	fx.call(t, "mon:pw", "PUT", path+"/disk-free-limit", map[string]any{"absolute": 1000}).want(t, 403)
}
