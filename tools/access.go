package tools

import (
	"github.com/mark3labs/mcp-go/mcp"
)

// Tool groups: a deployment serves some of them (serve --tools, config tools; all by
// default). Every agent tool is in exactly one; the admin tools are in none.
const (
	GroupDatabases  = "databases"
	GroupVersioning = "versioning"
	GroupBranches   = "branches"
	GroupSQL        = "sql"
	GroupUsage      = "usage"
)

// Groups lists the tool groups.
func Groups() []string {
	return []string{GroupDatabases, GroupVersioning, GroupBranches, GroupSQL, GroupUsage}
}

// groupOf maps each agent tool to its group. A tool missing here is in no group and is never
// served: the tests make sure every tool of All has one.
var groupOf = map[string]string{
	"create_database":       GroupDatabases,
	"list_databases":        GroupDatabases,
	"get_connection_string": GroupDatabases,
	"checkpoint":            GroupVersioning,
	"list_checkpoints":      GroupVersioning,
	"restore_checkpoint":    GroupVersioning,
	"undo_to_time":          GroupVersioning,
	"create_dev_branch":     GroupBranches,
	"list_branches":         GroupBranches,
	"delete_dev_branch":     GroupBranches,
	"run_sql":               GroupSQL,
	"apply_migration":       GroupSQL,
	"list_migrations":       GroupSQL,
	"undo_migration":        GroupSQL,
	"describe_schema":       GroupSQL,
	"compare_schema":        GroupSQL,
	"get_usage":             GroupUsage,
	"describe_limits":       GroupUsage,
}

// GroupOf returns the group of an agent tool; "" for an admin tool or an unknown name.
func GroupOf(tool string) string { return groupOf[tool] }

// readsUnlessAsked are the tools that write only when an argument asks them to, so a principal
// that may only read can still call them to read: the server refuses the writes (AsksToWrite)
// and the guard refuses them again.
var readsUnlessAsked = map[string]bool{"run_sql": true}

// ReadOnlyView returns t as a principal that may only read sees it in tools/list, and whether
// such a principal may call t at all: a tool annotated read-only as it is; run_sql, which
// writes only with read_only=false (refused to such a principal), annotated read-only; any
// other tool not at all.
func ReadOnlyView(t mcp.Tool) (mcp.Tool, bool) {
	if ro := t.Annotations.ReadOnlyHint; ro != nil && *ro {
		return t, true
	}
	if !readsUnlessAsked[t.Name] {
		return t, false
	}
	t.Annotations = readOnly().annotation()
	t.Description += " Read-only for you: read_only=false is refused."
	return t, true
}

// AsksToWrite reports whether a call of a tool that writes only when asked (run_sql) asks to
// write: read_only=false. The decoder accepts only the exact argument name, so looking it up
// in the arguments before they are decoded sees what the handler will.
func AsksToWrite(tool string, args map[string]any) bool {
	if !readsUnlessAsked[tool] {
		return false
	}
	ro, ok := args["read_only"].(bool)
	return ok && !ro
}
