package tools

import (
	"context"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type undoToTimeArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Timestamp  string `json:"timestamp,omitempty" jsonschema:"format=date-time,maxLength=64" jsonschema_description:"RFC 3339 time to restore to. Give this or ago." validate:"omitempty,max=64,rfc3339"`
	Ago        string `json:"ago,omitempty" jsonschema:"maxLength=32" jsonschema_description:"How far back, e.g. 15m, 2h, 1h30m, 1d. Give this or timestamp." validate:"omitempty,max=32,duration"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
}

// UndoToTime is undo_to_time: it rewrites the branch in place (the previous state survives only
// as an expiring backup branch), hence destructive; repeating it with ago moves the target.
func UndoToTime(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "undo_to_time",
		title:       "Undo to time",
		description: "Restore a branch in place to an earlier time; the connection string is unchanged and the prior state is kept as an expiring backup branch. Fails with RESTORE_WINDOW outside the tier's restore window.",
		hints:       hints{readOnly: false, destructive: true, idempotent: false},
		progress:    true,
	}, func(ctx context.Context, a *undoToTimeArgs) (*guard.UndoResult, error) {
		in := guard.UndoInput{DatabaseID: a.DatabaseID, Branch: mainAsDefault(a.Branch)}
		const hint = `pass exactly one, e.g. {"ago":"15m"} or {"timestamp":"2025-01-02T15:04:05Z"}`
		switch {
		case (a.Timestamp == "") == (a.Ago == ""):
			return nil, invalidArg(hint, "exactly one of timestamp or ago is required")
		case a.Timestamp != "":
			ts, err := time.Parse(time.RFC3339, a.Timestamp)
			if err != nil { // already checked by the validator; kept so no path trusts it blindly
				return nil, invalidArg(hint, "timestamp: must be an RFC 3339 time like 2025-01-02T15:04:05Z")
			}
			in.Timestamp = &ts
		default:
			ago, err := parseDuration(a.Ago)
			if err != nil {
				return nil, invalidArg(hint, "ago: %v", err)
			}
			in.Ago = ago
		}
		return d.Guard.UndoToTime(ctx, in)
	})
}

// mainAsDefault maps the documented default "main" to the guard's "" (= the root branch,
// whatever its Neon name or id is after a checkpoint restore).
func mainAsDefault(branch string) string {
	if branch == "main" {
		return ""
	}
	return branch
}
