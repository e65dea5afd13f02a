package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/loadtest"
)

func newLoadCmd(g *globals) *cobra.Command {
	var o loadtest.Options
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load-test the hosted endpoint: N concurrent HTTP sessions calling read-only tools",
		Long: `Load-test the hosted endpoint (serve --transport http).

By default it starts "neonguard serve --transport http" itself, as a child process of this
binary, on a free loopback port in a fresh temporary data dir: local backend with the emulator's
API only (local.postgres=off, no real Postgres), a generated config with an unlimited-rate tier
"load", and --tenants tenants with one bearer token and one database each. It then runs
--sessions MCP client sessions (spread over the tenants) that call describe_limits,
list_databases, get_usage and list_checkpoints in turn, as fast as they can, for --duration
after --warmup, and reports calls, errors, calls per second, latency percentiles (client side)
and the server process's peak and final RSS. Everything is removed at the end.

--tools changes the rotation; --rate paces the sessions to a total number of calls per second
instead (without it, latency is about sessions / throughput). The child gets this environment
without NEONGUARD_* and NEON_* variables (no Neon credentials can switch it to the neon
backend), except NEONGUARD_HTTP_*, NEONGUARD_CALL_TIMEOUT and NEONGUARD_LOG_LEVEL (default info);
its log is in the temp dir while it runs.

The load generator and the server share the machine's CPUs: on a small machine the figures are
those of both together.

With --url it drives a server that is already running instead. Tokens come from --token-file
(one per line) or NEONGUARD_LOAD_TOKENS (comma-separated); each tenant first calls
create_database "neonguard-load" (idempotent), which on the neon backend creates a real project.
--server-pid names that server's process to report its RSS.

Progress goes to stderr, results to stdout (--json: one JSON object).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			log, err := g.loadLogger()
			if err != nil {
				return err
			}
			rep, err := loadtest.Run(cmd.Context(), o, log)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.WriteText(g.stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Sessions, "sessions", 50, "concurrent MCP sessions")
	f.StringVar(&o.ToolList, "tools", loadtest.DefaultTools, "comma-separated read-only tools each session calls in turn (also list_branches)")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to measure, after the warm-up")
	f.DurationVar(&o.Warmup, "warmup", 2*time.Second, "how long the sessions call before measuring starts")
	f.Float64Var(&o.Rate, "rate", 0, "calls per second offered by all sessions together, evenly paced (0: each session calls as fast as it can)")
	f.IntVar(&o.Tenants, "tenants", 10, "tenants the sessions are spread over (at most --sessions are used)")
	f.StringVar(&o.Transport, "transport", "streamable", "streamable (Streamable HTTP at /mcp) or sse (/sse and /message)")
	f.StringVar(&o.URL, "url", "", "base URL of a running server (e.g. http://127.0.0.1:8080) instead of starting one")
	f.StringVar(&o.TokenFile, "token-file", "", "with --url: file of bearer tokens, one per line (else env "+loadtest.TokensEnv+", comma-separated)")
	f.BoolVar(&jsonOut, "json", false, "print the results as JSON")
	f.IntVar(&o.ServerPID, "server-pid", 0, "with --url: pid of the (local) server process, to report its RSS")
	f.StringVar(&o.ServerBinary, "server-binary", "", "binary to start as the server (default: this one)")
	_ = f.MarkHidden("server-binary")
	return cmd
}

// loadLogger is the progress logger: the usual one, at the configured level.
func (g *globals) loadLogger() (*slog.Logger, error) {
	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		return nil, err
	}
	for _, key := range []string{"log.level", "log.format"} {
		if v := g.flags[key]; v != nil && *v != "" {
			if err := cfg.Set(key, *v); err != nil {
				return nil, err
			}
		}
	}
	return g.logger(cfg), nil
}
