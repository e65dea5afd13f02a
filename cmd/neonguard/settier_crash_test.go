package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// TestSetTierCrashAfterEachStep runs `neonguard tenant set-tier` with the test-only crash hook,
// so the process SIGKILLs itself right after each step of an upgrade is recorded, in turn;
// then `neonguard jobs resume` finishes the job. Every time: one job, done, every step run
// exactly once (so no transfer was sent twice), the projects in the paid org with the pro
// tier's settings, and the tenant on pro.
func TestSetTierCrashAfterEachStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	for _, step := range []string{operator.StepPlan, operator.StepTransfer, operator.StepSettings, operator.StepRecord} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			run := func(env []string, args ...string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, append([]string{"--data-dir", dir, "--log-level", "warn"}, args...)...)
				cmd.Env = append(os.Environ(), append([]string{"NEONGUARD_CONFIG=", "NEONGUARD_LOCAL_POSTGRES=off", crashAfterStepEnv + "="}, env...)...)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			for _, name := range []string{"app", "blog"} {
				if out, err := run(nil, "call", "create_database", `{"name":"`+name+`"}`); err != nil {
					t.Fatalf("create_database: %v\n%s", err, out)
				}
			}
			out, err := run([]string{crashAfterStepEnv + "=" + step}, "tenant", "set-tier", "local", "pro")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("set-tier with a crash after %s: %v (want SIGKILL)\n%s", step, err, out)
			}
			if !strings.HasPrefix(out, "job job-") {
				t.Errorf("set-tier did not print the job id first: %q", out)
			}
			if out, err := run(nil, "jobs", "resume"); err != nil {
				t.Fatalf("jobs resume: %v\n%s", err, out)
			}
			list, err := run(nil, "jobs", "list")
			if err != nil || strings.Count(list, "job-") != 1 || !strings.Contains(list, " done ") {
				t.Errorf("jobs list (want one done job): %v\n%s", err, list)
			}
			// Resuming again finds nothing to do.
			if out, err := run(nil, "jobs", "resume"); err != nil || !strings.Contains(out, "no unfinished jobs") {
				t.Errorf("second resume: %v\n%s", err, out)
			}
			checkCrashResult(t, dir)
		})
	}
}

// checkCrashResult reads the store and the emulator's state file (both processes are gone).
func checkCrashResult(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "neonguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs, err := st.ListJobs(ctx, store.JobFilter{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %d (%v), want 1", len(jobs), err)
	}
	var p struct{ Steps []operator.Step }
	_ = json.Unmarshal([]byte(jobs[0].Payload), &p)
	if jobs[0].State != store.JobDone || len(p.Steps) != 4 {
		t.Fatalf("job %s: %+v", jobs[0].State, p.Steps)
	}
	for _, s := range p.Steps {
		if s.State != operator.StepDone || s.Runs != 1 {
			t.Errorf("step %s: %s, ran %d times, want done once", s.Name, s.State, s.Runs)
		}
	}
	if tn, err := st.GetTenant(ctx, "local"); err != nil || tn.Tier != "pro" {
		t.Errorf("tenant tier %q (%v), want pro", tn.Tier, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "neonlocal", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var emu struct {
		PaidOrgID string `json:"paid_org_id"`
		Projects  map[string]struct {
			OrgID            string `json:"org_id"`
			HistoryRetention int64  `json:"history_retention_seconds"`
		} `json:"projects"`
	}
	if err := json.Unmarshal(b, &emu); err != nil {
		t.Fatal(err)
	}
	pro, _ := policy.Default().Tier("pro")
	dbs, _ := st.ListDatabases(ctx, "local")
	if len(dbs) != 2 || len(emu.Projects) != 2 {
		t.Fatalf("%d databases, %d projects, want 2", len(dbs), len(emu.Projects))
	}
	for _, db := range dbs {
		prj := emu.Projects[db.ID]
		if prj.OrgID != emu.PaidOrgID || db.OrgID != emu.PaidOrgID {
			t.Errorf("%s: emulator org %s, store org %s, want %s", db.ID, prj.OrgID, db.OrgID, emu.PaidOrgID)
		}
		if prj.HistoryRetention != int64(pro.RestoreWindow/time.Second) {
			t.Errorf("%s: retention %d, want pro's", db.ID, prj.HistoryRetention)
		}
	}
}
