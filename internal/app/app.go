// Package app wires neonguard together from its configuration: the store, the Neon backend
// (Neon itself, or the embedded emulator on a loopback port), the guard and the MCP server.
// `neonguard serve`, `neonguard call` and the integration tests all build the server here, so
// tests exercise the wiring users run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/metrics"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/controlplane"
	"github.com/neonguard/neonguard/internal/neonlocal/dataplane"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/server"
	"github.com/neonguard/neonguard/internal/store"
)

// Version is set at build time (-ldflags "-X .../internal/app.Version=v1.2.3").
var Version = "dev"

// tenantCacheTTL is how long a replica may use a tenant's tier after another replica changed it.
const tenantCacheTTL = 2 * time.Second

// Options adjust the wiring for tests.
type Options struct {
	Logger *slog.Logger
	// WrapEmulator wraps the embedded emulator's handler (tests validate every request and
	// response against Neon's OpenAPI spec with it).
	WrapEmulator func(http.Handler) http.Handler
	// NeonClient adjusts the Neon client configuration (tests shorten retry budgets).
	NeonClient func(*neon.Config)
	// AfterJobStep is called right after a job step is recorded. Test-only (crash tests).
	AfterJobStep func(jobID, step string)
	// AfterNeonResponse is called when a Neon request's response arrived, before the client
	// reads it. Test-only: the crash-point explorer kills the process there.
	AfterNeonResponse func(*http.Request)
	// SQLIdleTimeout is how long the guard keeps a SQL connection open after its last call
	// (0: guard.DefaultSQLIdleTimeout). Test-only: tests shorten it.
	SQLIdleTimeout time.Duration
}

// App is a wired neonguard.
type App struct {
	Config   config.Config
	Store    store.Store
	Locker   store.Locker
	Guard    *guard.Guard
	Metrics  *metrics.Metrics
	Local    *server.Local        // single-tenant (stdio, call): every call is the configured tenant
	Emulator *controlplane.Server // nil on the neon backend
	// EmulatorURL is the emulator's base URL (…/api/v2); empty on the neon backend.
	EmulatorURL string
	Lifecycle   *operator.TierChanges // tier changes (set_tier) and their jobs

	opts       Options
	emulatorRT http.RoundTripper // the embedded emulator's handler, in process (inProcessTransport)
	closers    []func() error
	background []background
	orgs       []guard.Org // the guard's orgs and clients (the usage monitor samples through them)
}

