package mgmt

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp/wire"
)

// tableJSON renders an AMQP field table as RabbitMQ's API does: nested
// tables as objects, arrays as arrays, numbers as numbers, byte arrays as
// text, timestamps as seconds.
func tableJSON(t wire.Table) map[string]any {
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = valueJSON(v)
	}
	return out
}

func valueJSON(v any) any {
	switch v := v.(type) {
	case wire.Table:
		return tableJSON(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = valueJSON(e)
		}
		return out
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return base64.StdEncoding.EncodeToString(v)
	case time.Time:
		return v.Unix()
	case wire.Decimal:
		return float64(v.Value) / math.Pow10(int(v.Scale))
	case float32:
		return floatJSON(float64(v))
	case float64:
		return floatJSON(v)
	}
	if n, ok := wire.Int(v); ok {
		return n
	}
	return v
}

// floatJSON is a double as JSON; JSON has no NaN or infinities, which AMQP
// tables may carry (RabbitMQ refuses them when decoding), so those are
// given as text ("NaN", "+Inf", "-Inf").
func floatJSON(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

// argsJSON is a table as JSON, {} for none.
func argsJSON(t wire.Table) map[string]any {
	if t == nil {
		return map[string]any{}
	}
	return tableJSON(t)
}

// tableFromJSON turns JSON arguments (from a PUT body or a definitions
// file) into an AMQP field table, as RabbitMQ does: whole numbers become
// longs, fractions doubles, objects tables, arrays arrays.
func tableFromJSON(m map[string]any) (wire.Table, error) {
	if len(m) == 0 {
		return nil, nil
	}
	t := make(wire.Table, len(m))
	for k, v := range m {
		tv, err := valueFromJSON(v)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", k, err)
		}
		t[k] = tv
	}
	return t, nil
}

func valueFromJSON(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string, bool:
		return v, nil
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return f, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), nil
		}
		return v, nil
	case map[string]any:
		return tableFromJSON(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			ev, err := valueFromJSON(e)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value %v", v)
}

// boolField reads a JSON boolean that may also come as the string "true"
// or "false" (rabbitmqadmin sends strings); def when absent.
func boolField(v any, def bool) (bool, error) {
	switch v := v.(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, badRequest(fmt.Sprintf("%v is not a boolean", v))
}

// intField reads a JSON integer that may also come as a string; def when
// absent.
func intField(v any, def int64) (int64, error) {
	switch v := v.(type) {
	case nil:
		return def, nil
	case float64:
		// Out of range, the conversion would give any number.
		if v == math.Trunc(v) && v >= -(1<<63) && v < 1<<63 {
			return int64(v), nil
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, badRequest(fmt.Sprintf("%v is not an integer", v))
}

// stringField reads a JSON string; def when absent.
func stringField(v any, def string) (string, error) {
	switch v := v.(type) {
	case nil:
		return def, nil
	case string:
		return v, nil
	}
	return "", badRequest(fmt.Sprintf("%v is not a string", v))
}

// tagsField reads user or vhost tags: a comma-separated string or a list.
func tagsField(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return []string{}, nil
	case string:
		out := []string{}
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out, nil
	case []any:
		out := []string{}
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest("tags must be strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, badRequest("tags must be a string or a list")
}

// details is a rate object.
func details(r float64) map[string]any { return map[string]any{"rate": r} }
