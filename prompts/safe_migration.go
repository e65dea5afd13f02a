package prompts

import "github.com/mark3labs/mcp-go/server"

// SafeMigration is safe_migration: checkpoint, apply in one transaction, verify, restore if
// broken.
func SafeMigration() server.ServerPrompt {
	return newPrompt(spec{
		name:        "safe_migration",
		title:       "Safe migration",
		description: "Apply a schema or data migration with a checkpoint to restore if it goes wrong.",
		args: []arg{
			{name: "database_id", description: "database to migrate (from list_databases)", required: true, max: 64, check: checkIdent},
			{name: "change", description: "the migration to apply, in words or SQL", required: true, max: 8000},
		},
	})
}
