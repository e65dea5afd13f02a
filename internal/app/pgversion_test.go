package app_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// On the local backend a database runs the PostgreSQL major it reports: one that names none
// gets the newest installed, and one that asks for a major that is not installed is refused
// with the installed ones, never given another.
func TestLocalDatabasesRunTheirReportedMajor(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	installs, err := pgctl.FindInstallations(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	installed := pgctl.Majors(installs)
	newest := installed[0]
	if a.Config.Defaults.PGVersion != newest {
		t.Errorf("defaults.pg_version resolved to %d, want the newest installed, %d", a.Config.Defaults.PGVersion, newest)
	}
	c := connect(t, a)

	db := mustOK(t, call(t, c, "create_database", map[string]any{"name": "app"}), "create_database")
	if got, _ := db["pg_version"].(float64); int(got) != newest {
		t.Errorf("pg_version %v, want %d", db["pg_version"], newest)
	}
	conn := connectDB(t, str(db, "connection_string"))
	var num string
	if err := conn.QueryRow(context.Background(), "SHOW server_version_num").Scan(&num); err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(num); n/10000 != newest {
		t.Errorf("the database runs PostgreSQL %s, reports %d", num, newest)
	}

	missing := 0
	for v := 18; v >= 14; v-- {
		if !slices.Contains(installed, v) {
			missing = v
			break
		}
	}
	if missing == 0 {
		t.Skip("every PostgreSQL major Neon offers is installed")
	}
	r := call(t, c, "create_database", map[string]any{"name": "other", "pg_version": missing})
	if r.Code != "INVALID_ARGUMENT" {
		t.Fatalf("create_database pg_version %d: %s; want INVALID_ARGUMENT", missing, r)
	}
	for _, want := range []string{fmt.Sprintf("PostgreSQL %d is not installed", missing), "installed: " + strconv.Itoa(newest)} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q lacks %q", r.Message, want)
		}
	}
	list := mustOK(t, call(t, c, "list_databases", nil), "list_databases")
	if dbs, _ := list["databases"].([]any); len(dbs) != 1 {
		t.Errorf("databases after the refusal: %v, want only app", list["databases"])
	}
}
