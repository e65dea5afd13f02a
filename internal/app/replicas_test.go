package app_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// TestTwoReplicasShareOneLimit runs two neonguard replicas on one PostgreSQL store and one Neon
// (the emulator, reached over HTTP as the neon backend), and sends 40 concurrent
// create_dev_branch calls on one free database, half to each replica. The free tier allows 10
// branches and main is one, so exactly 9 may succeed: the per-database lock is a PostgreSQL
// advisory lock, so the replicas cannot both pass one limit check.
func TestTwoReplicasShareOneLimit(t *testing.T) {
	pg := pgtest.StartServer(t)
	dsn := pg.NewDatabase(t)

	emuCfg := config.Default()
	emuCfg.DataDir = t.TempDir()
	emuCfg.Local.Postgres = "off"
	emuCfg.Local.OperationDelay = 5 * time.Millisecond
	emu, closeEmu, err := app.NewEmulator(context.Background(), emuCfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeEmu() })
	neonSrv := httptest.NewServer(emu)
	t.Cleanup(neonSrv.Close)
	creds := emu.Credentials()

	replica := func() *app.App {
		return newAppWith(t, nil, func(c *config.Config) {
			c.BackendMode = config.BackendNeon
			c.Neon.APIHost = neonSrv.URL + "/api/v2"
			c.Neon.FreeOrgID, c.Neon.FreeOrgAPIKey = creds.FreeOrgID, creds.FreeOrgAPIKey
			c.Neon.PaidOrgID, c.Neon.PaidOrgAPIKey = creds.PaidOrgID, creds.PaidOrgAPIKey
			c.Store = dsn
		})
	}
	r1, r2 := replica(), replica()
	secret := newTenantToken(t, r1, "shared", "free") // written through r1, read by r2
	urls := []string{serveHTTP(t, r1), serveHTTP(t, r2)}
	clients := []*client.Client{dialHTTP(t, urls[0], "streamable", secret), dialHTTP(t, urls[1], "sse", secret)}

	db := mustOK(t, call(t, clients[0], "create_database", map[string]any{"name": "contended"}), "create_database")
	id := str(db, "database_id")
	if id == "" {
		t.Fatalf("no database id: %v", db)
	}

	const calls = 40
	results := make([]result, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			results[i] = call(t, clients[i%2], "create_dev_branch", map[string]any{
				"database_id": id, "name": "dev-" + string(rune('a'+i/26)) + string(rune('a'+i%26)),
			})
		})
	}
	wg.Wait()
	ok, perReplica := 0, [2]int{}
	for i, r := range results {
		switch r.Code {
		case "":
			ok++
			perReplica[i%2]++
		case "BRANCH_LIMIT":
		default:
			t.Errorf("call %d: %s (want success or BRANCH_LIMIT)", i, r)
		}
	}
	if ok != 9 {
		t.Fatalf("%d create_dev_branch calls succeeded, want exactly 9", ok)
	}
	t.Logf("successes per replica: %v", perReplica)
	branches := mustOK(t, call(t, clients[1], "list_branches", map[string]any{"database_id": id}), "list_branches")
	if got := len(branches["branches"].([]any)); got != 10 {
		t.Fatalf("Neon holds %d branches, want 10 (main + 9)", got)
	}
}
