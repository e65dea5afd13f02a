package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type createDatabaseArgs struct {
	Name      string `json:"name" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9][A-Za-z0-9._-]*$" jsonschema_description:"Unique per tenant; reusing it returns the existing database." validate:"required,max=64,ident"`
	Region    string `json:"region,omitempty" jsonschema:"maxLength=64" jsonschema_description:"e.g. aws-us-east-2; default: server's." validate:"omitempty,max=64,ident"`
	PGVersion int    `json:"pg_version,omitempty" jsonschema:"minimum=14,maximum=18" jsonschema_description:"PostgreSQL major version; default: server's." validate:"omitempty,min=14,max=18"`
}

// CreateDatabase is create_database: idempotent per (tenant, name), so it is not destructive
// and a retry after a lost answer returns the same database.
func CreateDatabase(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "create_database",
		title:       "Create database",
		description: "Create a Postgres database (a Neon project) with the tier's limits; returns its database_id and connection string. Idempotent per name: an existing one is returned with created=false. Fails with DATABASE_LIMIT at the tier's limit.",
		hints:       hints{readOnly: false, destructive: false, idempotent: true},
		progress:    true,
	}, func(ctx context.Context, a *createDatabaseArgs) (*guard.CreateDatabaseResult, error) {
		return d.Guard.CreateDatabase(ctx, guard.CreateDatabaseInput{Name: a.Name, Region: a.Region, PGVersion: a.PGVersion})
	})
}
