package guard_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
)

// TestNeonErrorsMapToCodes: how a failed Neon call reaches the agent. Each failure is injected
// into list_checkpoints' one Neon read; the code, the message's key facts and the cause (kept
// for the logs) are checked.
func TestNeonErrorsMapToCodes(t *testing.T) {
	t.Parallel()
	const secret = "npg_LeakedRolePassword1"
	for _, tc := range []struct {
		name  string
		fault neontest.Fault
		code  errcode.Code
		facts []string
		cause error
	}{
		{"branch limit", neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeBranchesLimitExceeded, "limit"),
			errcode.BranchLimit, []string{"Neon's branch limit for this project is reached"}, neon.ErrBranchLimit},
		{"snapshot limit", neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeSnapshotsLimitExceeded, "limit"),
			errcode.SnapshotLimit, []string{"Neon's snapshot limit for this project is reached"}, neon.ErrSnapshotLimit},
		{"disk budget", neontest.Refuse(http.StatusUnprocessableEntity, "DISK_BUDGET_EXCEEDED", "the branch needs 2 GiB, 1 GiB is left"),
			errcode.QuotaExceeded, []string{"the branch needs 2 GiB, 1 GiB is left"}, nil},
		{"restore window", neontest.Refuse(http.StatusBadRequest, "", "timestamp is before retention window"),
			errcode.RestoreWindow, []string{"the time is outside the restore window"}, neon.ErrBadRequest},
		{"outcome unknown", neontest.LostAnswer(),
			errcode.Upstream, []string{"Neon's answer was lost and the outcome is unknown"}, neon.ErrOutcomeUnknown},
		{"not found", neontest.Refuse(http.StatusNotFound, "", "project not found"),
			errcode.NotFound, []string{"not found on Neon"}, neon.ErrNotFound},
		{"bad request", neontest.Refuse(http.StatusBadRequest, "", "name too long"),
			errcode.InvalidArgument, []string{"Neon refused the request: name too long"}, neon.ErrBadRequest},
		{"conflict", neontest.Refuse(http.StatusConflict, "", "project is locked by another operation"),
			errcode.InvalidArgument, []string{"Neon refused the request: project is locked"}, neon.ErrConflict},
		{"other 422", neontest.Refuse(http.StatusUnprocessableEntity, "SOMETHING_ELSE", "cannot"),
			errcode.InvalidArgument, []string{"Neon refused the request: cannot"}, nil},
		{"secret in Neon's text", neontest.Refuse(http.StatusBadRequest, "", "bad uri postgresql://u:"+secret+"@h/db"),
			errcode.InvalidArgument, []string{"Neon refused the request: bad uri postgresql://u:REDACTED@h/db"}, neon.ErrBadRequest},
		{"operation failed", neontest.FailedOperation("timeline_archive"),
			errcode.Upstream, []string{"a Neon operation failed"}, nil},
		{"unavailable", neontest.Refuse(http.StatusServiceUnavailable, "", "down"),
			errcode.Upstream, []string{"did not complete the request after retries (HTTP 503)"}, neon.ErrUnavailable},
		{"transport", neontest.Fault{Err: fmt.Errorf("neon: GET /projects/{project_id}/snapshots: %w", errors.New("connection reset"))},
			errcode.Upstream, []string{"did not complete the request after retries"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			db := e.createDB(alice, "shop")
			e.free.Fail("ListSnapshots", tc.fault)
			_, err := e.g.ListCheckpoints(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
			ge := wantCode(t, err, tc.code, append([]string{"list checkpoints: "}, tc.facts...)...)
			if ge.Hint == "" {
				t.Error("no hint")
			}
			// The cause stays in the chain, for the logs. (The fake hands out a copy of a
			// scripted *neon.APIError, with its route filled in.)
			var want, got *neon.APIError
			if errors.As(tc.fault.Err, &want) {
				if !errors.As(err, &got) || got.StatusCode != want.StatusCode || got.Code != want.Code {
					t.Errorf("the cause is not kept: %v", err)
				}
			} else if !errors.Is(err, tc.fault.Err) {
				t.Errorf("the cause is not kept: %v", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("err = %v, want it to match %v", err, tc.cause)
			}
			if strings.Contains(ge.Message+ge.Hint, secret) {
				t.Errorf("a secret reached the agent: %q", ge.Message)
			}
		})
	}
}
