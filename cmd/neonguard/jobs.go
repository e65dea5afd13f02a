package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/store"
)

// crashAfterStepEnv names a job step after whose recording the process SIGKILLs itself.
// Test-only: the crash tests use it to prove that `jobs resume` finishes a job exactly once.
const crashAfterStepEnv = "NEONGUARD_TEST_CRASH_AFTER_STEP"

// crashAfterRequestsEnv is a count of Neon API responses after which the process SIGKILLs
// itself, as soon as the last one arrived (before the client reads it). Test-only: the
// crash-point explorer uses it to kill serve after every request of a tool in turn.
const crashAfterRequestsEnv = "NEONGUARD_TEST_CRASH_AFTER_NEON_RESPONSES"

// crashCountPollsEnv=1 counts operation polls (GET …/operations/…) too; by default they are
// not counted, as a crash after one leaves Neon as the request before it did.
const crashCountPollsEnv = "NEONGUARD_TEST_CRASH_COUNT_POLLS"

// neonCrashHook is the test-only crash of crashAfterRequestsEnv; nil unless it is set.
func neonCrashHook() func(*http.Request) {
	n, err := strconv.Atoi(os.Getenv(crashAfterRequestsEnv))
	if err != nil || n <= 0 {
		return nil
	}
	polls := os.Getenv(crashCountPollsEnv) == "1"
	var seen atomic.Int64
	return func(r *http.Request) {
		if !polls && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/operations/") {
			return
		}
		if seen.Add(1) == int64(n) {
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {} // the kill is on its way: this request must not complete
		}
	}
}

// crashHook is the test-only crash of crashAfterStepEnv; nil (no hook) unless it is set.
func crashHook() func(jobID, step string) {
	want := os.Getenv(crashAfterStepEnv)
	if want == "" {
		return nil
	}
	return func(_, step string) {
		if step != want {
			return
		}
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill() // SIGKILL: no deferred cleanup runs, as in a real crash
		}
	}
}

// withLifecycle wires the whole app (the Neon backend is needed to run jobs) and runs fn on
// its lifecycle service.
func (g *globals) withLifecycle(ctx context.Context, fn func(*operator.TierChanges) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: g.logger(cfg), AfterJobStep: crashHook()})
	if err != nil {
		return err
	}
	err = fn(a.Lifecycle)
	return errors.Join(cliError(err), a.Close())
}

// withJobs opens only the store: listing and cancelling jobs need no Neon (and work while
// `serve` holds the local emulator's data dir).
func (g *globals) withJobs(ctx context.Context, fn func(*operator.TierChanges) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	st, locker, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	svc, err := operator.NewTierChanges(operator.TierChangeDeps{Store: st, Locker: locker, Policy: cfg.Policy})
	if err == nil {
		err = fn(svc)
	}
	return errors.Join(cliError(err), st.Close())
}

func newJobsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, resume and cancel durable jobs (tier changes)",
	}
	cmd.AddCommand(newJobsListCmd(g), newJobsResumeCmd(g), newJobsCancelCmd(g))
	return cmd
}

func newJobsListCmd(g *globals) *cobra.Command {
	var tenant string
	var unfinished bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJobs(cmd.Context(), func(svc *operator.TierChanges) error {
				jobs, err := svc.List(cmd.Context(), tenant, unfinished, limit)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTENANT\tCHANGE\tSTATE\tNEXT STEP\tATTEMPTS\tCREATED\tERROR")
				for _, j := range jobs {
					fmt.Fprintf(w, "%s\t%s\t%s -> %s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Tenant, j.FromTier, j.ToTier, j.State,
						dash(j.NextStep), j.Attempts, fmtTime(&j.CreatedAt), oneLine(j.Error))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's jobs")
	cmd.Flags().BoolVar(&unfinished, "unfinished", false, "only unfinished jobs (pending, running, failed)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	return cmd
}

func newJobsResumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume [JOB_ID]",
		Short: "Run unfinished jobs (or one) from their first unfinished step to the end",
		Long: "Run an unfinished job from its first unfinished step to its end; without JOB_ID, every unfinished job. " +
			"A job another live process runs is left to it; one whose runner crashed on this host is taken over at once.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withLifecycle(ctx, func(svc *operator.TierChanges) error {
				if len(args) == 1 {
					j, err := svc.Run(ctx, args[0])
					if j != nil {
						printJob(g.stdout, j)
					}
					return err
				}
				jobs, err := svc.ResumeAll(ctx, true)
				for _, j := range jobs {
					printJob(g.stdout, j)
				}
				if len(jobs) == 0 && err == nil {
					fmt.Fprintln(g.stdout, "no unfinished jobs")
				}
				return err
			})
		},
	}
}

func newJobsCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Abandon an unfinished job nobody runs (its finished steps stay done; the tenant's tier is unchanged)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withJobs(cmd.Context(), func(svc *operator.TierChanges) error {
				j, err := svc.Cancel(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				printJob(g.stdout, j)
				return nil
			})
		},
	}
}

// printJob prints a job with its steps and, when there is one to tell, its report.
func printJob(out io.Writer, j *operator.Job) {
	fmt.Fprintf(out, "job %s: tenant %s, tier %s -> %s", j.ID, j.Tenant, j.FromTier, j.ToTier)
	if j.Force {
		fmt.Fprint(out, " (forced)")
	}
	fmt.Fprintf(out, ": %s\n", j.State)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, s := range j.Steps {
		text := s.Result
		if s.Error != "" {
			text = s.Error
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", s.Name, s.State, text)
	}
	_ = w.Flush()
	if j.Report != nil && (len(j.Report.Exceeds) > 0 || len(j.Report.Warnings) > 0) {
		for _, e := range j.Report.Exceeds {
			fmt.Fprintf(out, "  exceeds: %s\n", e)
		}
		for _, warn := range j.Report.Warnings {
			fmt.Fprintf(out, "  warning: %s\n", warn)
		}
	}
	if j.Error != "" && j.State != store.JobRefused {
		fmt.Fprintf(out, "  error: %s\n", j.Error)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
