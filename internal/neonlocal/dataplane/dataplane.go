package dataplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// Options configure the data plane.
type Options struct {
	Dir    string // where clusters live; must be reachable by User
	BinDir string // PostgreSQL binaries; empty = every major found on PATH, via pg_config, or in /usr/lib/postgresql
	User   string // the unprivileged user PostgreSQL runs as when neonguard runs as root (default "postgres")
	Logger *slog.Logger
	// DefaultSuspendTimeout applies to endpoints whose suspend timeout is 0 (Neon's default: 5 min).
	DefaultSuspendTimeout time.Duration
	// Settings are extra PostgreSQL settings for every cluster (tests turn fsync off).
	Settings map[string]string
	// OwnerLock is the lock file of the data dir (neonlocal.LockDataDir), which the caller
	// holds before New: postgres processes on Dir are stopped as orphans of a crash only
	// while no other live process holds it. Empty: no such check.
	OwnerLock string
}

// DataPlane implements neonlocal.DataPlane on local PostgreSQL clusters.
type DataPlane struct {
	o Options
	// tk is the newest installed major's toolkit: the default of new projects, and what runs
	// work any major's programs do alike (copies, SQL, signals).
	tk       *pgctl.Toolkit
	tks      map[int]*pgctl.Toolkit // by major: a cluster runs its own major's programs
	majors   []int                  // installed, newest first
	tmplMu   sync.Mutex             // serializes making a major's template
	log      *slog.Logger
	cert     string
	key      string
	tls      *tls.Config // the proxies answer TLS themselves only to refuse a client
	sockRoot string

	wg   sync.WaitGroup // background work: base backups, endpoint re-attachment, pool refills
	pool pool           // ready copies of the templates
	done chan struct{}  // closed by Close

	mu        sync.Mutex
	clusters  map[string]*cluster  // by branch id
	endpoints map[string]*endpoint // by endpoint id
	projects  map[string]*sync.Mutex
	closed    bool
}

var _ neonlocal.DataPlane = (*DataPlane)(nil)

