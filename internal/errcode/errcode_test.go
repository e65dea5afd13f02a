package errcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestAs(t *testing.T) {
	cause := errors.New("neon said no")
	e := &Error{Code: BranchLimit, Message: "full", Hint: "delete one", Err: cause}
	wrapped := fmt.Errorf("guard: %w", e)
	if got := As(wrapped); got != e || !errors.Is(wrapped, cause) {
		t.Fatalf("As(%v) = %v", wrapped, got)
	}
	if As(cause) != nil {
		t.Fatal("As found an Error in a plain error")
	}
	if e.Error() != "BRANCH_LIMIT: full: neon said no" || Invalid("m", "h").Error() != "INVALID_ARGUMENT: m" {
		t.Fatalf("Error(): %q, %q", e.Error(), Invalid("m", "h").Error())
	}
}

// The values are the contract: spelled out here, not taken from the constants.
func TestDenial(t *testing.T) {
	for _, c := range []Code{"BRANCH_LIMIT", "SNAPSHOT_LIMIT", "RESTORE_WINDOW", "COMPUTE_RANGE",
		"QUOTA_EXCEEDED", "DATABASE_LIMIT", "NOT_FOUND", "INVALID_ARGUMENT", "RATE_LIMITED", "CONFIRMATION_REQUIRED", "FORBIDDEN"} {
		if !c.Denial() {
			t.Errorf("%s is a denial", c)
		}
	}
	for _, c := range []Code{"UPSTREAM", "", "INTERNAL", "UNAVAILABLE", "UNAUTHENTICATED"} {
		if c.Denial() {
			t.Errorf("%q is not a policy code but counts as a denial", c)
		}
	}
}
