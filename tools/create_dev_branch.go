package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type createDevBranchArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Name       string `json:"name" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9][A-Za-z0-9._-]*$" jsonschema_description:"Branch name, e.g. feat-auth." validate:"required,max=64,ident,ne=main"`
	From       string `json:"from,omitempty" jsonschema:"maxLength=64,default=main" jsonschema_description:"main, a checkpoint name (list_checkpoints), or an RFC 3339 time." validate:"omitempty,max=64,source"`
	TTL        string `json:"ttl,omitempty" jsonschema:"maxLength=32" jsonschema_description:"Lifetime, e.g. 24h or 7d; default and max per tier." validate:"omitempty,max=32,duration"`
}

// CreateDevBranch is create_dev_branch: it only adds a branch (not destructive), and each call
// makes a new one (not idempotent).
func CreateDevBranch(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "create_dev_branch",
		title:       "Create dev branch",
		description: "Create an isolated copy-on-write branch with its own connection string, deleted automatically at expires_at. Fails with BRANCH_LIMIT when the tier's branch limit is reached (every branch counts).",
		hints:       hints{readOnly: false, destructive: false, idempotent: false},
		progress:    true,
	}, func(ctx context.Context, a *createDevBranchArgs) (*guard.DevBranchResult, error) {
		in := guard.DevBranchInput{DatabaseID: a.DatabaseID, Name: a.Name, From: a.From}
		if in.From == "" {
			in.From = "main"
		}
		if a.TTL != "" {
			ttl, err := parseDuration(a.TTL)
			if err != nil {
				return nil, invalidArg("e.g. 24h or 7d", "ttl: %v", err)
			}
			in.TTL = ttl
		}
		return d.Guard.CreateDevBranch(ctx, in)
	})
}