// New finds PostgreSQL, prepares the template cluster and the certificate, and cleans up
// after a crash (orphaned postgres processes, half-finished restores).
func New(ctx context.Context, o Options) (*DataPlane, error) {
	if o.Dir == "" {
		return nil, errors.New("dataplane: Dir is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultSuspendTimeout == 0 {
		o.DefaultSuspendTimeout = 5 * time.Minute
	}
	// pg_config's answer is kept next to the clusters: running it is most of what start-up
	// spends outside Go (FindInstallationsCached).
	installs, err := pgctl.FindInstallationsCached(ctx, o.BinDir, filepath.Join(o.Dir, "pg_config.json"))
	if err != nil {
		return nil, err
	}
	runAs, err := pgctl.ResolveRunAs(o.User)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	if runAs.Switch {
		// PostgreSQL's user must pass through neonguard's data dir to reach Dir: let it
		// traverse (x) without listing or reading anything (0711).
		parent := filepath.Dir(o.Dir)
		if info, err := os.Stat(parent); err == nil && info.Mode().Perm()&0o011 != 0o011 {
			if err := os.Chmod(parent, info.Mode().Perm()|0o011); err != nil {
				return nil, fmt.Errorf("dataplane: %w", err)
			}
		}
	}
	// Everything under Dir is PostgreSQL's user's already (copies keep their owner, mkdir
	// chowns what it makes): walk the tree only when Dir itself says otherwise (a first start,
	// or local.pg_user changed), not on every start.
	if info, err := os.Stat(o.Dir); err == nil && runAs.Switch {
		if uid, ok := statOwner(info); !ok || uid != runAs.UID {
			if err := chownTree(o.Dir, runAs); err != nil {
				return nil, fmt.Errorf("dataplane: %w", err)
			}
		}
	}
	if err := checkReachable(o.Dir, runAs); err != nil {
		return nil, err
	}
	// Unix socket paths are limited to ~107 bytes, so sockets live in a short private dir.
	sockRoot, err := os.MkdirTemp("", "ngpg-")
	if err != nil {
		return nil, fmt.Errorf("dataplane: socket dir: %w", err)
	}
	if err := runAs.Chown(sockRoot); err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	dp := &DataPlane{
		o: o, log: o.Logger, sockRoot: sockRoot,
		tks:       map[int]*pgctl.Toolkit{},
		majors:    pgctl.Majors(installs),
		done:      make(chan struct{}),
		clusters:  map[string]*cluster{},
		endpoints: map[string]*endpoint{},
		projects:  map[string]*sync.Mutex{},
	}
	for _, b := range installs {
		dp.tks[b.Major] = &pgctl.Toolkit{Bin: b, RunAs: runAs, Logger: o.Logger.With("process", "postgres"), OwnerLock: o.OwnerLock,
			WALSegSizeMB: walSegSizeMB}
	}
	dp.tk = dp.tks[dp.majors[0]]
	dp.log.Info("PostgreSQL found", "majors", dp.majors, "default", dp.majors[0])
	dp.cert, dp.key, err = pgctl.EnsureCert(filepath.Join(o.Dir, "tls"), runAs)
	if err != nil {
		return nil, fmt.Errorf("dataplane: certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(dp.cert, dp.key)
	if err != nil {
		return nil, fmt.Errorf("dataplane: certificate: %w", err)
	}
	dp.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if err := dp.recover(ctx); err != nil {
		return nil, err
	}
	dp.poolClean()
	dp.templateInBackground()
	return dp, nil
}

// templateInBackground makes the default major's template (others' are made on first use)
// without holding up start-up: on a first start initdb and the compaction take seconds, and
// an MCP client waits for `initialize` meanwhile. A project made before it is ready waits
// for it (ensureTemplate's lock); a failure here is only logged, as the first new project
// tries again and reports it. Close stops it (a half-made template is a .tmp dir, removed on
// the next try).
func (dp *DataPlane) templateInBackground() {
	dp.background(func(ctx context.Context) {
		if err := dp.ensureTemplate(ctx, dp.tk); err != nil && ctx.Err() == nil {
			dp.log.Warn("template: could not be made in the background; the first new project tries again", "err", err)
		}
	})
}

// background runs f on its own goroutine unless Close began (then it reports false and f
// never runs). Close cancels f's context and waits for f to return.
func (dp *DataPlane) background(f func(ctx context.Context)) bool {
	dp.mu.Lock()
	if dp.closed {
		dp.mu.Unlock()
		return false
	}
	dp.wg.Add(1)
	dp.mu.Unlock()
	go func() {
		defer dp.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-dp.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		f(ctx)
	}()
	return true
}

// checkReachable fails early, with the fix, when the PostgreSQL user cannot reach Dir (for
// example a data dir under /root, which is 0700).
func checkReachable(dir string, runAs pgctl.RunAs) error {
	if !runAs.Switch {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("dataplane: %w", err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			if st, ok := statOwner(info); !ok || st != runAs.UID {
				return fmt.Errorf("dataplane: PostgreSQL runs as user %q, which cannot reach %s (%s is mode %v); "+
					"use a data dir it can reach, e.g. --data-dir /var/lib/neonguard", runAs.Name, dir, p, info.Mode().Perm())
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// walSegSizeMB is the WAL segment size of the clusters the data plane makes (initdb
// --wal-segsize): 1 MB instead of 16 keeps an empty cluster's pg_wal, each base backup's WAL
// and each archived segment (a segment switch archives a whole one) small. Clusters made
// before keep their own size (it is fixed at initdb); pgctl sizes min_wal_size to each.
const walSegSizeMB = 1

// templateLayout names what a template holds beyond initdb's cluster: the project's role and
// database (owner), compacted databases (compact). A new layout gets a new template, and
// with it a new pool; the old ones go at start.
const templateLayout = "owner-compact"

// templateDir is named by major, WAL segment size and layout: a template made with other
// settings (an older neonguard's) is not used for new projects.
func (dp *DataPlane) templateDir(major int) string {
	return filepath.Join(dp.o.Dir, "template", fmt.Sprintf("%d-wal%dmb-%s", major, walSegSizeMB, templateLayout))
}

// ensureTemplate runs initdb once per PostgreSQL major version; every new project starts as
// a copy of it, which takes a fraction of initdb's time.
func (dp *DataPlane) ensureTemplate(ctx context.Context, tk *pgctl.Toolkit) error {
	dp.tmplMu.Lock()
	defer dp.tmplMu.Unlock()
	dir := dp.templateDir(tk.Bin.Major)
	if exists(filepath.Join(dir, "PG_VERSION")) {
		return nil
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := dp.mkdir(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := tk.InitDB(ctx, tmp); err != nil {
		return fmt.Errorf("dataplane: initdb %d: %w", tk.Bin.Major, err)
	}
	if err := dp.prepareTemplate(ctx, tk, tmp); err != nil {
		return fmt.Errorf("dataplane: template %d: %w", tk.Bin.Major, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	// Older neonguards' templates of this major (template/MAJOR, MAJOR-walNmb-LAYOUT) are not
	// used any more; the files base backups linked to stay with those backups.
	olds, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), strconv.Itoa(tk.Bin.Major)+"-*"))
	for _, old := range append(olds, filepath.Join(filepath.Dir(dir), strconv.Itoa(tk.Bin.Major))) {
		if old != dir {
			_ = os.RemoveAll(old)
		}
	}
	return nil
}

// The template's project role and database, renamed to the project's at hand-out (newRoot).
const (
	templateRole = "neonguard_template_owner"
	templateDB   = "neonguard_template_db"
)

// prepareTemplate makes the project's role (no password: it cannot log in) and database in
// a new template, so a new project only renames them (a CREATE DATABASE copies template1 and
// checkpoints twice), then compacts the databases (compactTemplate). The template is never
// started again: every project starts as a copy.
func (dp *DataPlane) prepareTemplate(ctx context.Context, tk *pgctl.Toolkit, dataDir string) error {
	sock, err := os.MkdirTemp(dp.sockRoot, "t")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	if err := tk.RunAs.Chown(sock); err != nil {
		return err
	}
	p, err := tk.Start(ctx, privateConfig(dp.serverConfig(dataDir, "", sock), tk.Bin.Major))
	if err != nil {
		return err
	}
	defer p.Stop(context.WithoutCancel(ctx))
	conn, err := tk.Admin(ctx, sock, p.Port, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range []string{
		"CREATE ROLE " + templateRole + " LOGIN CREATEDB CREATEROLE",
		"CREATE DATABASE " + templateDB + " OWNER " + templateRole,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := compactTemplate(ctx, tk, sock, p.Port, conn); err != nil {
		return err
	}
	return p.Stop(ctx)
}

// compactTemplate rewrites every database of a new template with VACUUM (FULL, FREEZE), as
// every project's data dir copies all four: initdb leaves dead catalog tuples, and its final
// VACUUM free space and visibility maps, ~1 MB a database that a rewrite drops. template0
// accepts connections only while it is vacuumed; FREEZE keeps it what it is for (every tuple
// frozen, datfrozenxid current). postgres (conn's) comes last: each database's VACUUM also
// rewrites the shared catalogs, so the last one drops the toggle's dead tuples. Statistics
// are reset: they still count initdb's dead tuples, and autovacuum would give the catalogs
// their maps back in every running copy.
func compactTemplate(ctx context.Context, tk *pgctl.Toolkit, sock string, port int, conn *pgx.Conn) error {
	const compact = "VACUUM (FULL, FREEZE)"
	const resetStats = "SELECT pg_stat_reset()"
	vacuum := func(db string) error {
		c, err := tk.Admin(ctx, sock, port, db)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		for _, s := range []string{compact, resetStats} {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s in %s: %w", s, db, err)
			}
		}
		return nil
	}
	steps := []func() error{
		func() error { return execAll(ctx, conn, "ALTER DATABASE template0 ALLOW_CONNECTIONS true") },
		func() error { return vacuum("template0") },
		func() error { return execAll(ctx, conn, "ALTER DATABASE template0 ALLOW_CONNECTIONS false") },
		func() error { return vacuum("template1") },
		func() error { return vacuum(templateDB) },
		func() error { return execAll(ctx, conn, compact, resetStats) },
		// The shutdown checkpoint then starts a fresh segment, the only one left (privateConfig)
		// and the one every copy starts in: the hand-out's WAL fits in it.
		func() error { return execAll(ctx, conn, "SELECT pg_switch_wal()") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("compact template: %w", err) // the half-made template is dropped
		}
	}
	return nil
}

func execAll(ctx context.Context, conn *pgx.Conn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// privateConfig is cfg for a private run that sets a cluster up (the template, a new
// project's hand-out): its shutdown checkpoint removes the WAL segments it wrote instead of
// renaming them into future segments (wal_recycle, PostgreSQL 12 and later; before, it keeps
// as few as max_wal_size allows, two), so every copy of the cluster starts with the one
// segment its last checkpoint is in. No autovacuum: a plain vacuum would give the
// template's compacted catalogs their free space and visibility maps back.
func privateConfig(cfg pgctl.ServerConfig, major int) pgctl.ServerConfig {
	cfg.Settings["autovacuum"] = "off"
	if major >= 12 {
		// max_wal_size stays large: the template's compaction writes ~25 MB of WAL, which
		// would otherwise checkpoint (and sync) every two segments.
		cfg.Settings["wal_recycle"] = "off"
	} else {
		cfg.Settings["max_wal_size"] = strconv.Itoa(2*walSegSizeMB) + "MB"
	}
	return cfg
}

// ErrMajorNotInstalled is wrapped when a project asks for a PostgreSQL major whose binaries
// are not installed.
var ErrMajorNotInstalled = errors.New("PostgreSQL major not installed")

// toolkit returns the toolkit of a PostgreSQL major (0: the default, the newest installed).
// A major that is not installed is an error, never another major in its place.
func (dp *DataPlane) toolkit(major int) (*pgctl.Toolkit, error) {
	if major == 0 {
		return dp.tk, nil
	}
	if tk, ok := dp.tks[major]; ok {
		return tk, nil
	}
	return nil, fmt.Errorf("PostgreSQL %d is not installed (installed: %s): %w", major, joinInts(dp.majors), ErrMajorNotInstalled)
}

// toolkitOf returns the toolkit of the major a cluster's data dir was made by (its
// PG_VERSION): a postgres of another major refuses to start on it.
func (dp *DataPlane) toolkitOf(dataDir string) (*pgctl.Toolkit, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(b)), ".")
	major, err := strconv.Atoi(v)
	if err != nil || major <= 0 {
		return nil, fmt.Errorf("dataplane: %s: malformed PG_VERSION %q", dataDir, b)
	}
	return dp.toolkit(major)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// Close stops every proxy and postgres process.
func (dp *DataPlane) Close() error {
	dp.mu.Lock()
	if dp.closed {
		dp.mu.Unlock()
		return nil
	}
	dp.closed = true
	close(dp.done)
	eps := make([]*endpoint, 0, len(dp.endpoints))
	for _, e := range dp.endpoints {
		eps = append(eps, e)
	}
	cls := make([]*cluster, 0, len(dp.clusters))
	for _, c := range dp.clusters {
		cls = append(cls, c)
	}
	dp.mu.Unlock()
	var errs []error
	for _, e := range eps {
		errs = append(errs, e.close())
	}
	dp.wg.Wait() // a backup in flight finishes (it holds its cluster) before the stops
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cls {
		errs = append(errs, c.stop(ctx))
	}
	errs = append(errs, os.RemoveAll(dp.sockRoot))
	return errors.Join(errs...)
}

// projectLock serializes the structural changes of one project (branch create, restore,
// snapshot): they read and move directories of several branches.
func (dp *DataPlane) projectLock(projectID string) *sync.Mutex {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	m, ok := dp.projects[projectID]
	if !ok {
		m = &sync.Mutex{}
		dp.projects[projectID] = m
	}
	return m
}

func (dp *DataPlane) projectDir(projectID string) string {
	return filepath.Join(dp.o.Dir, "projects", projectID)
}

func (dp *DataPlane) branchDir(projectID, branchID string) string {
	return filepath.Join(dp.projectDir(projectID), "branches", branchID)
}

func (dp *DataPlane) project(projectID string) (projectMeta, error) {
	var m projectMeta
	err := readJSON(filepath.Join(dp.projectDir(projectID), "project.json"), &m)
	return m, err
}

// mkdir creates dir and its missing parents under Dir, owned by PostgreSQL's user: every
// directory PostgreSQL touches (and its parents) must be reachable by it. Only the
// directories on the path are chowned, not what they hold (a recursive chown would walk
// every cluster on each start).
func (dp *DataPlane) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ra := dp.tk.RunAs
	if !ra.Switch {
		return nil
	}
	rel, err := filepath.Rel(dp.o.Dir, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return os.Lchown(dir, int(ra.UID), int(ra.GID))
	}
	p := dp.o.Dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if err := os.Lchown(p, int(ra.UID), int(ra.GID)); err != nil {
			return err
		}
	}
	return nil
}

// PGVersions lists the PostgreSQL majors installed, newest first: a project gets the one it
// asks for, and the control plane refuses the others (neonlocal.PGVersioner).
func (dp *DataPlane) PGVersions() []int { return slices.Clone(dp.majors) }
