package guard_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/progress"
)

// steps runs f with a progress reporter and returns the messages it reported.
func steps(t *testing.T, ctx context.Context, f func(ctx context.Context) error) []string {
	t.Helper()
	var mu sync.Mutex
	var msgs []string
	ctx, stop := progress.NewContext(ctx, func(_, _ float64, m string) {
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
	})
	defer stop()
	if err := f(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return msgs
}

func wantSteps(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, m := range got {
		if i < len(want) && strings.HasPrefix(m, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s reported %q; want, in order, %q", what, got, want)
	}
}

// The long use cases report their real steps, in order.
func TestProgressSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.createDB(alice, "a")
	e.checkpoint(alice, a.DatabaseID, "cp")
	e.clock.Advance(2 * time.Second)

	got := steps(t, as(alice), func(ctx context.Context) error {
		_, err := e.g.UndoToTime(ctx, guard.UndoInput{DatabaseID: a.DatabaseID, Ago: time.Second})
		return err
	})
	wantSteps(t, "undo_to_time", got, "reading the branches", `restoring branch "main" to `, `recording backup branch "main-undo-`)

	got = steps(t, as(alice), func(ctx context.Context) error {
		_, err := e.g.RestoreCheckpoint(ctx, guard.RestoreCheckpointInput{DatabaseID: a.DatabaseID, Checkpoint: "cp"})
		return err
	})
	wantSteps(t, "restore_checkpoint", got, "reading the checkpoints and branches", `restoring main to checkpoint "cp"`, "recording the replaced branch as a backup")

	got = steps(t, as(alice), func(ctx context.Context) error {
		_, err := e.g.Checkpoint(ctx, guard.CheckpointInput{DatabaseID: a.DatabaseID, Name: "cp2", Replace: true})
		return err
	})
	wantSteps(t, "checkpoint replace", got, "reading the checkpoints")
	if !strings.Contains(strings.Join(got, "|"), `deleting replaced checkpoint "cp"`) || !strings.Contains(strings.Join(got, "|"), `taking snapshot "cp2" of main`) {
		t.Errorf("checkpoint replace reported %q", got)
	}

	got = steps(t, as(alice), func(ctx context.Context) error {
		_, err := e.g.CreateDevBranch(ctx, guard.DevBranchInput{DatabaseID: a.DatabaseID, Name: "from-cp", From: "cp2"})
		return err
	})
	wantSteps(t, "create_dev_branch from a checkpoint", got, "checking the branch limit and quota", `restoring checkpoint "cp2" into branch "from-cp"`, `recording branch "from-cp"`)

	// A fast use case reports nothing.
	got = steps(t, as(alice), func(ctx context.Context) error {
		_, err := e.g.ListBranches(ctx, guard.DatabaseInput{DatabaseID: a.DatabaseID})
		return err
	})
	if len(got) != 0 {
		t.Errorf("list_branches reported %q", got)
	}
}
