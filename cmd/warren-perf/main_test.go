package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a producer, consumer, reader or fake
// broker goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
