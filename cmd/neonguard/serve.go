package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"

	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/guard"
)

func newServeCmd(g *globals) *cobra.Command {
	var transport string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP tools over stdio (the local emulator in-process unless Neon credentials are set)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if transport != "stdio" {
				return fmt.Errorf("transport %q is not supported yet; use stdio", transport)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := g.logger(cfg)
			ctx := cmd.Context()
			a, err := app.New(ctx, cfg, app.Options{Logger: log})
			if err != nil {
				return err
			}
			defer a.Close()
			log.Info("serving MCP over stdio", "backend", cfg.Backend(), "tenant", cfg.Tenant, "tier", cfg.Tier,
				"data_dir", cfg.DataDir, "emulator", a.EmulatorURL)
			stdio := mcpserver.NewStdioServer(a.MCP)
			stdio.SetContextFunc(func(ctx context.Context) context.Context {
				return guard.ContextWithPrincipal(ctx, guard.Principal{TenantID: cfg.Tenant})
			})
			stdio.SetErrorLogger(slogAsLog(log))
			err = stdio.Listen(ctx, g.stdin, g.stdout)
			if err != nil && (ctx.Err() != nil || errors.Is(err, io.EOF)) {
				return nil // interrupted, or the client closed stdin: a normal stop
			}
			return err
		},
	}
	cmd.Flags().StringVar(&transport, "transport", "stdio", "stdio (http and sse come with the hosted endpoint)")
	return cmd
}

// slogAsLog adapts slog for mcp-go's stdio transport, which takes a *log.Logger.
func slogAsLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
