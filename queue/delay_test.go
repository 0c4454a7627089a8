package queue

import (
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers wire.Table
		want    int64
		ok      bool
	}{
		{"no headers", nil, 0, false},
		{"no x-delay", wire.Table{"other": int32(5)}, 0, false},
		{"int32", wire.Table{"x-delay": int32(5000)}, 5000, true},
		{"uint8", wire.Table{"x-delay": uint8(7)}, 7, true},
		{"int64", wire.Table{"x-delay": int64(MaxDelay)}, MaxDelay, true},
		{"past the maximum", wire.Table{"x-delay": int64(MaxDelay + 1)}, 0, false},
		{"string", wire.Table{"x-delay": "250"}, 250, true},
		{"string not a number", wire.Table{"x-delay": "soon"}, 0, false},
		{"double", wire.Table{"x-delay": 99.9}, 99, true},
		{"float", wire.Table{"x-delay": float32(3.5)}, 3, true},
		{"decimal", wire.Table{"x-delay": wire.Decimal{Scale: 2, Value: 12345}}, 123, true},
		{"zero", wire.Table{"x-delay": int32(0)}, 0, false},
		{"negative", wire.Table{"x-delay": int32(-10)}, 0, false},
		{"bool", wire.Table{"x-delay": true}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := (&wire.Properties{Headers: tt.headers}).Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := Delay(raw); got != tt.want || ok != tt.ok {
				t.Fatalf("Delay = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
