package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/pgtest"
	"github.com/neonguard/neonguard/internal/store"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// fakeClock is a clock whose time moves only when told: After moves it forward by d at once
// (the sequential code under test "sleeps" instantly), Advance moves it between steps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// storeEngine opens a store and can open it again on the same data (a restart).
type storeEngine struct {
	name string
	// open returns a function that opens a new handle on the same store each time it is called.
	open func(t *testing.T) func() store.Store
}

var engines = []storeEngine{
	{"sqlite", func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "neonguard.db")
		return func() store.Store {
			s, err := store.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatalf("OpenSQLite: %v", err)
			}
			return s
		}
	}},
	{"postgres", func(t *testing.T) func() store.Store {
		dsn := pg.Server(t).NewDatabase(t)
		return func() store.Store {
			s, err := store.OpenPostgres(t.Context(), dsn)
			if err != nil {
				t.Fatalf("OpenPostgres: %v", err)
			}
			return s
		}
	}},
}

// addDatabase records a completed database of tenant in org.
func addDatabase(t *testing.T, s store.Store, tenant, tier, id, orgID string) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.EnsureTenant(ctx, tenant, tier); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReserveDatabase(ctx, tenant, id); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteDatabase(ctx, store.Database{ID: id, TenantID: tenant, Name: id, OrgID: orgID}); err != nil {
		t.Fatal(err)
	}
}

// fakeNeon answers Consumption from a table of per-project usage in the current month.
type fakeNeon struct {
	neon.API // nil: any other call panics

	mu    sync.Mutex
	usage map[string]neon.ConsumptionPoint
	calls int
	fail  []error // returned by the next calls, in order
}

func (f *fakeNeon) Consumption(_ context.Context, o neon.ConsumptionOptions) (*neon.ConsumptionPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return nil, err
	}
	if len(o.ProjectIDs) > 100 || o.Granularity == "" || o.From.IsZero() {
		return nil, fmt.Errorf("bad consumption options %+v: %w", o, neon.ErrInvalidArgument)
	}
	start := time.Date(o.To.Year(), o.To.Month(), 1, 0, 0, 0, 0, time.UTC)
	page := &neon.ConsumptionPage{}
	for _, id := range o.ProjectIDs {
		p := f.usage[id]
		p.TimeframeStart, p.TimeframeEnd = start, start.AddDate(0, 1, 0)
		page.Projects = append(page.Projects, neon.ProjectConsumption{ProjectID: id, Periods: []neon.ConsumptionPeriod{
			// A past period with huge usage must not count.
			{PeriodStart: start.AddDate(0, -1, 0), PeriodEnd: &start, Consumption: []neon.ConsumptionPoint{{ActiveTimeSeconds: 1 << 40}}},
			{PeriodStart: start, Consumption: []neon.ConsumptionPoint{p}},
		}})
	}
	return page, nil
}
