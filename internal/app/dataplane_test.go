package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neonlocal/spectest"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// pgConfig turns the data plane on in a data dir PostgreSQL's user can reach.
func pgConfig(dir string) func(*config.Config) {
	return func(c *config.Config) {
		c.DataDir = dir
		c.Local.Postgres = "on"
	}
}

func newPGApp(t *testing.T, dir string) *app.App {
	t.Helper()
	pgtest.Require(t)
	return newAppWith(t, spectestWrap(t), pgConfig(dir))
}

// connectDB opens a connection with the URI exactly as the tool returned it.
func connectDB(t *testing.T, uri string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connect %s: %v", neon.Redact(uri), err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// rows returns the values of t(n), sorted.
func rows(t *testing.T, uri string) []int {
	t.Helper()
	conn := connectDB(t, uri)
	var out []int
	r, err := conn.Query(context.Background(), "SELECT n FROM t ORDER BY n")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	for r.Next() {
		var n int
		if err := r.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(context.Background())
	return out
}

func insert(t *testing.T, uri string, from, to int) {
	t.Helper()
	conn := connectDB(t, uri)
	exec(t, conn, "CREATE TABLE IF NOT EXISTS t (n int PRIMARY KEY)")
	exec(t, conn, "INSERT INTO t SELECT generate_series($1::int, $2::int)", from, to)
	_ = conn.Close(context.Background())
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func serverNow(t *testing.T, uri string) time.Time {
	t.Helper()
	conn := connectDB(t, uri)
	defer conn.Close(context.Background())
	var now time.Time
	if err := conn.QueryRow(context.Background(), "SELECT now()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now.UTC()
}

func createDBWithURI(t *testing.T, c *client.Client, name string) (id, uri string) {
	t.Helper()
	db := mustOK(t, call(t, c, "create_database", map[string]any{"name": name}), "create_database")
	return str(db, "database_id"), str(db, "connection_string")
}

func connURI(t *testing.T, c *client.Client, id, branch string) string {
	t.Helper()
	args := map[string]any{"database_id": id}
	if branch != "" {
		args["branch"] = branch
	}
	return str(mustOK(t, call(t, c, "get_connection_string", args), "get_connection_string"), "connection_string")
}

func TestCheckpointThenRestoreGivesTheRowsAtTheCheckpoint(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "shop")

	insert(t, uri, 1, 3)
	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "three"}), "checkpoint")
	insert(t, uri, 4, 5)
	if got := rows(t, uri); !slices.Equal(got, seq(1, 5)) {
		t.Fatalf("before restore: %v", got)
	}
	mustOK(t, call(t, c, "restore_checkpoint", map[string]any{"database_id": id, "checkpoint": "three"}), "restore_checkpoint")
	if got := rows(t, uri); !slices.Equal(got, seq(1, 3)) {
		t.Fatalf("after restore, on the same connection string: %v, want [1 2 3]", got)
	}
	if now := connURI(t, c, id, ""); now != uri {
		t.Errorf("the connection string changed: %s → %s", neon.Redact(uri), neon.Redact(now))
	}
}

func TestUndoToTimeGivesTheRowsAtThatTime(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "blog")

	insert(t, uri, 1, 10)
	time.Sleep(1100 * time.Millisecond)
	at := serverNow(t, uri)
	time.Sleep(1100 * time.Millisecond)
	insert(t, uri, 11, 20)

	res := mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": at.Format(time.RFC3339Nano)}), "undo_to_time")
	if got := rows(t, uri); !slices.Equal(got, seq(1, 10)) {
		t.Fatalf("after undo: %v, want 1..10", got)
	}
	if now := connURI(t, c, id, ""); now != uri {
		t.Errorf("the connection string changed")
	}
	backup := str(res["backup_branch"].(map[string]any), "name")
	if got := rows(t, connURI(t, c, id, backup)); !slices.Equal(got, seq(1, 20)) {
		t.Fatalf("backup branch %s holds %v, want 1..20", backup, got)
	}
	// Writes after the undo work, on the same URI.
	insert(t, uri, 100, 100)
	if got := rows(t, uri); !slices.Equal(got, append(seq(1, 10), 100)) {
		t.Fatalf("after a write: %v", got)
	}
}

func TestDevBranchesSeeTheirSourceAndNeverWriteToMain(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "app")

	insert(t, uri, 1, 2)
	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "two"}), "checkpoint")
	time.Sleep(1100 * time.Millisecond)
	at := serverNow(t, uri)
	time.Sleep(1100 * time.Millisecond)
	insert(t, uri, 3, 4)

	cases := []struct {
		name, from string
		want       []int
	}{
		{"from-main", "main", seq(1, 4)},
		{"from-checkpoint", "two", seq(1, 2)},
		{"from-time", at.Format(time.RFC3339Nano), seq(1, 2)},
	}
	for _, tc := range cases {
		dev := mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": tc.name, "from": tc.from}), tc.name)
		devURI := str(dev, "connection_string")
		if devURI == uri {
			t.Fatalf("%s: a dev branch must have its own connection string", tc.name)
		}
		if got := rows(t, devURI); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees %v, want %v", tc.name, got, tc.want)
		}
		insert(t, devURI, 1000, 1000)
	}
	if got := rows(t, uri); !slices.Equal(got, seq(1, 4)) {
		t.Fatalf("main after dev writes: %v, want 1..4", got)
	}
}

func TestSuspendedEndpointWakesOnConnect(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "sleepy")
	insert(t, uri, 1, 1)

	creds := a.Emulator.Credentials()
	api, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: creds.FreeOrgAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := api.ListEndpoints(context.Background(), id)
	if err != nil || len(eps) != 1 {
		t.Fatalf("endpoints: %v %v", eps, err)
	}
	if err := suspendEndpoint(a, creds.FreeOrgAPIKey, id, eps[0].ID); err != nil {
		t.Fatal(err)
	}
	// The suspend runs as an operation: wait until the compute is idle.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		eps, err := api.ListEndpoints(context.Background(), id)
		if err == nil && eps[0].CurrentState == neon.EndpointStateIdle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint never became idle: %v %v", eps, err)
		}
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1}) {
		t.Fatalf("after wake: %v", got)
	}
}

func TestDataSurvivesARestart(t *testing.T) {
	dir := pgtest.ReachableDir(t)
	a := newPGApp(t, dir)
	c := connect(t, a)
	_, uri := createDBWithURI(t, c, "durable")
	insert(t, uri, 1, 7)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newPGApp(t, dir)
	c2 := connect(t, b)
	list := mustOK(t, call(t, c2, "list_databases", nil), "list")["databases"].([]any)
	if len(list) != 1 {
		t.Fatalf("after restart: %d databases", len(list))
	}
	if got := rows(t, uri); !slices.Equal(got, seq(1, 7)) {
		t.Fatalf("after restart, same URI: %v", got)
	}
}

// suspendEndpoint suspends a compute through the API and waits until it is idle.
func suspendEndpoint(a *app.App, key, projectID, endpointID string) error {
	url := fmt.Sprintf("%s/projects/%s/endpoints/%s/suspend", a.EmulatorURL, projectID, endpointID)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, err := http.NewRequest(http.MethodPost, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusLocked:
			continue
		default:
			return fmt.Errorf("suspend: HTTP %d", resp.StatusCode)
		}
	}
	return errors.New("suspend: project stayed locked")
}

func spectestWrap(t *testing.T) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler { return spectest.Wrap(t, h) }
}
