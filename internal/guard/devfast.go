package guard

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// create_dev_branch's common path asks Neon two things: the project (its period counters, for
// the quota) and the create itself, whose answer carries the new compute's connection URI. The
// branch count comes from the store, under the database's lock, after the open intents are
// settled: every branch neonguard makes or deletes is recorded there (dev and backup branches;
// main is the database's root), so the store counts what Neon has, except
//   - branches Neon deleted at their expiry (the store counts them until the janitor prunes
//     them: a count too high, never too low), and
//   - branches made outside neonguard (Console, another key): a count too low.
//
// Both can only matter near the limit, so there the guard counts on Neon, as before (the full
// branch list): when the new branch would take one of the tier's last nearLimit slots, when the
// name asked for is recorded with an expiry that has passed (Neon may have deleted it, and
// then the name is free), and when the logical size the quota needs is not known recently
// enough. Every list of a database's branches from Neon notes its largest logical size
// (sizes), which the quota check reuses for logicalSizeFresh.

// logicalSizeFresh is how long a database's largest logical size, as the last branch list
// from Neon showed it, stands for the quota check of create_dev_branch. Neon itself updates
// logical_size lazily, so the list is not fresher than about this either.
const logicalSizeFresh = time.Minute

// nearLimit is how many of a tier's last branch slots are counted on Neon rather than from the
// store: a tenth of the limit, at least 2.
func nearLimit(limit int) int { return max(2, limit/10) }

// sizeCache holds each database's largest branch logical size as Neon last listed it. It is
// per replica and only saves requests: a database without a fresh reading is listed.
type sizeCache struct {
	mu sync.Mutex
	m  map[string]sizeReading
}

type sizeReading struct {
	bytes int64
	at    time.Time
}

// maxSizeReadings bounds the cache; past it, it is emptied (cheap and rare).
const maxSizeReadings = 100000

func (c *sizeCache) note(databaseID string, branches []neon.Branch, at time.Time) {
	var largest int64
	for _, b := range branches {
		largest = max(largest, b.LogicalSize)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSizeReadings {
		c.m = map[string]sizeReading{}
	}
	c.m[databaseID] = sizeReading{bytes: largest, at: at}
}

func (c *sizeCache) get(databaseID string, now time.Time) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[databaseID]
	if !ok || now.Sub(r.at) > logicalSizeFresh || r.at.After(now) {
		return 0, false
	}
	return r.bytes, true
}

