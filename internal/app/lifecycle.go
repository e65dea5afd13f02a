package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/operator"
)

// jobSweepInterval is how often serve looks for jobs a crashed replica left behind (after
// resuming every unfinished job at start).
const jobSweepInterval = time.Minute

// setupLifecycle wires tier changes: a client on Neon's personal API key (the only key that
// may move projects between orgs) and a background loop that finishes unfinished jobs.
func (a *App) setupLifecycle(_ context.Context, log *slog.Logger) error {
	cfg := a.Config
	var personal neon.API
	if a.Emulator != nil {
		creds := a.Emulator.Credentials()
		c, err := a.newClient(a.EmulatorURL, creds.PersonalAPIKey, cfg.CallTimeout, emulatorClients(a.opts, a.emulatorRT), log)
		if err != nil {
			return err
		}
		personal = c
	} else {
		// Without a personal key the service still lists jobs; set_tier says what is missing.
		if cfg.Neon.PersonalAPIKey != "" {
			c, err := a.newClient(cfg.Neon.APIHost, cfg.Neon.PersonalAPIKey, cfg.CallTimeout, neonClients(cfg, a.opts), log)
			if err != nil {
				return err
			}
			personal = c
		}
	}
	svc, err := operator.NewTierChanges(operator.TierChangeDeps{
		Store: a.Store, Locker: a.Locker, Policy: cfg.Policy, Orgs: a.orgs, Personal: personal,
		Logger: log, AfterStep: a.opts.AfterJobStep,
	})
	if err != nil {
		return err
	}
	a.Lifecycle = svc
	a.background = append(a.background, background{name: "jobs", run: func(ctx context.Context) {
		svc.Loop(ctx, jobSweepInterval)
	}})
	return nil
}
