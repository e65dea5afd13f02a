package guard

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
)

// codeDiskBudgetExceeded is the local emulator's 422 code (controlplane.CodeDiskBudgetExceeded)
// for a new project or branch that would not fit its disk budget or free-space margin.
const codeDiskBudgetExceeded = "DISK_BUDGET_EXCEEDED"

// upstream turns a failed Neon call into an error the agent can act on. The message names what
// failed and Neon's own code (redacted); the cause stays in Err for the logs.
// A hint, when given, replaces the generic one for an outcome Neon left unknown.
func upstream(what string, err error, unknownHint ...string) error {
	if err == nil {
		return nil
	}
	if ge := errcode.As(err); ge != nil {
		return ge
	}
	var apiErr *neon.APIError
	detail := ""
	if errors.As(err, &apiErr) {
		detail = neon.Redact(apiErr.Message)
	}
	switch {
	case errors.Is(err, neon.ErrBranchLimit):
		return &errcode.Error{Code: errcode.BranchLimit, Message: what + ": Neon's branch limit for this project is reached",
			Hint: "delete a dev or backup branch with delete_dev_branch (list_branches shows them)", Err: err}
	case errors.Is(err, neon.ErrSnapshotLimit):
		return &errcode.Error{Code: errcode.SnapshotLimit, Message: what + ": Neon's snapshot limit for this project is reached",
			Hint: "call checkpoint with replace=true", Err: err}
	case apiErr != nil && apiErr.StatusCode == http.StatusUnprocessableEntity && apiErr.Code == codeDiskBudgetExceeded:
		return &errcode.Error{Code: errcode.QuotaExceeded, Message: what + ": " + detail, // the emulator's figures
			Hint: "delete dev or backup branches you no longer need (list_branches shows them, delete_dev_branch removes one), then retry; " +
				"if that is not enough, the operator can delete a database, free disk space or raise local.disk_budget", Err: err}
	case errors.Is(err, neon.ErrBadRequest) && strings.Contains(detail, "retention window"):
		return &errcode.Error{Code: errcode.RestoreWindow, Message: what + ": the time is outside the restore window",
			Hint: "call describe_limits for the restore window; use a more recent time or restore_checkpoint", Err: err}
	case errors.Is(err, neon.ErrOutcomeUnknown):
		hint := "list the database's branches or checkpoints to see whether it happened before retrying"
		if len(unknownHint) > 0 {
			hint = unknownHint[0]
		}
		return &errcode.Error{Code: errcode.Upstream, Message: what + ": Neon's answer was lost and the outcome is unknown",
			Hint: hint, Err: err}
	case errors.Is(err, neon.ErrNotFound):
		return &errcode.Error{Code: errcode.NotFound, Message: what + ": not found on Neon (it may have expired or been deleted)",
			Hint: "call list_branches or list_checkpoints to see what exists", Err: err}
	case errors.Is(err, neon.ErrBadRequest), errors.Is(err, neon.ErrConflict),
		apiErr != nil && apiErr.StatusCode == http.StatusUnprocessableEntity:
		msg := what + ": Neon refused the request"
		if detail != "" {
			msg += ": " + detail
		}
		return &errcode.Error{Code: errcode.InvalidArgument, Message: msg, Hint: "check the arguments and try again", Err: err}
	}
	var opErr *neon.OperationError
	if errors.As(err, &opErr) {
		return &errcode.Error{Code: errcode.Upstream, Message: what + ": a Neon operation failed",
			Hint: "try again; if it keeps failing, check the database with list_branches", Err: err}
	}
	msg := what + ": Neon did not complete the request after retries"
	if apiErr != nil {
		msg += " (HTTP " + strconv.Itoa(apiErr.StatusCode) + ")"
	}
	return &errcode.Error{Code: errcode.Upstream, Message: msg, Hint: "try again in a minute; list_branches or list_checkpoints shows what exists now", Err: err}
}