// createDevBranchFast is create_dev_branch's common path (see above). done is false when the
// answer needs Neon's branch list: the caller then takes the full path. The caller holds the
// database's lock and has settled its intents.
func (g *Guard) createDevBranchFast(ctx context.Context, c caller, org Org, db store.Database, in DevBranchInput,
	from string, at *time.Time, ttl time.Duration, now time.Time) (res *DevBranchResult, done bool, err error) {
	if from != mainBranchName && at == nil {
		return nil, false, nil // from a checkpoint: a snapshot restore aimed at today's main
	}
	tally, err := g.store.TallyBranches(ctx, db.ID, in.Name)
	if err != nil {
		return nil, true, err
	}
	if b := tally.Named; b != nil {
		if b.ExpiresAt != nil && !b.ExpiresAt.After(now) {
			return nil, false, nil // expired: Neon may have deleted it, and the name may be free
		}
		if b.Kind != store.BranchDev {
			return nil, true, invalid(fmt.Sprintf("branch %q already exists and is not a dev branch", in.Name), "choose another name")
		}
		// A retry (or a repeat) of this call: the branch it made.
		uri, err := g.connectionURI(ctx, org, db, b.ID, true)
		if ge := errcode.As(err); ge != nil && ge.Code == errcode.NotFound {
			return nil, false, nil // gone from Neon: the full path finds out
		}
		if err != nil {
			return nil, true, err
		}
		exp := now.Add(ttl).UTC().Truncate(time.Second)
		if b.ExpiresAt != nil {
			exp = b.ExpiresAt.UTC()
		}
		return &DevBranchResult{DatabaseID: db.ID, BranchID: b.ID, Name: b.Name, From: g.devFrom(ctx, db.ID, b.Name, from),
			ExpiresAt: exp, ConnectionString: uri}, true, nil
	}
	// main and the recorded branches, plus this one: far from the limit, the store's count
	// decides (policy.CheckNewBranch would allow it); near it, Neon's.
	if tally.Count+1+1 > c.tier.Branches-nearLimit(c.tier.Branches) {
		return nil, false, nil
	}
	var largest int64
	if q := c.tier.Quota.LogicalSizeBytes; q > 0 {
		size, ok := g.sizes.get(db.ID, now)
		if !ok || size >= q-q/10 {
			return nil, false, nil // not known lately, or near the quota: the list says
		}
		largest = size
	}
	// A new compute on a project over its quota would be suspended by Neon at once.
	p, err := org.API.GetProject(ctx, db.ID)
	if err != nil {
		return nil, true, upstream("create_dev_branch", err)
	}
	u := UsageOf(p, nil)
	u.LogicalSizeBytes = largest
	if d := policy.CheckQuota(c.tier, u); !d.Allow {
		return nil, true, denied(d)
	}
	// No parent: Neon branches from the project's default branch, which is main by definition
	// (dbState), so a main that moved outside neonguard is followed without listing.
	di := devIntent{Name: in.Name, From: from, ExpiresAt: now.Add(ttl).UTC().Truncate(time.Second), At: at,
		Endpoint: neon.EndpointCreate{Type: neon.EndpointReadWrite, AutoscalingLimitMinCU: c.tier.MinComputeCU,
			AutoscalingLimitMaxCU: c.tier.MaxComputeCU, SuspendTimeoutSeconds: int64(c.tier.SuspendTimeout.Seconds())}}
	run, err := g.beginIntent(ctx, db, intentDevBranch, di)
	if err != nil {
		return nil, true, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	created, err := g.makeDevBranch(work, org, db, run, &di)
	if err != nil {
		if ge := errcode.As(err); ge != nil && ge.Code == errcode.InvalidArgument && errors.Is(err, neon.ErrConflict) {
			// A branch of that name that neonguard did not record (a dev branch it made
			// would be: intents are settled).
			ge.Message = fmt.Sprintf("branch %q already exists and is not a dev branch; no branch was created", in.Name)
			ge.Hint = "choose another name"
		}
		return nil, true, err
	}
	if created != nil && created.Branch.ParentID != "" && created.Branch.ParentID != db.RootBranchID {
		// Neon's default branch moved (as dbState follows it): record the new main.
		if err := g.store.SetRootBranch(work, db.ID, created.Branch.ParentID); err != nil {
			g.log.WarnContext(ctx, "could not record the database's new main branch", "database_id", db.ID, "err", err)
		}
	}
	if err := g.finishDevBranch(work, org, db, run, &di); err != nil {
		return nil, true, err
	}
	uri := pooledURI(created, db)
	if uri == "" {
		if uri, err = g.connectionURI(work, org, db, di.BranchID, true); err != nil {
			return nil, true, err
		}
	}
	return &DevBranchResult{DatabaseID: db.ID, BranchID: di.BranchID, Name: in.Name, From: from, ExpiresAt: di.ExpiresAt,
		ConnectionString: uri}, true, nil
}

// pooledURI is the pooled connection URI of a branch from its create answer: Neon's
// connection_uris (present when the parent has one role and one database) for the database's
// role and database, with the pooler host (Neon's pooler_host, or the endpoint id plus
// "-pooler" as Neon documents it). "" when the answer has none that fits: the caller asks Neon.
func pooledURI(created *neon.CreatedBranch, db store.Database) string {
	if created == nil {
		return ""
	}
	rw := 0
	for _, e := range created.Endpoints {
		if e.Type == neon.EndpointReadWrite {
			rw++
		}
	}
	if rw != 1 {
		return ""
	}
	for _, cd := range created.ConnectionURIs {
		p := cd.ConnectionParameters
		if p.Role != db.RoleName || p.Database != db.DatabaseName || p.Host == "" {
			continue
		}
		pooler := p.PoolerHost
		if pooler == "" {
			id, rest, ok := strings.Cut(p.Host, ".")
			if !ok {
				continue
			}
			pooler = id + "-pooler." + rest
		}
		if uri := withHost(cd.ConnectionURI, p.Host, pooler, db); uri != "" {
			return uri
		}
	}
	return ""
}

// withHost replaces host by pooler in uri, which must be a postgres URI of db's role and
// database on host; "" when it is not.
func withHost(uri, host, pooler string, db store.Database) string {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "postgresql" && u.Scheme != "postgres") || u.User == nil ||
		u.User.Username() != db.RoleName || strings.TrimPrefix(u.Path, "/") != db.DatabaseName || u.Hostname() != host {
		return ""
	}
	at := strings.Index(uri, "@"+host)
	if at < 0 || strings.Count(uri, "@"+host) != 1 {
		return ""
	}
	end := at + 1 + len(host)
	if end < len(uri) && !strings.ContainsRune(":/?", rune(uri[end])) {
		return ""
	}
	return uri[:at+1] + pooler + uri[end:]
}