// New wires an App. The caller must Close it.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a := &App{Config: cfg, Metrics: metrics.New(), opts: opts}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()

	// The store and the Neon backend (the emulator's data plane looks for PostgreSQL and
	// recovers its clusters) do not depend on each other: start-up opens them at once
	// (docs/benchmarks.md, "Start-up").
	type opened struct {
		st     store.Store
		locker store.Locker
		err    error
	}
	storeDone := make(chan opened, 1)
	go func() {
		st, locker, err := OpenStore(ctx, cfg)
		storeDone <- opened{st, locker, err}
	}()

	var orgs []guard.Org
	switch cfg.Backend() {
	case "local":
		orgs, err = a.startEmulator(ctx, cfg, opts, log)
	default:
		orgs, err = a.neonOrgs(cfg, opts, log)
	}
	o := <-storeDone
	if o.err == nil {
		// First in closers, so it closes last: the guard and the emulator use it until then.
		a.closers = append([]func() error{o.st.Close}, a.closers...)
	}
	if err != nil {
		return nil, errors.Join(err, o.err)
	}
	if o.err != nil {
		return nil, o.err
	}
	// Tenants are read on every call (tier, rate limit); a tier change made by another replica
	// takes effect within tenantCacheTTL.
	a.Store, a.Locker = store.NewTenantCache(o.st, tenantCacheTTL), o.locker
	a.orgs = orgs
	if cfg.Defaults.PGVersion == 0 {
		// Unset: the backend's default. The local backend's is the newest PostgreSQL installed,
		// so databases that name no version get one it runs.
		cfg.Defaults.PGVersion = config.NeonDefaultPGVersion
		if a.Emulator != nil {
			if v := a.Emulator.DefaultPGVersion(); v != 0 {
				cfg.Defaults.PGVersion = v
			}
		}
		a.Config.Defaults.PGVersion = cfg.Defaults.PGVersion
	}

	if _, err := a.Store.EnsureTenant(ctx, cfg.Tenant, cfg.Tier); err != nil {
		return nil, fmt.Errorf("tenant %q: %w", cfg.Tenant, err)
	}
	g, err := guard.New(guard.Deps{
		Store: a.Store, Locker: a.Locker, Policy: cfg.Policy, Orgs: orgs,
		DefaultRegion: cfg.Defaults.Region, DefaultPGVersion: cfg.Defaults.PGVersion, Logger: log,
		SQLIdleTimeout: opts.SQLIdleTimeout,
	})
	if err != nil {
		return nil, err
	}
	a.Guard = g
	a.closers = append(a.closers, g.Close) // the SQL connections it keeps, before the emulator stops
	for _, setup := range []func(context.Context, *slog.Logger) error{a.setupLifecycle, a.setupMonitor, a.setupJanitor} {
		if err := setup(ctx, log); err != nil {
			return nil, err
		}
	}
	a.Local, err = server.NewLocal(server.Options{
		Guard: g, Audit: a.Store, Logger: log, Version: Version,
		DefaultPrincipal: &identity.Principal{TenantID: cfg.Tenant},
		CallTimeout:      cfg.CallTimeout,
		ReadOnly:         cfg.ReadOnly(),
		ToolGroups:       cfg.Tools,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// OpenStore opens the configured metadata store with the Locker that fits it: a PostgreSQL
// store is shared by replicas, so its per-database lock is a PostgreSQL advisory lock; the
// SQLite store belongs to one process, so an in-process lock suffices.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, store.Locker, error) {
	if cfg.PostgresStore() {
		pg, err := store.OpenPostgres(ctx, cfg.Store)
		if err != nil {
			return nil, nil, err // its errors start with "store:"
		}
		return pg, pg.Locker(), nil
	}
	st, err := store.OpenSQLite(ctx, cfg.SQLitePath())
	if err != nil {
		return nil, nil, err
	}
	return st, store.NewMemLocker(), nil
}

// NewEmulator builds the local Neon API emulator with its data plane: real PostgreSQL
// clusters when PostgreSQL is installed (local.postgres auto or on), the API alone otherwise.
// The returned close function stops both.
func NewEmulator(ctx context.Context, cfg config.Config, log *slog.Logger, eopts ...EmulatorOption) (_ *controlplane.Server, _ func() error, err error) {
	// The lock comes first: the data plane stops the postgres processes it finds running on
	// the data dir as orphans of a crash, and they are a live owner's while it holds the lock.
	lock, err := neonlocal.LockDataDir(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("local emulator: %w", err)
	}
	var dp *dataplane.DataPlane
	defer func() {
		if err != nil {
			if dp != nil {
				_ = dp.Close()
			}
			_ = lock.Close()
		}
	}()
	if cfg.Local.Postgres != "off" {
		dp, err = dataplane.New(ctx, dataplane.Options{
			Dir: filepath.Join(cfg.DataDir, "pg"), BinDir: cfg.Local.PGBinDir, User: cfg.Local.PGUser,
			Logger: log.With("component", "dataplane"), OwnerLock: lock.Path(),
		})
		switch {
		case err != nil && cfg.Local.Postgres == "auto" && errors.Is(err, pgctl.ErrNoPostgres):
			log.Warn("PostgreSQL is not installed: the local backend serves the Neon API, but its connection strings do not connect", "err", err)
			dp, err = nil, nil
		case err != nil:
			return nil, nil, fmt.Errorf("local databases: %w", err)
		}
	}
	opts := controlplane.Options{
		DataDir:        cfg.DataDir,
		PersonalAPIKey: cfg.Local.PersonalAPIKey,
		FreeOrgAPIKey:  cfg.Local.FreeOrgAPIKey,
		PaidOrgAPIKey:  cfg.Local.PaidOrgAPIKey,
		OperationDelay: cfg.Local.OperationDelay,
		Logger:         log.With("component", "neonlocal"),
		Lock:           lock,
	}
	if dp != nil {
		opts.DataPlane = dp
		// Only real databases take disk: without PostgreSQL there is nothing to budget.
		opts.DiskBudget, opts.DiskMinFree = int64(cfg.Local.DiskBudget), int64(cfg.Local.DiskMinFree)
	}
	for _, o := range eopts {
		o(&opts)
	}
	emu, err := controlplane.New(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("local emulator: %w", err)
	}
	closeAll := func() error {
		err := emu.Close()
		if dp != nil {
			err = errors.Join(err, dp.Close())
		}
		// Last: the data dir is free only once its postgres processes are stopped.
		return errors.Join(err, lock.Close())
	}
	return emu, closeAll, nil
}

// startEmulator runs the embedded Neon API emulator on a loopback port and returns clients for
// its two orgs. The guard talks to it over HTTP exactly as it talks to Neon.
func (a *App) startEmulator(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) ([]guard.Org, error) {
	emu, closeEmu, err := NewEmulator(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a.Emulator = emu
	a.closers = append(a.closers, closeEmu)

	ln, err := net.Listen("tcp", cfg.Local.Listen)
	if err != nil {
		return nil, fmt.Errorf("local emulator: listen on %s: %w", cfg.Local.Listen, err)
	}
	var h http.Handler = emu
	if opts.WrapEmulator != nil {
		h = opts.WrapEmulator(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("local emulator stopped", "err", err)
		}
	}()
	inProcess := &inProcessTransport{handler: h, log: log}
	a.emulatorRT = inProcess
	a.closers = append(a.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return errors.Join(srv.Shutdown(ctx), inProcess.Wait(ctx))
	})
	a.EmulatorURL = "http://" + ln.Addr().String() + "/api/v2"

	creds := emu.Credentials()
	opts = emulatorClients(opts, a.emulatorRT)
	free, err := a.newClient(a.EmulatorURL, creds.FreeOrgAPIKey, cfg.CallTimeout, opts, log)
	if err != nil {
		return nil, err
	}
	paid, err := a.newClient(a.EmulatorURL, creds.PaidOrgAPIKey, cfg.CallTimeout, opts, log)
	if err != nil {
		return nil, err
	}
	return []guard.Org{{Plan: "free", ID: creds.FreeOrgID, API: free}, {Plan: "paid", ID: creds.PaidOrgID, API: paid}}, nil
}

// emulatorClients adjusts the Neon clients of the embedded emulator. They reach it in process
// (inProcessTransport), the same handler its listener serves. It answers at once: poll its
// operations often, as a second's granularity would dominate every tool call (its operations
// take 50 ms and up; the client first polls an action shortly before its recent ones were
// done, then every 20 ms at most, so the poll adds little to the wait). Neon's
// account-wide request rate (700/min) is what the client's limiter protects; the emulator has
// no such budget, and keeping it would make every tenant's reads queue behind 10 requests a
// second. The consumption-history limit stays: it is part of what the emulator reproduces.
func emulatorClients(opts Options, tr http.RoundTripper) Options {
	adjust := opts.NeonClient
	opts.NeonClient = func(c *neon.Config) {
		c.Transport = tr
		c.OperationPoll, c.OperationPollMax = 5*time.Millisecond, 20*time.Millisecond
		c.RequestsPerSecond, c.Burst = 5000, 5000
		if adjust != nil {
			adjust(c)
		}
	}
	return opts
}

// neonClients sets the Neon clients' limiter from neon.requests_per_minute and
// neon.request_burst: each client (one API key) of this replica has its own bucket, so
// replicas sharing the keys are configured with their share of Neon's budget.
func neonClients(cfg config.Config, opts Options) Options {
	adjust := opts.NeonClient
	opts.NeonClient = func(c *neon.Config) {
		c.RequestsPerSecond, c.Burst = cfg.Neon.NeonRate()
		if adjust != nil {
			adjust(c)
		}
	}
	return opts
}

func (a *App) neonOrgs(cfg config.Config, opts Options, log *slog.Logger) ([]guard.Org, error) {
	opts = neonClients(cfg, opts)
	free, err := a.newClient(cfg.Neon.APIHost, cfg.Neon.FreeOrgAPIKey, cfg.CallTimeout, opts, log)
	if err != nil {
		return nil, err
	}
	paid, err := a.newClient(cfg.Neon.APIHost, cfg.Neon.PaidOrgAPIKey, cfg.CallTimeout, opts, log)
	if err != nil {
		return nil, err
	}
	return []guard.Org{{Plan: "free", ID: cfg.Neon.FreeOrgID, API: free}, {Plan: "paid", ID: cfg.Neon.PaidOrgID, API: paid}}, nil
}

func (a *App) newClient(baseURL, key string, callTimeout time.Duration, opts Options, log *slog.Logger) (*neon.Client, error) {
	// The client's own budgets end before the tool call's, so a slow Neon gives the agent a
	// clear UPSTREAM error rather than a timeout in the middle of the bookkeeping.
	wrap := a.Metrics.RoundTripper
	if after := opts.AfterNeonResponse; after != nil {
		wrap = func(next http.RoundTripper) http.RoundTripper {
			return afterResponse{next: a.Metrics.RoundTripper(next), after: after}
		}
	}
	c := neon.Config{BaseURL: baseURL, APIKey: key, Logger: log.With("component", "neon"), UserAgent: "neonguard/" + Version,
		MaxElapsed: min(30*time.Second, callTimeout/2), OperationTimeout: callTimeout * 4 / 5,
		WrapTransport: wrap}
	if opts.NeonClient != nil {
		opts.NeonClient(&c)
	}
	return neon.New(c)
}

// afterResponse calls after once a request's response arrived (Options.AfterNeonResponse).
type afterResponse struct {
	next  http.RoundTripper
	after func(*http.Request)
}

func (rt afterResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(r)
	if err == nil {
		rt.after(r)
	}
	return resp, err
}

// Close stops everything New started, last first.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}
