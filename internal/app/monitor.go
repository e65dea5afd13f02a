package app

import (
	"context"
	"log/slog"

	"github.com/neonguard/neonguard/internal/monitor"
)

// setupMonitor adds the usage monitor when monitor.interval > 0: a sampler loop that reads
// every database's consumption through the guard's org clients and raises quota alerts, and,
// with monitor.webhook_url, a deliverer loop that POSTs them from the store's outbox.
//
// One Pacer serves both orgs: Neon's consumption budget (~30 requests a minute) is per
// account, and each client's own consumption limiter (30/min, burst 5) is per client, so the
// pacer (30/min, burst 1) is the stricter of the two and the clients' limiters never delay it.
func (a *App) setupMonitor(_ context.Context, log *slog.Logger) error {
	cfg := a.Config.Monitor
	if cfg.Interval <= 0 {
		return nil
	}
	log = log.With("component", "monitor")
	orgs := make([]monitor.Org, 0, len(a.orgs))
	for _, o := range a.orgs {
		orgs = append(orgs, monitor.Org{ID: o.ID, API: o.API})
	}
	mcfg := monitor.Config{
		Store: a.Store, Policy: a.Config.Policy, Orgs: orgs, Interval: cfg.Interval,
		WebhookURL: cfg.WebhookURL, WebhookSecret: cfg.WebhookSecret, Logger: log,
	}
	if a.Config.PostgresStore() { // replicas share the store: they take turns (one process needs no lock)
		mcfg.Locker = a.Locker
	}
	m, err := monitor.New(mcfg)
	if err != nil {
		return err
	}
	if cfg.WebhookURL != "" && cfg.WebhookSecret == "" {
		log.Warn("monitor.webhook_url is set without monitor.webhook_secret: alerts are sent unsigned")
	}
	a.background = append(a.background, background{name: "monitor", run: m.RunSampler})
	if cfg.WebhookURL != "" {
		a.background = append(a.background, background{name: "monitor-webhook", run: m.RunDeliverer})
	}
	return nil
}
