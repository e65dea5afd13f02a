// Package monitor is the usage monitor `neonguard serve` runs: a sampler that reads every
// database's consumption this billing period from Neon's consumption-history endpoint and
// raises an alert once per quota threshold (80 %, 95 %, 100 %) per database, metric and
// period; and a deliverer that POSTs each alert, signed with HMAC-SHA256, to a webhook from a
// durable outbox in the store, retrying with backoff until the receiver accepts it.
//
// Budgets. Neon's consumption endpoints have their own small rate limit (about 30 requests a
// minute per account), so the sampler asks for up to 100 project ids a request and passes
// every request through one Pacer per process: a token bucket of RequestsPerMinute (default
// 30) with a burst of one, i.e. requests at least 60s/30 = 2s apart. The Neon client's own
// consumption limiter (30/min, burst 5 by default) is looser than that, so it never delays a
// paced request: the two do not fight. A 429 that the client's retries did not absorb pauses
// the pacer for a minute (Neon's bucket refills within one).
//
// Exactly once. Alerts are keyed by (database, metric, threshold, period start) in the store,
// so a later round, a restart or another replica raising the same alert is a no-op; the alert
// and its outbox row are written in one transaction. Deliveries are claimed with a lease, so
// one replica at a time sends a given alert; a receiver answering 2xx ends it. A crash between
// the receiver's 2xx and the store's update sends it again, so every request carries
// X-Neonguard-Delivery (the alert id) for receivers to deduplicate on.
package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Thresholds are the percentages of a quota at which an alert is raised.
var thresholds = [...]int{80, 95, 100}

// Defaults.
const (
	DefaultRequestsPerMinute = 30
	defaultRetention         = 62 * 24 * time.Hour // two billing periods of samples
	defaultPoll              = 5 * time.Second
	defaultLease             = time.Minute
	defaultSendTimeout       = 10 * time.Second
	minBackoff               = 5 * time.Second
	maxBackoff               = time.Hour
	maxIDsPerRequest         = 100
	deliveryBatch            = 20
	rateLimitPause           = time.Minute
	rateLimitTries           = 3
)

// Org is one Neon organization whose databases are sampled, with the client bound to its key.
type Org struct {
	ID  string
	API neon.API
}

// Clock is the time source of the loops and the pacer (tests pass a fake one).
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// sleep waits d on c, or until ctx ends.
func sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.After(d):
		return nil
	}
}

// Config configures a Monitor.
type Config struct {
	Store  store.Store
	Policy policy.Config
	Orgs   []Org

	// Interval between sampling rounds; rounds run back to back when one takes longer.
	Interval time.Duration
	// WebhookURL receives the alerts; empty: alerts are stored and logged only.
	WebhookURL string
	// WebhookSecret keys the HMAC-SHA256 signature; empty: requests are not signed.
	WebhookSecret string
	HTTPClient    *http.Client // default: a client with a 10s timeout

	// Pacer paces the consumption requests; share one per process (default: a new one of
	// RequestsPerMinute on Clock).
	Pacer             *Pacer
	RequestsPerMinute int // default 30

	Retention time.Duration // samples older than this are pruned (default 62 days)
	Poll      time.Duration // how often the deliverer looks for due deliveries (default 5s)
	Lease     time.Duration // how long a claimed delivery is reserved (default 1 min)
	Owner     string        // lease owner id (default: random per Monitor)

	// Locker, when set, makes replicas take turns: a round runs only under the "monitor/sampler"
	// lock, held until a minute after the round's last request, so the requests of two replicas
	// never share a minute and the account's consumption budget holds for the whole fleet. A
	// replica that cannot take the lock at once skips its round.
	Locker store.Locker

	Clock  Clock // default: the real clock
	Logger *slog.Logger
}

// Monitor samples usage and delivers alerts. Its loops are RunSampler and RunDeliverer; Sample
// and Deliver run one round each (tests and `neonguard` commands).
type Monitor struct {
	cfg    Config
	orgs   map[string]Org
	clock  Clock
	pacer  *Pacer
	log    *slog.Logger
	hc     *http.Client
	nudge  chan struct{} // the sampler raised an alert: deliver now
	random func() float64
}

