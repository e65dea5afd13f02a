package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neonlocal/controlplane"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

const consumptionRoute = "GET /consumption_history/projects"

// consumptionLog records, on the test's clock, when each consumption request reached the
// emulator and what it answered.
type consumptionLog struct {
	clock *fakeClock
	next  http.Handler

	mu       sync.Mutex
	at       []time.Time
	statuses map[int]int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (l *consumptionLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/consumption_history/projects") {
		l.next.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	l.mu.Lock()
	l.at = append(l.at, l.clock.Now())
	l.mu.Unlock()
	l.next.ServeHTTP(sw, r)
	l.mu.Lock()
	l.statuses[sw.status]++
	l.mu.Unlock()
}

// TestThousandDatabasesWithinRateLimit is issue 5's second proof: with 1000 databases (10
// tenants of 100, half on each org) on the real emulator, whose consumption limiter answers
// 429 past 30 requests a minute per key, every round takes ceil(1000/100) = 10 requests, no
// 60-second window holds more than 30 of them, none is refused, and every database gets a
// sample. The emulator's limiter and the monitor's pacer share a fake clock, so the test
// runs in well under a second of sampling; the Neon client's own consumption limiter (real
// time) is opened wide so the emulator is the only judge.
func TestThousandDatabasesWithinRateLimit(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock(time.Now().UTC().Truncate(time.Second))
	// Creating 1000 projects through the API persists the whole state after each one (minutes);
	// instead the emulator's state file is seeded with them and the emulator started on it.
	dir := t.TempDir()
	opts := controlplane.Options{DataDir: dir, Now: clock.Now, OperationDelay: time.Millisecond,
		SweepInterval: time.Hour, UsageInterval: time.Hour}
	first, err := controlplane.New(ctx, opts) // makes the keys and org ids, and the state file
	if err != nil {
		t.Fatal(err)
	}
	creds := first.Credentials()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	const tenants, perTenant = 10, 100
	type seeded struct{ id, tenant, tier, org string }
	var dbs []seeded
	for ti := range tenants {
		tenant, tier, org := fmt.Sprintf("t%02d", ti), "free", creds.FreeOrgID
		if ti%2 == 1 {
			tier, org = "pro", creds.PaidOrgID
		}
		for i := range perTenant {
			dbs = append(dbs, seeded{fmt.Sprintf("mon-%02d-%03d-12345678", ti, i), tenant, tier, org})
		}
	}
	seedProjects(t, dir, clock.Now(), func(add func(id, orgID string)) {
		for _, d := range dbs {
			add(d.id, d.org)
		}
	})
	emu := startEmulator(t, opts)
	log := &consumptionLog{clock: clock, next: emu, statuses: map[int]int{}}
	hs := httptest.NewServer(log)
	t.Cleanup(hs.Close)

	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "neonguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	client := func(key string) neon.API {
		c, err := neon.New(neon.Config{BaseURL: hs.URL + "/api/v2", APIKey: key, RequestsPerSecond: 1e6,
			ConsumptionPerMinute: 1e9, MaxElapsed: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	orgs := []Org{{ID: creds.FreeOrgID, API: client(creds.FreeOrgAPIKey)}, {ID: creds.PaidOrgID, API: client(creds.PaidOrgAPIKey)}}

	var ids []string
	for _, d := range dbs {
		addDatabase(t, st, d.tenant, d.tier, d.id, d.org)
		ids = append(ids, d.id)
	}
	if n := len(emu.Requests()); n != 0 {
		t.Fatalf("emulator requests before the monitor ran: %v", emu.Requests())
	}
	before := emu.Requests()[consumptionRoute]
	if before != 0 {
		t.Fatalf("%d consumption requests before the monitor ran", before)
	}

	m, err := New(Config{Store: st, Policy: policy.Default(), Orgs: orgs, Interval: time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 4
	for r := range rounds {
		rs, err := m.Sample(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		if rs.Databases != 1000 || rs.Sampled != 1000 || rs.Requests != 10 {
			t.Fatalf("round %d: %+v", r, rs)
		}
		if got := emu.Requests()[consumptionRoute]; got != 10*(r+1) {
			t.Fatalf("after round %d the emulator counted %d consumption requests, want %d", r, got, 10*(r+1))
		}
		clock.Advance(time.Second) // the interval; rounds run back to back
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.at) != 10*rounds || log.statuses[http.StatusOK] != 10*rounds {
		t.Fatalf("requests %d, statuses %v", len(log.at), log.statuses)
	}
	for i := range log.at {
		n := 0
		for j := i; j < len(log.at) && log.at[j].Sub(log.at[i]) < time.Minute; j++ {
			n++
		}
		if n > 30 {
			t.Fatalf("%d consumption requests in the minute from %v", n, log.at[i])
		}
	}
	for _, id := range ids {
		s, err := st.LatestUsageSample(ctx, id)
		if err != nil {
			t.Fatalf("database %s: %v", id, err)
		}
		if s.PeriodEnd.Sub(s.PeriodStart) < 28*24*time.Hour || s.TakenAt.Before(clock.Now().Add(-2*time.Minute)) {
			t.Fatalf("sample %+v", s)
		}
	}
}

func startEmulator(t *testing.T, opts controlplane.Options) *controlplane.Server {
	t.Helper()
	emu, err := controlplane.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// seedProjects adds projects to the state file of the (stopped) emulator in dir.
func seedProjects(t *testing.T, dir string, now time.Time, each func(add func(id, orgID string))) {
	t.Helper()
	path := filepath.Join(dir, "neonlocal", "state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	projects, _ := st["projects"].(map[string]any)
	if projects == nil {
		projects = map[string]any{}
	}
	each(func(id, orgID string) {
		projects[id] = map[string]any{"id": id, "name": id, "org_id": orgID, "region_id": "aws-us-east-2",
			"pg_version": 17, "provisioner": "k8s-neonvm", "history_retention_seconds": 86400,
			"created_at": now, "updated_at": now, "period_start": now}
	})
	st["projects"] = projects
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
