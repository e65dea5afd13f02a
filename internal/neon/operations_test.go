package neon

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// timedOps serves GET .../operations/{id}: an operation is running until the fake clock passes
// its end, then finished. It counts the polls.
type timedOps struct {
	clk   *fakeClock
	mu    sync.Mutex
	end   map[string]time.Time
	polls int
}

func (o *timedOps) start(id string, d time.Duration) Operation {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.end[id] = o.clk.now().Add(d)
	return Operation{ID: id, ProjectID: "proj-1", Action: "create_branch", Status: OpRunning}
}

func (o *timedOps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	o.mu.Lock()
	o.polls++
	end, ok := o.end[id]
	o.mu.Unlock()
	if !ok {
		writeErr(w, http.StatusNotFound, "", "operation not found")
		return
	}
	status := OpRunning
	if !o.clk.now().Before(end) {
		status = OpFinished
	}
	writeJSON(w, http.StatusOK, map[string]any{"operation": Operation{ID: id, ProjectID: "proj-1", Action: "create_branch", Status: status}})
}

// TestOperationPollsFollowRecentDurations: the first wait for an action polls from
// OperationPoll up; later ones are polled around the duration of the last one. Once settled
// (from the settled-th wait), no wait takes more polls than polling from OperationPoll up
// would (six for a second on Neon's defaults), the average is at most avg, and each sees its
// operation done at most lag after it was (polling from 25 ms up: up to 575 ms for a second).
// After an operation much slower or faster than the next ones the schedule follows within
// three waits.
func TestOperationPollsFollowRecentDurations(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		poll, max time.Duration // the client's OperationPoll and OperationPollMax
		durations []time.Duration
		settled   int // waits from this index on are checked
		polls     int // at most, each
		avg       float64
		lag       time.Duration
	}{
		{"neon", 0, 0, ms(1000, 1000, 1100, 950, 1000, 1050, 1000, 1000, 980, 1000, 1020), 1, 6, 4, 150 * time.Millisecond},
		{"emulator", 2 * time.Millisecond, 50 * time.Millisecond, ms(55, 56, 55, 54, 55, 55), 1, 6, 4, 10 * time.Millisecond},
		// The emulator's data plane varies twofold; neonguard local polls it every 20 ms at most.
		{"emulator varying", 5 * time.Millisecond, 20 * time.Millisecond, ms(500, 300, 450, 200, 480, 250), 0, 30, 30, 20 * time.Millisecond},
		// The first undo after a bulk load replays its WAL; later ones are faster.
		{"slow first", 0, 0, ms(2000, 700, 700, 700, 720, 700, 690, 700), 3, 6, 4, 100 * time.Millisecond},
		// A no-op finishing at once, then the usual.
		{"fast first", 0, 0, ms(20, 1000, 1000, 1000, 1000, 1000), 3, 6, 4, 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := &timedOps{end: map[string]time.Time{}}
			c, clk := newTestClient(t, ops, func(cfg *Config) { cfg.OperationPoll, cfg.OperationPollMax = tc.poll, tc.max })
			ops.clk = clk
			total, settled := 0, 0
			for i, d := range tc.durations {
				op := ops.start(string(rune('a'+i)), d)
				ops.mu.Lock()
				ops.polls = 0
				ops.mu.Unlock()
				began := clk.now()
				if err := c.waitOperations(context.Background(), "proj-1", []Operation{op}); err != nil {
					t.Fatal(err)
				}
				lag := clk.now().Sub(began) - d
				t.Logf("operation of %s: %d polls, seen done %s after", d, ops.polls, lag)
				total += ops.polls
				if i < tc.settled {
					continue
				}
				settled += ops.polls
				if ops.polls > tc.polls || lag > tc.lag {
					t.Errorf("wait %d: %d polls, seen done %s after, want at most %d and %s", i, ops.polls, lag, tc.polls, tc.lag)
				}
			}
			t.Logf("%d polls for %d operations", total, len(tc.durations))
			if avg := float64(settled) / float64(len(tc.durations)-tc.settled); avg > tc.avg {
				t.Errorf("%.1f polls per settled wait, want at most %.1f", avg, tc.avg)
			}
		})
	}
}

// TestOperationPollsAfterAFasterOne: an operation much longer than the recent ones of its
// action is still polled with growing waits up to OperationPollMax, not at the short pace.
func TestOperationPollsAfterAFasterOne(t *testing.T) {
	ops := &timedOps{end: map[string]time.Time{}}
	c, clk := newTestClient(t, ops)
	ops.clk = clk
	if err := c.waitOperations(context.Background(), "proj-1", []Operation{ops.start("a", 100*time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	ops.polls = 0
	if err := c.waitOperations(context.Background(), "proj-1", []Operation{ops.start("b", 10*time.Second)}); err != nil {
		t.Fatal(err)
	}
	// Polling from 25 ms up (doubling, then every second) takes 15 polls for 10 s; the polls
	// around the expected 100 ms add a few.
	if ops.polls > 20 {
		t.Errorf("%d polls for a 10 s operation after 100 ms ones, want at most 20", ops.polls)
	}
	sleeps := clk.Sleeps()
	if last := sleeps[len(sleeps)-1]; last != time.Second {
		t.Errorf("last wait %s, want OperationPollMax (1s)", last)
	}
}
