package server

import (
	"strings"
	"testing"
)

// run_sql's parameters are never in the audit; its statement is, cut to 500 bytes.
func TestAuditKeepsSQLButNotParams(t *testing.T) {
	got := redactArgs(map[string]any{"database_id": "d1", "sql": "SELECT $1 " + strings.Repeat("x", 1000),
		"params": []any{"alice@example.com", 42}})
	if strings.Contains(got, "alice@example.com") || strings.Contains(got, "42") {
		t.Fatalf("parameters in the audit: %s", got)
	}
	if !strings.Contains(got, "SELECT $1") || !strings.Contains(got, `"params":"[not logged]"`) || len(got) > 700 {
		t.Fatalf("audit args: %s", got)
	}
}
