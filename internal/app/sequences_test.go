package app_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// Issue 9: random sequences of 30 operations (checkpoint with and without replace, undo,
// checkpoint restore, dev branch, delete) on one database, on real PostgreSQL, each step
// checked against a model of what main holds (its rows) and of the checkpoints (names and the
// rows each keeps). Two seeds by default; NEONGUARD_SEQUENCE_SEEDS=N runs N (the long mode).
func TestRandomUndoCheckpointSequences(t *testing.T) {
	if testing.Short() {
		t.Skip("long random sequences")
	}
	seeds := 2
	if v, err := strconv.Atoi(os.Getenv("NEONGUARD_SEQUENCE_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) { runSequence(t, uint64(seed), 30) })
	}
}

type historyPoint struct {
	at   time.Time
	rows []int
}

func runSequence(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0x9))
	pgtest.Require(t)
	a := newAppWith(t, spectestWrap(t), pgConfig(pgtest.ReachableDir(t)), func(c *config.Config) { c.Tier = "pro" })
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "model")

	var main []int                    // the model of main's rows
	checkpoints := map[string][]int{} // name → rows it keeps
	var history []historyPoint        // points of main's own history undo can go back to
	devs := 0
	for step := 1; step <= steps; step++ {
		insert(t, uri, step, step)
		main = append(main, step)
		time.Sleep(50 * time.Millisecond)
		history = append(history, historyPoint{at: serverNow(t, uri), rows: slices.Clone(main)})
		time.Sleep(50 * time.Millisecond)

		op := rng.IntN(6)
		what := ""
		switch op {
		case 0, 1: // checkpoint, with or without replace
			name := []string{"a", "b", "c"}[rng.IntN(3)]
			replace := op == 1
			what = fmt.Sprintf("checkpoint %s replace=%v", name, replace)
			r := call(t, c, "checkpoint", map[string]any{"database_id": id, "name": name, "replace": replace})
			if _, exists := checkpoints[name]; exists && !replace {
				if r.Code != "INVALID_ARGUMENT" {
					t.Fatalf("step %d %s: %s, want INVALID_ARGUMENT (it exists)", step, what, r)
				}
				break
			}
			mustOK(t, r, what)
			checkpoints[name] = slices.Clone(main)
		case 2: // undo to a point of main's own history
			p := history[rng.IntN(len(history))]
			what = fmt.Sprintf("undo to %s", p.at.Format(time.RFC3339Nano))
			mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": p.at.Format(time.RFC3339Nano)}), what)
			main = slices.Clone(p.rows)
			history = nil // main's history starts again at the undo
		case 3: // restore a checkpoint
			if len(checkpoints) == 0 {
				what = "restore (no checkpoint yet)"
				break
			}
			names := make([]string, 0, len(checkpoints))
			for n := range checkpoints {
				names = append(names, n)
			}
			slices.Sort(names)
			name := names[rng.IntN(len(names))]
			what = "restore_checkpoint " + name
			mustOK(t, call(t, c, "restore_checkpoint", map[string]any{"database_id": id, "checkpoint": name}), what)
			main = slices.Clone(checkpoints[name])
			history = nil // a new main branch
		case 4: // dev branch from main or a checkpoint: it holds that state
			devs++
			name := fmt.Sprintf("dev-%d", devs)
			from, want := "main", main
			if len(checkpoints) > 0 && rng.IntN(2) == 0 {
				for n, rows := range checkpoints {
					from, want = n, rows
					break
				}
			}
			what = fmt.Sprintf("create_dev_branch %s from %s", name, from)
			dev := mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": name, "from": from}), what)
			if got := rows(t, str(dev, "connection_string")); !slices.Equal(got, want) {
				t.Fatalf("step %d %s: the branch holds %v, want %v", step, what, got, want)
			}
		case 5: // delete a dev or backup branch
			var victims []string
			parents := map[string]bool{}
			for _, b := range mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")["branches"].([]any) {
				m := b.(map[string]any)
				parents[str(m, "parent_id")] = true
				if str(m, "kind") != "main" {
					victims = append(victims, str(m, "branch_id"))
				}
			}
			if len(victims) == 0 {
				what = "delete (nothing to delete)"
				break
			}
			v := victims[rng.IntN(len(victims))]
			what = "delete_dev_branch " + v
			r := call(t, c, "delete_dev_branch", map[string]any{"database_id": id, "branch": v})
			if parents[v] {
				// Neon keeps a branch with children (a dev branch made from the main a
				// checkpoint restore replaced): the agent is told why.
				if r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "children") {
					t.Fatalf("step %d %s (it has children): %s, want INVALID_ARGUMENT naming the children", step, what, r)
				}
				break
			}
			if mustOK(t, r, what)["deleted"] != true {
				t.Fatalf("step %d %s: %v", step, what, r)
			}
		}

		if got := rows(t, uri); !slices.Equal(got, main) {
			t.Fatalf("step %d (%s): main holds %v, the model %v", step, what, got, main)
		}
		var names []string
		for _, cp := range mustOK(t, call(t, c, "list_checkpoints", map[string]any{"database_id": id}), "list_checkpoints")["checkpoints"].([]any) {
			names = append(names, str(cp.(map[string]any), "name"))
		}
		slices.Sort(names)
		want := make([]string, 0, len(checkpoints))
		for n := range checkpoints {
			want = append(want, n)
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Fatalf("step %d (%s): checkpoints %v, the model %v", step, what, names, want)
		}
		t.Logf("step %d: %s → %d rows, checkpoints %v", step, what, len(main), names)
	}
}
