package exchange

import (
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
)

// DeduplicationCacheArgs are a deduplication exchange's cache bounds.
type DeduplicationCacheArgs struct {
	Size int64 // x-cache-size: the most keys kept
	TTL  int64 // x-cache-ttl in milliseconds; 0 keeps keys until evicted
}

// DeduplicationCache reads and checks a deduplication exchange's
// arguments as the plugin does: x-cache-size is required, a positive
// integer (or a decimal string); x-cache-ttl, when given, the same;
// x-cache-persistence is "memory" or "disk".
func DeduplicationCache(args wire.Table) (DeduplicationCacheArgs, error) {
	var c DeduplicationCacheArgs
	var ok bool
	if c.Size, ok = positiveArg(args["x-cache-size"]); !ok {
		return c, wire.Errorf(wire.PreconditionFailed, "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0")
	}
	if v, present := args["x-cache-ttl"]; present {
		if c.TTL, ok = positiveArg(v); !ok {
			return c, wire.Errorf(wire.PreconditionFailed, "Invalid argument, 'x-cache-ttl' must be an integer greater than 0")
		}
	}
	if v, present := args["x-cache-persistence"]; present && v != "memory" && v != "disk" {
		return c, wire.Errorf(wire.PreconditionFailed, "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'")
	}
	return c, nil
}

// positiveArg reads a positive integer given as an integer or a decimal
// string.
func positiveArg(v any) (int64, bool) {
	n, ok := wire.Int(v)
	if s, isString := v.(string); isString {
		var err error
		n, err = strconv.ParseInt(s, 10, 64)
		ok = err == nil
	}
	return n, ok && n > 0
}
