package pgtest

import (
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

var shared Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

func TestSharedServerDatabases(t *testing.T) {
	srv := shared.Server(t)
	if again := shared.Server(t); again != srv {
		t.Fatal("Shared started a second server")
	}
	ctx := t.Context()
	dsnA, dsnB := srv.NewDatabase(t), srv.NewDatabase(t)
	if dsnA == dsnB {
		t.Fatalf("two databases with one DSN %q", dsnA)
	}
	if !strings.Contains(dsnA, "sslmode=require") {
		t.Errorf("DSN %q does not require TLS", dsnA)
	}

	a, err := pgx.Connect(ctx, dsnA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	var ssl bool
	var user string
	if err := a.QueryRow(ctx, "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &user); err != nil {
		t.Fatal(err)
	}
	if !ssl || user != User {
		t.Errorf("ssl=%v user=%q, want TLS as %q", ssl, user, User)
	}
	// The role owns its database: it can create tables (as the store's migrations do).
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}

	b, err := pgx.Connect(ctx, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("databases are not isolated")
	}

	if _, err := pgx.Connect(ctx, strings.Replace(dsnA, srv.Password, "wrong", 1)); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestStartServerStops(t *testing.T) {
	var srv *Server
	t.Run("inner", func(t *testing.T) {
		srv = StartServer(t)
		c, err := pgx.Connect(t.Context(), srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close(t.Context())
	})
	if srv == nil {
		t.Skip("no server")
	}
	// The subtest's cleanup stopped the server and removed its files.
	select {
	case <-srv.proc.Exited():
	default:
		t.Error("server still running after cleanup")
	}
	if _, err := os.Stat(srv.root); !os.IsNotExist(err) {
		t.Errorf("server files left behind: %v", err)
	}
}
