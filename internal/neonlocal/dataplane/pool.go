package dataplane

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// poolSize is how many ready copies of each template the pool keeps: a new project takes one
// (a rename) instead of copying and syncing the template on the request's path.
const poolSize = 2

// pool keeps copies of the templates, made and synced in the background, under
// Dir/pool/TEMPLATE/ (TEMPLATE: the template dir's name, so a copy is only ever handed out
// for its own major and settings). A copy is complete when it has its name (pgctl copies
// into NAME.tmp, syncs, renames); taking one is a rename into the new branch, so a crash at
// any point leaves it either in the pool or with the branch, whose half-made data the next
// start drops.
type pool struct {
	mu      sync.Mutex
	filling map[string]bool // by template name: a refill runs
	hits    int             // copies handed out (tests)
}

func (dp *DataPlane) poolDir(tk *pgctl.Toolkit) string {
	return filepath.Join(dp.o.Dir, "pool", filepath.Base(dp.templateDir(tk.Bin.Major)))
}

// poolTake moves a ready copy of tk's template to dst; false: none was ready.
func (dp *DataPlane) poolTake(tk *pgctl.Toolkit, dst string) bool {
	dir := dp.poolDir(tk)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if os.Rename(filepath.Join(dir, e.Name()), dst) == nil {
			dp.pool.mu.Lock()
			dp.pool.hits++
			dp.pool.mu.Unlock()
			return true
		}
	}
	return false
}

// poolRefill tops tk's pool up to poolSize in the background (one refill per template at a
// time); Close waits for it, and it stops between copies once Close began.
func (dp *DataPlane) poolRefill(tk *pgctl.Toolkit) {
	name := filepath.Base(dp.templateDir(tk.Bin.Major))
	dp.pool.mu.Lock()
	if dp.pool.filling == nil {
		dp.pool.filling = map[string]bool{}
	}
	if dp.pool.filling[name] {
		dp.pool.mu.Unlock()
		return
	}
	dp.pool.filling[name] = true
	dp.pool.mu.Unlock()
	done := func() {
		dp.pool.mu.Lock()
		dp.pool.filling[name] = false
		dp.pool.mu.Unlock()
	}
	if !dp.background(func(ctx context.Context) {
		defer done()
		dir := dp.poolDir(tk)
		if err := dp.mkdir(dir); err != nil {
			dp.log.Warn("pool: cannot make its dir", "err", err)
			return
		}
		for ctx.Err() == nil && dp.poolReady(dir) < poolSize {
			dst := filepath.Join(dir, strconv.FormatInt(time.Now().UnixNano(), 10))
			if err := tk.CopyCluster(ctx, dp.templateDir(tk.Bin.Major), dst); err != nil {
				if ctx.Err() == nil {
					dp.log.Warn("pool: copy of the template failed; new projects copy it themselves", "err", err)
				}
				return
			}
		}
	}) {
		done() // closing
	}
}

func (dp *DataPlane) poolReady(dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

// poolClean drops, at start, copies a crash cut short and pools of templates no longer in use.
func (dp *DataPlane) poolClean() {
	keep := map[string]bool{}
	for _, tk := range dp.tks {
		keep[filepath.Base(dp.templateDir(tk.Bin.Major))] = true
	}
	pools, _ := os.ReadDir(filepath.Join(dp.o.Dir, "pool"))
	for _, p := range pools {
		dir := filepath.Join(dp.o.Dir, "pool", p.Name())
		if !keep[p.Name()] {
			_ = os.RemoveAll(dir)
			continue
		}
		tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
		for _, t := range tmps {
			_ = os.RemoveAll(t)
		}
	}
}