// New checks cfg and returns a Monitor.
func New(cfg Config) (*Monitor, error) {
	if cfg.Store == nil {
		return nil, errors.New("monitor: a store is required")
	}
	if cfg.WebhookURL != "" {
		u, err := url.Parse(cfg.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Never echo the URL: it may carry a token.
			return nil, errors.New("monitor: webhook_url must be an absolute http or https URL")
		}
	}
	m := &Monitor{cfg: cfg, orgs: make(map[string]Org, len(cfg.Orgs)), clock: cfg.Clock, pacer: cfg.Pacer,
		log: cfg.Logger, hc: cfg.HTTPClient, nudge: make(chan struct{}, 1), random: mrand.Float64}
	for _, o := range cfg.Orgs {
		if o.ID == "" || o.API == nil {
			return nil, errors.New("monitor: every org needs an id and a client")
		}
		m.orgs[o.ID] = o
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.pacer == nil {
		m.pacer = NewPacer(cfg.RequestsPerMinute, m.clock)
	}
	if m.hc == nil {
		m.hc = &http.Client{Timeout: defaultSendTimeout}
	}
	if m.cfg.Retention <= 0 {
		m.cfg.Retention = defaultRetention
	}
	if m.cfg.Poll <= 0 {
		m.cfg.Poll = defaultPoll
	}
	if m.cfg.Lease < 2*defaultSendTimeout { // a claimed row must outlive at least one send
		m.cfg.Lease = defaultLease
	}
	if m.cfg.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		m.cfg.Owner = "mon-" + hex.EncodeToString(b[:])
	}
	return m, nil
}

// takeTurn takes the sampler lock when replicas share a store; ok=false when another replica
// holds it (its round is under way) or ctx ended.
func (m *Monitor) takeTurn(ctx context.Context) (unlock func(), ok bool) {
	if m.cfg.Locker == nil {
		return func() {}, true
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	unlock, err := m.cfg.Locker.Lock(lctx, "monitor/sampler")
	if err != nil {
		m.log.Debug("usage monitor: another replica is sampling; skipping this round")
		return nil, false
	}
	return unlock, true
}

// RunSampler samples every Interval until ctx ends (the first round at once).
func (m *Monitor) RunSampler(ctx context.Context) {
	if m.cfg.Interval <= 0 {
		return
	}
	for {
		start := m.clock.Now()
		unlock, ok := m.takeTurn(ctx)
		if !ok {
			if ctx.Err() != nil || sleep(ctx, m.clock, m.cfg.Interval) != nil {
				return
			}
			continue
		}
		st, err := m.Sample(ctx)
		// Keep the turn for a minute after the last request: the next replica's requests then
		// fall in another minute than ours.
		_ = sleep(ctx, m.clock, time.Minute)
		unlock()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.log.Warn("usage monitor round failed", "err", err)
		} else {
			m.log.Debug("usage monitor round", "databases", st.Databases, "sampled", st.Sampled,
				"requests", st.Requests, "alerts", st.Alerts, "took", m.clock.Now().Sub(start))
		}
		if sleep(ctx, m.clock, m.cfg.Interval-m.clock.Now().Sub(start)) != nil {
			return
		}
	}
}

// RunDeliverer delivers due alerts until ctx ends; it does nothing without a webhook URL.
func (m *Monitor) RunDeliverer(ctx context.Context) {
	if m.cfg.WebhookURL == "" {
		return
	}
	for {
		n, err := m.Deliver(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.log.Warn("usage alert delivery failed", "err", err)
		}
		if n == deliveryBatch {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return
		case <-m.nudge:
		case <-m.clock.After(m.cfg.Poll):
		}
	}
}

func (m *Monitor) poke() {
	select {
	case m.nudge <- struct{}{}:
	default:
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf("monitor: "+format, args...) }
