// Package guard holds neonguard's use cases. Each one reads the caller's tenant from the
// context, locks the database it touches, reads the current state from Neon under that lock,
// asks the policy, and only then calls Neon and records the result. Counting under the lock is
// what makes a limit hold under concurrency: two calls cannot both see "9 of 10 branches".
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Org is one Neon organization the guard places projects in, with the client bound to its key.
type Org struct {
	Plan string // key into policy.Config.Plans: "free" or "paid"
	ID   string
	API  neon.API
}

// Deps are the guard's collaborators.
type Deps struct {
	Store            store.Store
	Locker           store.Locker
	Policy           policy.Config
	Orgs             []Org
	DefaultRegion    string
	DefaultPGVersion int
	Now              func() time.Time // default time.Now
	Logger           *slog.Logger
	// SQLIdleTimeout is how long a SQL connection to a branch stays open after its last call
	// (default DefaultSQLIdleTimeout).
	SQLIdleTimeout time.Duration
}

// Guard implements UseCases.
type Guard struct {
	store  store.Store
	locker store.Locker
	policy policy.Config
	orgs   []Org
	region string
	pg     int
	now    func() time.Time
	log    *slog.Logger
	sql    *sqlPool  // SQL connections kept for a short idle time (sqlpool.go)
	sizes  sizeCache // each database's largest logical size as Neon last listed it (devfast.go)
}

var _ UseCases = (*Guard)(nil)

// New checks d and returns a Guard.
func New(d Deps) (*Guard, error) {
	if d.Store == nil || d.Locker == nil {
		return nil, errors.New("guard: store and locker are required")
	}
	if len(d.Orgs) == 0 {
		return nil, errors.New("guard: at least one org is required")
	}
	for _, o := range d.Orgs {
		if o.API == nil || o.ID == "" {
			return nil, fmt.Errorf("guard: org %q needs an id and a client", o.Plan)
		}
		if _, err := d.Policy.Plan(o.Plan); err != nil {
			return nil, fmt.Errorf("guard: org %q: %w", o.Plan, err)
		}
	}
	for name, t := range d.Policy.Tiers {
		if _, ok := findOrg(d.Orgs, t.Org); !ok {
			return nil, fmt.Errorf("guard: tier %q is placed in org %q, which is not configured", name, t.Org)
		}
	}
	g := &Guard{store: d.Store, locker: d.Locker, policy: d.Policy, orgs: d.Orgs,
		region: d.DefaultRegion, pg: d.DefaultPGVersion, now: d.Now, log: d.Logger, sql: newSQLPool(d.SQLIdleTimeout)}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.region == "" {
		g.region = "aws-us-east-2"
	}
	if g.pg == 0 {
		g.pg = 17
	}
	return g, nil
}

func findOrg(orgs []Org, plan string) (Org, bool) {
	for _, o := range orgs {
		if o.Plan == plan {
			return o, true
		}
	}
	return Org{}, false
}

// caller is the resolved principal: tenant, tier and the org its new databases go to.
type caller struct {
	tenant store.Tenant
	tier   policy.Tier
	org    Org
}

func (g *Guard) caller(ctx context.Context) (caller, error) {
	p, ok := identity.FromContext(ctx)
	if !ok {
		return caller{}, errors.New("guard: no principal in context")
	}
	t, err := g.store.GetTenant(ctx, p.TenantID)
	if err != nil {
		return caller{}, fmt.Errorf("guard: tenant %q: %w", p.TenantID, err)
	}
	tier, err := g.policy.Tier(t.Tier)
	if err != nil {
		return caller{}, fmt.Errorf("guard: tenant %q: %w", t.ID, err)
	}
	org, _ := findOrg(g.orgs, tier.Org) // New checked every tier's org exists
	return caller{tenant: t, tier: tier, org: org}, nil
}

// database loads the caller's database. Another tenant's id gets exactly the same answer as an
// id that does not exist, so nothing reveals that it exists.
func (g *Guard) database(ctx context.Context, c caller, databaseID string) (store.Database, Org, error) {
	if databaseID == "" {
		return store.Database{}, Org{}, invalid("database_id is required", "call list_databases to see your databases")
	}
	db, err := g.store.GetDatabase(ctx, c.tenant.ID, databaseID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Database{}, Org{}, notFound(databaseID)
	}
	if err != nil {
		return store.Database{}, Org{}, err
	}
	org, err := g.orgOf(db)
	if err != nil {
		return store.Database{}, Org{}, err
	}
	return db, org, nil
}

// orgOf is the configured org a database's project is recorded in.
func (g *Guard) orgOf(db store.Database) (Org, error) {
	for _, o := range g.orgs {
		if o.ID == db.OrgID {
			return o, nil
		}
	}
	return Org{}, fmt.Errorf("guard: database %s is in org %s, which is not configured", db.ID, db.OrgID)
}

// notFound is the one answer for an id that is unknown and for another tenant's id. It does not
// echo the id: the text is the same whatever was asked, so it cannot confirm that an id exists
// elsewhere.
func notFound(string) *errcode.Error {
	return &errcode.Error{Code: errcode.NotFound, Message: "no database with this database_id in your account",
		Hint: "call list_databases to see your databases and their ids"}
}

// acquire takes the per-database lock (lock, in trace.go, wraps it in a span). Every use case
// that counts or changes a database's branches or checkpoints holds it from the count until the
// change is recorded. It returns the context to work in while holding it: with a locker that
// can lose a lock (PostgreSQL advisory locks end with their session), that context ends when
// the lock is lost, so a use case stops rather than act on a count made under a lock another
// replica may now hold.
func (g *Guard) acquire(ctx context.Context, key string) (context.Context, func(), error) {
	if cl, ok := g.locker.(store.ContextLocker); ok {
		held, unlock, err := cl.LockContext(ctx, key)
		if err != nil {
			return nil, nil, fmt.Errorf("guard: lock %s: %w", key, err)
		}
		return held, unlock, nil
	}
	unlock, err := g.locker.Lock(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("guard: lock %s: %w", key, err)
	}
	return ctx, unlock, nil
}

// lockDatabase loads the caller's database, takes its lock and settles the intents an
// interrupted call left open: the preamble of every use case that counts or changes a
// database's branches or checkpoints. The caller defers unlock.
func (g *Guard) lockDatabase(ctx context.Context, c caller, databaseID string) (context.Context, store.Database, Org, func(), error) {
	db, org, err := g.database(ctx, c, databaseID)
	if err != nil {
		return nil, store.Database{}, Org{}, nil, err
	}
	held, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, store.Database{}, Org{}, nil, busy(db.ID, err)
		}
		return nil, store.Database{}, Org{}, nil, err
	}
	if err := g.settle(held, org, db); err != nil {
		unlock()
		return nil, store.Database{}, Org{}, nil, err
	}
	return held, db, org, unlock, nil
}
