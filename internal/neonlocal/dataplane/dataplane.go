package dataplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// Options configure the data plane.
type Options struct {
	Dir    string // where clusters live; must be reachable by User
	BinDir string // PostgreSQL binaries; empty = found on PATH, via pg_config, or in /usr/lib/postgresql
	User   string // the unprivileged user PostgreSQL runs as when neonguard runs as root (default "postgres")
	Logger *slog.Logger
	// DefaultSuspendTimeout applies to endpoints whose suspend timeout is 0 (Neon's default: 5 min).
	DefaultSuspendTimeout time.Duration
	// Settings are extra PostgreSQL settings for every cluster (tests turn fsync off).
	Settings map[string]string
}

// DataPlane implements neonlocal.DataPlane on local PostgreSQL clusters.
type DataPlane struct {
	o        Options
	tk       *pgctl.Toolkit
	log      *slog.Logger
	cert     string
	key      string
	tls      *tls.Config // the proxies answer TLS themselves only to refuse a client
	sockRoot string

	wg   sync.WaitGroup // background work: base backups, endpoint re-attachment
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
	bins, err := pgctl.FindBinaries(ctx, o.BinDir)
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
		tk:        &pgctl.Toolkit{Bin: bins, RunAs: runAs, Logger: o.Logger.With("component", "postgres")},
		done:      make(chan struct{}),
		clusters:  map[string]*cluster{},
		endpoints: map[string]*endpoint{},
		projects:  map[string]*sync.Mutex{},
	}
	dp.cert, dp.key, err = pgctl.EnsureCert(filepath.Join(o.Dir, "tls"), runAs)
	if err != nil {
		return nil, fmt.Errorf("dataplane: certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(dp.cert, dp.key)
	if err != nil {
		return nil, fmt.Errorf("dataplane: certificate: %w", err)
	}
	dp.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if err := dp.ensureTemplate(ctx); err != nil {
		return nil, err
	}
	if err := dp.recover(ctx); err != nil {
		return nil, err
	}
	return dp, nil
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

func (dp *DataPlane) templateDir() string {
	return filepath.Join(dp.o.Dir, "template", strconv.Itoa(dp.tk.Bin.Major))
}

// ensureTemplate runs initdb once per PostgreSQL major version; every new project starts as
// a copy of it, which takes a fraction of initdb's time.
func (dp *DataPlane) ensureTemplate(ctx context.Context) error {
	dir := dp.templateDir()
	if exists(filepath.Join(dir, "PG_VERSION")) {
		return nil
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := dp.mkdir(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := dp.tk.InitDB(ctx, tmp); err != nil {
		return fmt.Errorf("dataplane: initdb: %w", err)
	}
	return os.Rename(tmp, dir)
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

// PGVersion is the major version of the PostgreSQL every branch runs: the control plane
// reports it as the project's pg_version whatever was asked, since only one is installed.
func (dp *DataPlane) PGVersion() int { return dp.tk.Bin.Major }
