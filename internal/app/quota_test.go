package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// Usage comes from real activity, and a project over a quota is handled as on Neon: over the
// data-transfer quota its computes are suspended and connections refused; over the logical
// size quota its writes fail.
func TestUsageFromRealActivityAndQuotas(t *testing.T) {
	pgtest.Require(t)
	a := newAppWith(t, spectestWrap(t), pgConfig(pgtest.ReachableDir(t)), func(c *config.Config) {
		free := c.Policy.Tiers["free"]
		free.Quota.LogicalSizeBytes = 20 << 20 // 20 MiB
		free.Quota.DataTransferBytes = 64 << 20
		c.Policy.Tiers["free"] = free
	})
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "busy")
	ctx := context.Background()

	conn := connectDB(t, uri)
	exec(t, conn, "CREATE TABLE big (n int, pad text)")
	exec(t, conn, "INSERT INTO big SELECT g, repeat('x', 1000) FROM generate_series(1, 30000) g") // ~30 MB
	var sum int64
	if err := conn.QueryRow(ctx, "SELECT sum(length(pad)) FROM big").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)

	a.Emulator.CollectUsage(ctx)
	usage := mustOK(t, call(t, c, "get_usage", map[string]any{"database_id": id}), "get_usage")
	metrics := map[string]map[string]any{}
	for _, m := range usage["databases"].([]any)[0].(map[string]any)["metrics"].([]any) {
		mm := m.(map[string]any)
		metrics[mm["name"].(string)] = mm
	}
	for _, name := range []string{"written_data_bytes", "logical_size_bytes", "data_transfer_bytes"} {
		if used, _ := metrics[name]["used"].(float64); used <= 0 {
			t.Errorf("%s used = %v after real activity, want > 0", name, metrics[name]["used"])
		}
	}
	if lvl := metrics["logical_size_bytes"]["level"]; lvl != "exceeded" {
		t.Errorf("logical size level = %v, want exceeded (30 MB in a 20 MiB quota)", lvl)
	}

	// Over the logical size quota: reads work, writes fail.
	conn = connectDB(t, uri)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM big").Scan(&n); err != nil || n != 30000 {
		t.Fatalf("read over the size quota: %d, %v", n, err)
	}
	_, err := conn.Exec(ctx, "INSERT INTO big VALUES (0, 'more')")
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write over the size quota: %v, want a read-only error", err)
	}
	_ = conn.Close(ctx)

	// Raising the quota (here: dropping it) lets writes through again.
	if err := setProjectQuota(a, id, `{"logical_size_bytes": 0}`); err != nil {
		t.Fatal(err)
	}
	a.Emulator.CollectUsage(ctx)
	conn = connectDB(t, uri)
	exec(t, conn, "INSERT INTO big VALUES (0, 'more')")
	_ = conn.Close(ctx)

	// Over the data-transfer quota: the computes are suspended and connections refused.
	if err := setProjectQuota(a, id, `{"data_transfer_bytes": 1000}`); err != nil {
		t.Fatal(err)
	}
	a.Emulator.CollectUsage(ctx)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c2, err := pgx.Connect(cctx, uri)
	if err == nil {
		_ = c2.Close(ctx)
		t.Fatal("a project over its transfer quota still accepts connections")
	}
	// With sslmode=require the client still reads why (the proxy answers TLS to refuse).
	if !strings.Contains(err.Error(), "exceeded the data transfer quota") {
		t.Errorf("refusal over the transfer quota: %v, want the reason", err)
	}
	// The guard checks the tier's quotas itself: 30 MB against the tier's 20 MiB.
	r := call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "more-work"})
	if r.Code != "QUOTA_EXCEEDED" || !strings.Contains(r.Message, "logical_size_bytes") {
		t.Fatalf("create_dev_branch over the tier's size quota: %s, want QUOTA_EXCEEDED naming logical_size_bytes", r)
	}
}

// setProjectQuota PATCHes a project's quota on the emulator (as an operator raising it would).
func setProjectQuota(a *app.App, projectID, quotaJSON string) error {
	body := `{"project":{"settings":{"quota":` + quotaJSON + `}}}`
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, err := http.NewRequest(http.MethodPatch, a.EmulatorURL+"/projects/"+projectID, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+a.Emulator.Credentials().FreeOrgAPIKey)
		req.Header.Set("Content-Type", "application/json")
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
			return fmt.Errorf("patch project: HTTP %d", resp.StatusCode)
		}
	}
	return fmt.Errorf("patch project: still locked")
}
