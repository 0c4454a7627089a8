package vhost

import (
	"math"
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// equivalentQueueArgs are the arguments a redeclare must repeat exactly.
var equivalentQueueArgs = []string{
	"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-delivery-limit", "x-expires", "x-max-length",
	"x-max-length-bytes", "x-max-priority", "x-message-ttl", "x-overflow", "x-queue-type", "x-single-active-consumer",
}

// queueArgs are a queue's parsed arguments.
type queueArgs struct {
	kind string // x-queue-type, a registered kind
	queue.Settings
}

// validateQueueArgs checks the arguments RabbitMQ checks and parses the ones
// Warren acts on into the queue's settings; x-queue-type must name one of
// kinds. Unknown arguments are accepted and ignored, as in RabbitMQ. This is
// the one place a queue's settings come from, so that policies can feed the
// same keys through it later.
func validateQueueArgs(kinds *queue.Kinds, what string, args wire.Table) (queueArgs, error) {
	qa := queueArgs{kind: queue.DefaultKind, Settings: queue.NoSettings}
	for k, v := range args {
		var problem string
		switch k {
		case "x-expires":
			if problem = intArg(v, 1, wire.MaxExpiration); problem == "" {
				qa.Expires, _ = intValue(v)
			}
		case "x-message-ttl":
			if problem = intArg(v, 0, wire.MaxExpiration); problem == "" {
				qa.MessageTTL, _ = intValue(v)
			}
		case "x-consumer-timeout":
			problem = intArg(v, 0, math.MaxInt64)
		case "x-max-length":
			if problem = intArg(v, 0, math.MaxInt64); problem == "" {
				qa.MaxLength, _ = intValue(v)
			}
		case "x-max-length-bytes":
			if problem = intArg(v, 0, math.MaxInt64); problem == "" {
				qa.MaxLengthBytes, _ = intValue(v)
			}
		case "x-delivery-limit":
			if problem = intArg(v, 0, math.MaxInt64); problem == "" {
				qa.DeliveryLimit, _ = intValue(v)
			}
		case "x-max-priority":
			if problem = intArg(v, 0, math.MaxInt64); problem == "" {
				n, _ := intValue(v)
				if n > 255 {
					problem = "{max_value_exceeded," + strconv.FormatInt(n, 10) + "}"
				}
				qa.MaxPriority = uint8(n)
			}
		case "x-overflow":
			s, isString := v.(string)
			var known bool
			qa.Overflow, known = queue.ParseOverflow(s)
			switch {
			case !isString:
				problem = "{unacceptable_type," + typeName(v) + "}"
			case !known:
				problem = "invalid_overflow"
			}
		case "x-dead-letter-exchange":
			s, ok := v.(string)
			if !ok {
				problem = "{unacceptable_type," + typeName(v) + "}"
			}
			qa.DeadLetter, qa.DeadLetterExchange = ok, s
		case "x-dead-letter-strategy":
			s, ok := v.(string)
			switch {
			case !ok:
				problem = "{unacceptable_type," + typeName(v) + "}"
			case s != "at-most-once" && s != "at-least-once":
				problem = "{unacceptable_value," + erlangValue(v) + "}"
			}
			qa.DeadLetterAtLeastOnce = s == "at-least-once"
		case "x-dead-letter-routing-key":
			s, ok := v.(string)
			if !ok {
				problem = "{unacceptable_type," + typeName(v) + "}"
			}
			qa.HasDeadLetterRoutingKey, qa.DeadLetterRoutingKey = ok, s
		case "x-queue-mode":
			s, ok := v.(string)
			switch {
			case !ok:
				problem = "{unacceptable_type," + typeName(v) + "}"
			case s != "default" && s != "lazy":
				problem = "\"unsupported queue mode '" + s + "'\""
			}
		case "x-message-deduplication":
			b, ok := v.(bool)
			if !ok {
				problem = "{unacceptable_type," + typeName(v) + "}"
			}
			qa.Deduplicate = b
		case "x-single-active-consumer":
			b, ok := v.(bool)
			if !ok {
				problem = "{unacceptable_type," + typeName(v) + "}"
			}
			qa.SingleActiveConsumer = b
		case "x-queue-type":
			s, ok := v.(string)
			switch {
			case !ok:
				problem = "{unacceptable_type," + typeName(v) + "}"
			case kinds.Lookup(s) == nil:
				return qa, wire.Errorf(wire.PreconditionFailed, "invalid arg 'x-queue-type' for "+what+": queue type '"+s+"' is not supported yet")
			default:
				qa.kind = s
			}
		}
		if problem != "" {
			return qa, wire.Errorf(wire.PreconditionFailed, "invalid arg '"+k+"' for "+what+": "+problem)
		}
	}
	if qa.HasDeadLetterRoutingKey && !qa.DeadLetter {
		return qa, wire.Errorf(wire.PreconditionFailed, "invalid arg 'x-dead-letter-routing-key' for "+what+": routing_key_but_no_dlx_defined")
	}
	return qa, nil
}

// intValue returns an integer argument's value.
func intValue(v any) (int64, bool) { return wire.Int(v) }

// intArg checks an integer argument's type and range, returning RabbitMQ's
// description of the problem or "".
func intArg(v any, lo, hi int64) string {
	n, ok := intValue(v)
	switch {
	case !ok:
		return "\"expected integer, got " + typeName(v) + "\""
	case n < 0 && lo >= 0:
		return "{value_negative," + strconv.FormatInt(n, 10) + "}"
	case n == 0 && lo > 0:
		return "{value_zero,0}"
	case n > hi:
		return "{value_too_large," + strconv.FormatInt(n, 10) + "}"
	}
	return ""
}

// typeName is RabbitMQ's name for a field value's AMQP type.
func typeName(v any) string { return wire.TypeName(v) }

// valueString renders a simple field value for error texts.
func valueString(v any) string {
	if n, ok := intValue(v); ok {
		return strconv.FormatInt(n, 10)
	}
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return typeName(v)
}
