package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"
)

// CodeDiskBudgetExceeded is the code of the 422 answered when a new project or branch would not
// fit the disk (Options.DiskBudget, Options.DiskMinFree). Neon has no such answer: its storage
// is elastic, a laptop's is not.
const CodeDiskBudgetExceeded = "DISK_BUDGET_EXCEEDED"

const (
	// defaultBranchDiskBytes is what a new branch is expected to take on the local data plane
	// until its operation ends and the data dir is measured again: an empty cluster with its
	// base backup and WAL archive measured ~29 MB (PostgreSQL 15, 1 MB WAL segments), and its
	// parent's archive grows by a few segments; twice that leaves room for a parent with data.
	defaultBranchDiskBytes = 64 << 20
	defaultDiskCacheTTL    = 5 * time.Second
)

// diskGauge admits new clusters against a disk budget and a free-space margin. Walking the
// data dir is too slow for every request, so the measurement is cached; clusters admitted since
// are counted at their expected size until their operations end. A refusal is only given on a
// fresh measurement, so space freed by a delete is seen on the next try.
type diskGauge struct {
	dir             string
	budget, minFree int64 // 0: not checked
	perBranch       int64
	ttl             time.Duration
	now             func() time.Time
	log             *slog.Logger
	walkMu          sync.Mutex // one walk at a time; never held with Server.mu

	mu         sync.Mutex // guards the fields below; taken under Server.mu
	measured   bool       // used and free hold a measurement
	at         time.Time
	stale      bool   // a cluster was finished since: measure again before trusting used
	gen        uint64 // counts measurements
	releases   uint64 // counts releases
	used, free int64  // free < 0: unknown
	reserved   int64
	pending    int // admitted branches whose operations have not ended
}

func newDiskGauge(o Options) *diskGauge {
	g := &diskGauge{dir: o.DataDir, budget: o.DiskBudget, minFree: o.DiskMinFree,
		perBranch: o.BranchDiskBytes, ttl: o.DiskCacheTTL, now: o.Now, log: o.Logger}
	if g.perBranch <= 0 {
		g.perBranch = defaultBranchDiskBytes
	}
	if g.ttl <= 0 {
		g.ttl = defaultDiskCacheTTL
	}
	return g
}

func (g *diskGauge) enabled() bool { return g.budget > 0 || g.minFree > 0 }

// refresh measures the data dir unless a recent measurement already admits one more branch.
// Call it before taking Server.mu: the walk may take a while. It fails only when ctx ends.
func (g *diskGauge) refresh(ctx context.Context) error {
	if !g.enabled() {
		return nil
	}
	g.mu.Lock()
	gen := g.gen
	ok := g.measured && !g.stale && g.now().Sub(g.at) < g.ttl && g.refusalLocked() == ""
	g.mu.Unlock()
	if ok {
		return nil
	}
	g.walkMu.Lock()
	defer g.walkMu.Unlock()
	g.mu.Lock()
	done := g.gen != gen // someone measured while this call waited
	start, releases := g.now(), g.releases
	g.mu.Unlock()
	if done {
		return nil
	}
	used, err := dirBytes(ctx, g.dir)
	if err != nil {
		return fmt.Errorf("measure %s: %w", g.dir, err)
	}
	free := int64(-1)
	if g.minFree > 0 {
		if free, err = freeBytes(g.dir); err != nil {
			// Unknown free space checks nothing, rather than refusing every create.
			g.log.WarnContext(ctx, "neonlocal: free disk space unknown", "dir", g.dir, "err", err)
			free = -1
		}
	}
	g.mu.Lock()
	g.measured, g.at, g.used, g.free = true, start, used, free
	// A cluster finished during the walk may be only partly counted: measure again next time.
	g.stale = g.releases != releases
	g.gen++
	g.mu.Unlock()
	return nil
}

// admit reserves room for one new branch, or returns the 422 that refuses it. Call it under
// Server.mu after every other check, and release the room once the branch's operations end.
func (g *diskGauge) admit() error {
	if !g.enabled() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if msg := g.refusalLocked(); msg != "" {
		return errCode(http.StatusUnprocessableEntity, CodeDiskBudgetExceeded, "%s", msg)
	}
	g.reserved += g.perBranch
	g.pending++
	return nil
}

// release gives back a reservation of admit. The new cluster is on disk now (or failed), so
// the next check measures again.
func (g *diskGauge) release() {
	if !g.enabled() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending > 0 {
		g.reserved -= g.perBranch
		g.pending--
	}
	g.releases++
	g.stale = true
}

// refusalLocked says why one more branch does not fit, or "" when it does (or nothing was
// measured yet: there is nothing to refuse on).
func (g *diskGauge) refusalLocked() string {
	if !g.measured {
		return ""
	}
	need := g.reserved + g.perBranch
	pending := ""
	if g.pending > 0 {
		pending = fmt.Sprintf(" with %d more being created", g.pending)
	}
	if g.budget > 0 && g.used+need > g.budget {
		return fmt.Sprintf("disk budget exceeded: the local databases use %s of their %s disk budget%s "+
			"and a new project or branch needs about %s; delete branches or projects, or raise the budget (local.disk_budget)",
			fmtBytes(g.used), fmtBytes(g.budget), pending, fmtBytes(g.perBranch))
	}
	if g.minFree > 0 && g.free >= 0 && g.free-need < g.minFree {
		return fmt.Sprintf("disk almost full: %s free on the data dir's filesystem%s, a new project or branch needs about %s "+
			"and %s must stay free; delete branches or projects, or free disk space (local.disk_min_free)",
			fmtBytes(g.free), pending, fmtBytes(g.perBranch), fmtBytes(g.minFree))
	}
	return ""
}

// dirBytes is the disk space the files under dir take, like du: allocated blocks, each hard
// linked file once. Files that vanish during the walk (PostgreSQL recycles WAL, removes temp
// files) and entries it may not read are skipped: a measurement, not an inventory.
func dirBytes(ctx context.Context, dir string) (int64, error) {
	var total int64
	seen := map[fileKey]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		n, key, linked := allocated(info)
		if linked {
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += n
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	return total, nil
}

// fmtBytes renders a size for people: "1.4 GiB", "160 MiB", "512 B".
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}
