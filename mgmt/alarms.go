package mgmt

import (
	"math"
	"net/http"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/flowcontrol"
)

// alarms is what the node's alarm monitor last saw; without one, the
// memory in use and no alarm.
func (s *Server) alarms() flowcontrol.Status {
	if s.d.Alarms == nil {
		return flowcontrol.Status{MemoryUsed: s.d.Node.Memory()}
	}
	return s.d.Alarms.Status()
}

// alarmList is the alarms in force as RabbitMQ's health check lists them.
func (s *Server) alarmList(st flowcontrol.Status) []object {
	var out []object
	if st.MemoryAlarm {
		out = append(out, object{"node": s.d.Node.Name, "resource": "memory"})
	}
	if st.DiskAlarm {
		out = append(out, object{"node": s.d.Node.Name, "resource": "disk"})
	}
	return out
}

// healthAlarms fails (503) while an alarm is in force. Warren is one
// node, so the cluster's alarms and the node's are the same.
func (s *Server) healthAlarms(local bool) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ *auth.User) error {
		list := s.alarmList(s.alarms())
		if len(list) == 0 {
			writeJSON(w, map[string]any{"status": "ok"})
			return nil
		}
		reason := "resource alarm(s) in effect in the cluster"
		if local {
			reason = "resource alarm(s) in effect on the node"
		}
		healthFailed(w, map[string]any{"reason": reason, "alarms": list})
		return nil
	}
}

// setMemoryWatermark changes the memory alarm's watermark, as rabbitmqctl
// set_vm_memory_high_watermark does (RabbitMQ's API has no such call;
// warrenctl uses this one): {"relative": 0.4} or {"absolute": "512MB"}.
func (s *Server) setMemoryWatermark(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return s.setAlarmLimit(w, r, "relative", (*flowcontrol.Monitor).SetMemoryWatermark)
}

// setDiskFreeLimit changes the disk alarm's limit, as rabbitmqctl
// set_disk_free_limit does: {"absolute": "1GB"} or {"mem_relative": 1.5}.
func (s *Server) setDiskFreeLimit(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return s.setAlarmLimit(w, r, "mem_relative", (*flowcontrol.Monitor).SetDiskFreeLimit)
}

// setAlarmLimit reads a limit, absolute or relative (under relativeKey),
// and applies it with set.
func (s *Server) setAlarmLimit(w http.ResponseWriter, r *http.Request, relativeKey string, set func(*flowcontrol.Monitor, flowcontrol.Limit) error) error {
	if r.PathValue("node") != s.d.Node.Name || s.d.Alarms == nil {
		return notFound()
	}
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	var l flowcontrol.Limit
	abs, hasAbs := body["absolute"]
	rel, hasRel := body[relativeKey]
	switch {
	case hasAbs == hasRel:
		return badRequest("give one of absolute and " + relativeKey)
	case hasAbs:
		n, err := bytesField(abs)
		if err != nil {
			return err
		}
		l.Absolute = n
	default:
		f, ok := rel.(float64)
		if !ok || f < 0 || math.IsNaN(f) {
			return badRequest(relativeKey + " must be a number, not negative")
		}
		l.Relative = f
	}
	if err := set(s.d.Alarms, l); err != nil {
		return badRequest(err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bytesField reads an amount of bytes: a whole number, or a string with
// rabbitmq.conf's units ("512MB").
func bytesField(v any) (uint64, error) {
	switch v := v.(type) {
	case float64:
		if v >= 0 && v == math.Trunc(v) && v < 1<<63 {
			return uint64(v), nil
		}
	case string:
		n, err := flowcontrol.ParseBytes(v)
		if err != nil {
			return 0, badRequest(err.Error())
		}
		return n, nil
	}
	return 0, badRequest("absolute must be a whole number of bytes")
}
