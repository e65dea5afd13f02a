package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// tenant inactive and tenant delete-database on the local backend (API only: the commands
// are about Neon projects, not their data).
func TestTenantInactiveAndDeleteDatabase(t *testing.T) {
	t.Setenv("NEONGUARD_CONFIG", "")
	t.Setenv("NEONGUARD_LOCAL_POSTGRES", "off")
	dir := t.TempDir()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, dir, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	var db struct {
		DatabaseID string `json:"database_id"`
	}
	if err := json.Unmarshal([]byte(mustRun("call", "create_database", `{"name":"shop"}`)), &db); err != nil || db.DatabaseID == "" {
		t.Fatalf("create_database: %v %+v", err, db)
	}

	if out := mustRun("tenant", "inactive", "--days", "1"); !strings.Contains(out, "no database has been inactive for 1 days") {
		t.Fatalf("inactive --days 1: %q", out)
	}
	out := mustRun("tenant", "inactive", "--days", "0", "--tenant", "local")
	row := regexp.MustCompile(`(?m)^local\s+` + regexp.QuoteMeta(db.DatabaseID) + `\s+shop\s+\d{4}-\d\d-\d\dT\S+Z`)
	if !strings.Contains(out, "TENANT") || !row.MatchString(out) {
		t.Fatalf("inactive --days 0: %q", out)
	}
	if _, err := runCLI(t, dir, "tenant", "inactive"); err == nil || !strings.Contains(err.Error(), "--days") {
		t.Fatalf("inactive without --days: %v", err)
	}
	if _, err := runCLI(t, dir, "tenant", "inactive", "--days", "1", "--tenant", "ghost"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("inactive for an unknown tenant: %v", err)
	}

	if _, err := runCLI(t, dir, "tenant", "delete-database", "local", db.DatabaseID); err == nil || !strings.Contains(err.Error(), "--confirm") {
		t.Fatalf("delete without --confirm: %v", err)
	}
	if _, err := runCLI(t, dir, "tenant", "delete-database", "local", db.DatabaseID, "--confirm", "shop2"); err == nil || !strings.Contains(err.Error(), "confirm_name does not match") {
		t.Fatalf("delete with the wrong name: %v", err)
	}
	if _, err := runCLI(t, dir, "tenant", "delete-database", "other", db.DatabaseID, "--confirm", "shop"); err == nil || !strings.Contains(err.Error(), "has no database") {
		t.Fatalf("delete under another tenant: %v", err)
	}
	if out := mustRun("tenant", "delete-database", "local", db.DatabaseID, "--confirm", "shop"); !strings.Contains(out, "deleted database "+db.DatabaseID+" (shop) of tenant local") {
		t.Fatalf("delete: %q", out)
	}
	if out := mustRun("tenant", "delete-database", "local", db.DatabaseID, "--confirm", "shop"); !strings.Contains(out, "was already deleted") {
		t.Fatalf("delete again: %q", out)
	}
	if out := mustRun("call", "list_databases"); strings.Contains(out, db.DatabaseID) {
		t.Fatalf("list_databases after the delete: %q", out)
	}
	if out := mustRun("tenant", "inactive", "--days", "0"); strings.Contains(out, db.DatabaseID) {
		t.Fatalf("inactive lists the deleted database: %q", out)
	}
}
