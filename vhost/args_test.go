package vhost

import (
	"math"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

func TestValidateQueueArgs(t *testing.T) {
	t.Parallel()
	const what = "queue 'q' in vhost '/'"
	invalid := func(arg, problem string) string {
		return "PRECONDITION_FAILED - invalid arg '" + arg + "' for " + what + ": " + problem
	}
	none := queueArgs{kind: queue.DefaultKind, Settings: queue.NoSettings}
	with := func(edit func(s *queue.Settings)) queueArgs {
		qa := none
		edit(&qa.Settings)
		return qa
	}
	tests := []struct {
		name     string
		args     wire.Table
		want     queueArgs
		wantText string // "" for no error
	}{
		{name: "no arguments", args: nil, want: none},
		{name: "unknown arguments are ignored", args: wire.Table{"x-custom": "v"}, want: none},

		{name: "x-max-length long", args: wire.Table{"x-max-length": int64(5)}, want: with(func(s *queue.Settings) { s.MaxLength = 5 })},
		{name: "x-max-length byte", args: wire.Table{"x-max-length": int8(3)}, want: with(func(s *queue.Settings) { s.MaxLength = 3 })},
		{name: "x-max-length unsigned short", args: wire.Table{"x-max-length": uint16(7)}, want: with(func(s *queue.Settings) { s.MaxLength = 7 })},
		{name: "x-max-length zero", args: wire.Table{"x-max-length": int32(0)}, want: with(func(s *queue.Settings) { s.MaxLength = 0 })},
		{name: "x-max-length negative", args: wire.Table{"x-max-length": int32(-1)}, wantText: invalid("x-max-length", "{value_negative,-1}")},
		{name: "x-max-length-bytes", args: wire.Table{"x-max-length-bytes": uint32(1 << 20)}, want: with(func(s *queue.Settings) { s.MaxLengthBytes = 1 << 20 })},
		{name: "x-max-length-bytes negative", args: wire.Table{"x-max-length-bytes": int64(-5)}, wantText: invalid("x-max-length-bytes", "{value_negative,-5}")},

		{name: "x-expires", args: wire.Table{"x-expires": int32(1000)}, want: with(func(s *queue.Settings) { s.Expires = 1000 })},
		{name: "x-expires zero", args: wire.Table{"x-expires": int32(0)}, wantText: invalid("x-expires", "{value_zero,0}")},
		{name: "x-expires negative", args: wire.Table{"x-expires": int64(-2)}, wantText: invalid("x-expires", "{value_negative,-2}")},
		{name: "x-message-ttl zero", args: wire.Table{"x-message-ttl": int32(0)}, want: with(func(s *queue.Settings) { s.MessageTTL = 0 })},
		{name: "x-message-ttl largest", args: wire.Table{"x-message-ttl": int64(315360000000)}, want: with(func(s *queue.Settings) { s.MessageTTL = 315360000000 })},
		{name: "x-message-ttl too large", args: wire.Table{"x-message-ttl": int64(315360000001)}, wantText: invalid("x-message-ttl", "{value_too_large,315360000001}")},
		{name: "x-expires too large", args: wire.Table{"x-expires": int64(math.MaxInt64)}, wantText: invalid("x-expires", "{value_too_large,9223372036854775807}")},
		{name: "x-message-ttl negative", args: wire.Table{"x-message-ttl": int16(-1)}, wantText: invalid("x-message-ttl", "{value_negative,-1}")},
		{name: "x-consumer-timeout", args: wire.Table{"x-consumer-timeout": int64(60000)}, want: none},

		{name: "x-max-priority", args: wire.Table{"x-max-priority": uint8(10)}, want: with(func(s *queue.Settings) { s.MaxPriority = 10 })},
		{name: "x-max-priority 255", args: wire.Table{"x-max-priority": int32(255)}, want: with(func(s *queue.Settings) { s.MaxPriority = 255 })},
		{name: "x-delivery-limit", args: wire.Table{"x-delivery-limit": int32(3)}, want: with(func(s *queue.Settings) { s.DeliveryLimit = 3 })},
		{name: "x-delivery-limit negative", args: wire.Table{"x-delivery-limit": int32(-1)}, wantText: invalid("x-delivery-limit", "{value_negative,-1}")},
		{name: "x-max-priority 256", args: wire.Table{"x-max-priority": int32(256)}, wantText: invalid("x-max-priority", "{max_value_exceeded,256}")},
		{name: "x-max-priority negative", args: wire.Table{"x-max-priority": int32(-3)}, wantText: invalid("x-max-priority", "{value_negative,-3}")},

		{name: "x-overflow drop-head", args: wire.Table{"x-overflow": "drop-head"}, want: none},
		{name: "x-overflow reject-publish", args: wire.Table{"x-overflow": "reject-publish"}, want: with(func(s *queue.Settings) { s.Overflow = queue.RejectPublish })},
		{name: "x-overflow reject-publish-dlx", args: wire.Table{"x-overflow": "reject-publish-dlx"}, want: with(func(s *queue.Settings) { s.Overflow = queue.RejectPublishDLX })},
		{name: "x-overflow not a string", args: wire.Table{"x-overflow": int32(1)}, wantText: invalid("x-overflow", "{unacceptable_type,signedint}")},

		{name: "x-message-deduplication", args: wire.Table{"x-message-deduplication": true}, want: with(func(s *queue.Settings) { s.Deduplicate = true })},
		{name: "x-message-deduplication not a bool", args: wire.Table{"x-message-deduplication": "yes"}, wantText: invalid("x-message-deduplication", "{unacceptable_type,longstr}")},

		{name: "x-single-active-consumer", args: wire.Table{"x-single-active-consumer": true}, want: with(func(s *queue.Settings) { s.SingleActiveConsumer = true })},
		{name: "x-single-active-consumer false", args: wire.Table{"x-single-active-consumer": false}, want: none},
		{name: "x-single-active-consumer not a bool", args: wire.Table{"x-single-active-consumer": "true"}, wantText: invalid("x-single-active-consumer", "{unacceptable_type,longstr}")},

		{name: "dead-letter exchange and key", args: wire.Table{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead"}, want: with(func(s *queue.Settings) {
			s.DeadLetter, s.DeadLetterExchange, s.HasDeadLetterRoutingKey, s.DeadLetterRoutingKey = true, "dlx", true, "dead"
		})},
		{name: "dead-letter exchange alone", args: wire.Table{"x-dead-letter-exchange": ""}, want: with(func(s *queue.Settings) { s.DeadLetter = true })},
		{name: "dead-letter exchange not a string", args: wire.Table{"x-dead-letter-exchange": int32(1)}, wantText: invalid("x-dead-letter-exchange", "{unacceptable_type,signedint}")},
		{name: "dead-letter key not a string", args: wire.Table{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": true}, wantText: invalid("x-dead-letter-routing-key", "{unacceptable_type,bool}")},
		{name: "x-queue-mode", args: wire.Table{"x-queue-mode": "lazy"}, want: none},
		{name: "x-queue-mode not a string", args: wire.Table{"x-queue-mode": []byte("lazy")}, wantText: invalid("x-queue-mode", "{unacceptable_type,binary}")},

		{name: "x-queue-type classic", args: wire.Table{"x-queue-type": "classic"}, want: none},
		{name: "x-queue-type not a string", args: wire.Table{"x-queue-type": int32(1)}, wantText: invalid("x-queue-type", "{unacceptable_type,signedint}")},
		{name: "x-queue-type quorum", args: wire.Table{"x-queue-type": "quorum"}, wantText: invalid("x-queue-type", "queue type 'quorum' is not supported yet")},
		{name: "x-queue-type stream", args: wire.Table{"x-queue-type": "stream"}, wantText: invalid("x-queue-type", "queue type 'stream' is not supported yet")},

		{name: "everything together", args: wire.Table{
			"x-max-length": int64(10), "x-max-length-bytes": int64(1000), "x-overflow": "reject-publish",
			"x-single-active-consumer": true, "x-message-ttl": int32(5), "x-expires": int32(10),
			"x-max-priority": int8(5), "x-dead-letter-exchange": "dlx", "x-queue-type": "classic",
		}, want: with(func(s *queue.Settings) {
			s.MaxLength, s.MaxLengthBytes, s.Overflow, s.SingleActiveConsumer = 10, 1000, queue.RejectPublish, true
			s.MessageTTL, s.Expires, s.MaxPriority, s.DeadLetter, s.DeadLetterExchange = 5, 10, 5, true, "dlx"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := validateQueueArgs(testKinds(classic.NewKind(classic.Options{})), what, tt.args)
			if tt.wantText != "" {
				wantWireError(t, err, wire.PreconditionFailed, tt.wantText)
				return
			}
			if err != nil {
				t.Fatalf("validateQueueArgs: %v", err)
			}
			if got != tt.want {
				t.Fatalf("validateQueueArgs = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Integer arguments of a non-integer type: every AMQP type RabbitMQ may see.
func TestValidateQueueArgsIntegerTypes(t *testing.T) {
	t.Parallel()
	ints := []any{int8(1), uint8(1), int16(1), uint16(1), int32(1), uint32(1), int64(1)}
	for _, v := range ints {
		if _, err := validateQueueArgs(testKinds(classic.NewKind(classic.Options{})), "queue 'q' in vhost '/'", wire.Table{"x-max-length": v}); err != nil {
			t.Fatalf("x-max-length of type %s: %v", typeName(v), err)
		}
	}
}

func TestTypeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want string
	}{
		{true, "bool"}, {int8(1), "byte"}, {uint8(1), "unsignedbyte"}, {int16(1), "short"},
		{uint16(1), "unsignedshort"}, {int32(1), "signedint"}, {uint32(1), "unsignedint"},
		{int64(1), "long"}, {int(1), "long"}, {float32(1), "float"}, {float64(1), "double"},
		{wire.Decimal{}, "decimal"}, {"s", "longstr"}, {[]byte("b"), "binary"}, {[]any{}, "array"},
		{time.Unix(0, 0), "timestamp"}, {wire.Table{}, "table"}, {nil, "void"},
	}
	for _, tt := range tests {
		if got := typeName(tt.v); got != tt.want {
			t.Errorf("typeName(%T) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestValueString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want string
	}{
		{int32(-5), "-5"}, {uint8(7), "7"}, {"text", "text"}, {true, "true"}, {float64(1.5), "1.5"},
		{float32(0.25), "0.25"}, {[]any{}, "array"},
	}
	for _, tt := range tests {
		if got := valueString(tt.v); got != tt.want {
			t.Errorf("valueString(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
