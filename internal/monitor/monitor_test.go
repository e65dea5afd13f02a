package monitor

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

const testSecret = "whsec-test-not-real"

// receiver is a webhook endpoint that fails the first failures deliveries of each alert with
// 500 and counts the accepted ones by X-Neonguard-Delivery.
type receiver struct {
	t        *testing.T
	failures int

	mu       sync.Mutex
	attempts map[string]int
	accepted map[string]int
	payloads map[string]Payload
}

func newReceiver(t *testing.T, failures int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, failures: failures, attempts: map[string]int{}, accepted: map[string]int{}, payloads: map[string]Payload{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get(HeaderDelivery)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[id]++
	if r.attempts[id] <= r.failures {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if err := Verify(testSecret, body, req.Header.Get(HeaderSignature), req.Header.Get(HeaderTimestamp), time.Time{}, 0); err != nil {
		r.t.Errorf("delivery %s: %v", id, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if req.Header.Get(HeaderTimestamp) == "" || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("delivery %s: headers %v", id, req.Header)
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil || p.ID != id {
		r.t.Errorf("delivery %s: payload %s: %v", id, body, err)
	}
	r.accepted[id]++
	r.payloads[id] = p
	w.WriteHeader(http.StatusNoContent)
}

// TestAlertsDeliveredExactlyOnce is issue 5's proof: a receiver fails the first 3 deliveries
// of every alert, the monitor restarts (store closed and reopened on the same data) in the
// middle, a delivery is left leased by a "crashed" replica, and still each alert arrives
// exactly once, with a valid signature.
func TestAlertsDeliveredExactlyOnce(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			open := e.open(t)
			clock := newFakeClock(time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC))
			free := policy.Default().Tiers["free"].Quota
			api := &fakeNeon{usage: map[string]neon.ConsumptionPoint{
				// 97 % of active time: 80 and 95.
				"db-a": {ActiveTimeSeconds: free.ActiveTimeSeconds * 97 / 100},
				// 101 % of the logical size: 80, 95 and 100.
				"db-b": {LogicalSizeBytes: free.LogicalSizeBytes * 101 / 100, ActiveTimeSeconds: 10},
				// 50 %: nothing.
				"db-c": {ActiveTimeSeconds: free.ActiveTimeSeconds / 2},
			}}
			recv, srv := newReceiver(t, 3)
			newMonitor := func(st store.Store) *Monitor {
				m, err := New(Config{Store: st, Policy: policy.Default(), Orgs: []Org{{ID: "org-free", API: api}},
					Interval: 15 * time.Minute, WebhookURL: srv.URL + "/hooks/neonguard", WebhookSecret: testSecret,
					HTTPClient: srv.Client(), Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				return m
			}

			st := open()
			for _, id := range []string{"db-a", "db-b", "db-c"} {
				addDatabase(t, st, "t1", "free", id, "org-free")
			}
			m := newMonitor(st)
			rs, err := m.Sample(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rs.Databases != 3 || rs.Sampled != 3 || rs.Requests != 1 || rs.Alerts != 5 {
				t.Fatalf("round %+v", rs)
			}
			// A second round raises nothing new.
			if rs, err := m.Sample(ctx); err != nil || rs.Alerts != 0 {
				t.Fatalf("second round %+v %v", rs, err)
			}
			for range 2 { // attempts 1 and 2 fail
				if n, err := m.Deliver(ctx); err != nil || n != 5 {
					t.Fatalf("deliver: %d %v", n, err)
				}
				if n, _ := m.Deliver(ctx); n != 0 {
					t.Fatalf("deliver before the backoff: %d", n)
				}
				clock.Advance(2 * time.Hour)
			}
			// A replica claims db-a's first alert and dies before sending it.
			stolen, err := st.ClaimDeliveries(ctx, "crashed-replica", clock.Now(), time.Minute, 1)
			if err != nil || len(stolen) != 1 {
				t.Fatalf("claim %v %v", stolen, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// Restart: new store handle, new monitor, same data.
			st = open()
			t.Cleanup(func() { _ = st.Close() })
			m = newMonitor(st)
			if rs, err := m.Sample(ctx); err != nil || rs.Alerts != 0 || rs.Sampled != 3 {
				t.Fatalf("round after restart %+v %v", rs, err)
			}
			if n, err := m.Deliver(ctx); err != nil || n != 4 { // attempt 3 fails; the leased one waits
				t.Fatalf("deliver after restart: %d %v", n, err)
			}
			clock.Advance(2 * time.Hour)
			for {
				n, err := m.Deliver(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				clock.Advance(2 * time.Hour)
			}

			recv.mu.Lock()
			defer recv.mu.Unlock()
			if len(recv.accepted) != 5 {
				t.Fatalf("accepted %v", recv.accepted)
			}
			for id, n := range recv.accepted {
				if n != 1 || recv.attempts[id] != 4 {
					t.Errorf("alert %s: accepted %d times after %d attempts; want once after 4", id, n, recv.attempts[id])
				}
			}
			want := map[string][]int{"db-a": {80, 95}, "db-b": {80, 95, 100}}
			for db, ths := range want {
				alerts, err := st.ListAlerts(ctx, db, clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if len(alerts) != len(ths) {
					t.Fatalf("%s alerts %+v", db, alerts)
				}
				for i, a := range alerts {
					if a.Threshold != ths[i] || a.DeliveredAt == nil || a.Attempts != 3 {
						t.Errorf("%s alert %+v", db, a)
					}
					p := recv.payloads[a.ID]
					if p.DatabaseID != db || p.Threshold != a.Threshold || p.Metric != a.Metric || p.Type != PayloadType ||
						!p.PeriodStart.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) {
						t.Errorf("payload %+v for %+v", p, a)
					}
				}
			}
			if alerts, _ := st.ListAlerts(ctx, "db-c", clock.Now()); len(alerts) != 0 {
				t.Errorf("db-c alerts %+v", alerts)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"alert-1"}`)
	now := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign("s3cret", now.Unix(), body)
	if err := Verify("s3cret", body, sig, ts, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	for name, c := range map[string]struct {
		secret, header, ts string
		body               []byte
		now                time.Time
	}{
		"wrong secret":        {"other", sig, ts, body, now},
		"changed body":        {"s3cret", sig, ts, []byte(`{"id":"alert-2"}`), now},
		"no prefix":           {"s3cret", sig[len("sha256="):], ts, body, now},
		"not hex":             {"s3cret", "sha256=zz", ts, body, now},
		"empty":               {"s3cret", "", ts, body, now},
		"truncated":           {"s3cret", sig[:20], ts, body, now},
		"replayed, new stamp": {"s3cret", sig, strconv.FormatInt(now.Unix()+3600, 10), body, now.Add(time.Hour)},
		"replayed, old stamp": {"s3cret", sig, ts, body, now.Add(time.Hour)},
		"no timestamp":        {"s3cret", sig, "", body, now},
	} {
		if err := Verify(c.secret, c.body, c.header, c.ts, c.now, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPacer(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC))
	p := NewPacer(30, clock)
	var at []time.Time
	for i := range 100 {
		if i == 50 {
			p.Pause(time.Minute)
		}
		if err := p.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		at = append(at, clock.Now())
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 2*time.Second {
			t.Fatalf("requests %d and %d %v apart", i-1, i, gap)
		}
	}
	if gap := at[50].Sub(at[49]); gap < time.Minute {
		t.Fatalf("pause not honoured: %v", gap)
	}
}

func TestBackoffBounds(t *testing.T) {
	m, err := New(Config{Store: nilStore{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []float64{0, 0.5, 0.999} {
		m.random = func() float64 { return r }
		prev := time.Duration(0)
		for n := 1; n < 40; n++ {
			d := m.backoff(n)
			if d < minBackoff || d > maxBackoff {
				t.Fatalf("backoff(%d) = %v", n, d)
			}
			if d < prev {
				t.Fatalf("backoff(%d) = %v < %v", n, d, prev)
			}
			prev = d
		}
	}
}

type nilStore struct{ store.Store }

func TestRateLimitedRoundPauses(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC))
	path := t.TempDir() + "/s.db"
	st, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	addDatabase(t, st, "t1", "free", "db-a", "org-free")
	api := &fakeNeon{fail: []error{&neon.APIError{StatusCode: http.StatusTooManyRequests}}}
	m, err := New(Config{Store: st, Policy: policy.Default(), Orgs: []Org{{ID: "org-free", API: api}}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	start := clock.Now()
	rs, err := m.Sample(t.Context())
	if err != nil || rs.Sampled != 1 || rs.Requests != 2 {
		t.Fatalf("round %+v %v", rs, err)
	}
	if waited := clock.Now().Sub(start); waited < rateLimitPause {
		t.Fatalf("retried after %v", waited)
	}
}

// TestReplicasTakeTurnsSampling: with a shared Locker, a replica whose peer holds the sampler
// turn skips its round instead of adding its requests to the same minute.
func TestReplicasTakeTurnsSampling(t *testing.T) {
	locker := store.NewMemLocker()
	a := &Monitor{cfg: Config{Locker: locker}, log: slog.New(slog.DiscardHandler)}
	b := &Monitor{cfg: Config{Locker: locker}, log: slog.New(slog.DiscardHandler)}
	unlockA, ok := a.takeTurn(t.Context())
	if !ok {
		t.Fatal("the first replica did not get the turn")
	}
	if _, ok := b.takeTurn(t.Context()); ok {
		t.Fatal("a second replica sampled while the first held the turn")
	}
	unlockA()
	unlockB, ok := b.takeTurn(t.Context())
	if !ok {
		t.Fatal("the turn was not free after the first replica finished")
	}
	unlockB()
	if _, ok := (&Monitor{log: slog.New(slog.DiscardHandler)}).takeTurn(t.Context()); !ok {
		t.Fatal("without a Locker every round runs")
	}
}
