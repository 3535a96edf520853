package notice

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain also catches goroutines leaked by tests without their own check.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
