package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
)

func newServeCmd(g *globals) *cobra.Command {
	var transport, access string
	var readOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP tools over stdio, or over HTTP for many tenants (the local emulator in-process unless Neon credentials are set)",
		Long: `Serve the MCP tools.

--transport stdio (default) serves one client on stdin/stdout as the configured tenant.
--transport http serves many tenants: Streamable HTTP at /mcp, SSE at /sse and /message,
with /healthz, /readyz and /metrics; every request needs a bearer token
(neonguard tenant token create) or a configured JWT.

--read-only lets every caller only read (the stdio tenant, and over HTTP every token, admin
included), as a token with the read scope does; --tools serves only some tool groups.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if transport != "stdio" && transport != "http" {
				return usageErrorf(cmd, "--transport %q: use stdio or http (http serves both Streamable HTTP and SSE)", transport)
			}
			if readOnly {
				access = config.AccessReadOnly
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := g.logger(cfg)
			ctx := cmd.Context()
			stopTracing, err := startTracing(ctx, log)
			if err != nil {
				return err
			}
			defer stopTracing() // last: after the app closed, its final spans are flushed
			a, err := app.New(ctx, cfg, app.Options{Logger: log, AfterNeonResponse: neonCrashHook()})
			if err != nil {
				return err
			}
			defer a.Close()
			// Monitor, janitor and resumed jobs run beside either transport until ctx ends.
			bgCtx, stopBackground := context.WithCancel(ctx)
			waitBackground := a.RunBackground(bgCtx, log)
			defer waitBackground()
			defer stopBackground()
			if transport == "http" {
				return serveHTTP(ctx, a, log)
			}
			log.Info("serving MCP over stdio", "backend", cfg.Backend(), "tenant", cfg.Tenant, "tier", cfg.Tier,
				"data_dir", cfg.DataDir, "emulator", a.EmulatorURL, "access", cfg.Access, "tools", cfg.Tools)
			return a.Local.ServeStdio(ctx, g.stdin, g.stdout)
		},
	}
	cmd.Flags().StringVar(&transport, "transport", "stdio", "stdio, or http (Streamable HTTP at /mcp and SSE at /sse)")
	g.stringFlag(cmd.Flags(), "http.listen", "listen", "address of the HTTP endpoint (env NEONGUARD_HTTP_LISTEN; default 127.0.0.1:8080)")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "every caller may only read, as with a token of the read scope (env NEONGUARD_ACCESS=read-only)")
	g.flags["access"], g.flagNames["access"] = &access, "--read-only"
	g.stringFlag(cmd.Flags(), "tools", "tools", "tool groups to serve, comma-separated: databases, versioning, branches, sql, usage (env NEONGUARD_TOOLS; default all)")
	return cmd
}

// serveHTTP runs the hosted endpoint until ctx ends (SIGINT/SIGTERM), then drains.
func serveHTTP(ctx context.Context, a *app.App, log *slog.Logger) error {
	cfg := a.Config
	h, err := a.NewHTTP(log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	log.Info("serving MCP over HTTP", "addr", ln.Addr().String(), "mcp", "/mcp", "sse", "/sse",
		"backend", cfg.Backend(), "store", storeKind(cfg), "emulator", a.EmulatorURL, "jwt", cfg.Auth.JWT.Enabled(),
		"access", cfg.Access, "tools", cfg.Tools)
	return h.Serve(ctx, ln, cfg.HTTP.ShutdownGrace)
}

func storeKind(cfg config.Config) string {
	if cfg.PostgresStore() {
		return "postgres"
	}
	return "sqlite:" + cfg.SQLitePath()
}
