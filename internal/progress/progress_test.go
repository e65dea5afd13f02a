package progress_test

import (
	"context"
	"testing"

	"github.com/neonguard/neonguard/internal/progress"
)

type update struct {
	p, total float64
	msg      string
}

func TestStepsAndDetailsOnlyIncrease(t *testing.T) {
	var got []update
	ctx, stop := progress.NewContext(context.Background(), func(p, total float64, msg string) {
		got = append(got, update{p, total, msg})
	})
	progress.Plan(ctx, 3)
	progress.Step(ctx, "one")
	progress.Step(ctx, "two")
	progress.Detail(ctx, "wait a")
	progress.Detail(ctx, "wait b")
	progress.Step(ctx, "three")
	progress.Step(ctx, "four (unplanned)")
	stop()
	progress.Step(ctx, "after stop")
	want := []update{{0, 3, "one"}, {1, 3, "two"}, {1.5, 3, "wait a"}, {1.75, 3, "wait b"}, {2, 3, "three"}, {3, 4, "four (unplanned)"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("update %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestWithoutReporterNothingHappens(t *testing.T) {
	ctx := context.Background()
	if progress.Enabled(ctx) {
		t.Fatal("enabled without a reporter")
	}
	progress.Plan(ctx, 2)
	progress.Step(ctx, "x")
	progress.Detail(ctx, "y")
}
