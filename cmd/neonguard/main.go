// Command neonguard is an MCP server that gives AI coding agents guarded database tools on Neon
// serverless Postgres, with an embedded local emulator of Neon's API when no Neon account is
// configured.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		if !errors.As(err, new(exitError)) {
			fmt.Fprintln(os.Stderr, "neonguard:", err)
		}
		os.Exit(1)
	}
}

// exitError ends the process with status 1 after the command already reported the failure.
type exitError struct{}

func (exitError) Error() string { return "failed" }

// globals are the settings every subcommand shares.
type globals struct {
	configPath string
	flags      map[string]*string // YAML key → flag value, applied over file and env
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{flags: map[string]*string{}, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "neonguard",
		Short:         "Guarded Neon Postgres tools for AI agents, over MCP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", os.Getenv("NEONGUARD_CONFIG"), "YAML config file (env NEONGUARD_CONFIG)")
	g.flags["data_dir"] = pf.String("data-dir", "", "where state and local databases live (env NEONGUARD_DATA_DIR)")
	g.flags["log.level"] = pf.String("log-level", "", "debug, info, warn or error (env NEONGUARD_LOG_LEVEL)")
	g.flags["log.format"] = pf.String("log-format", "", "auto, text or json (env NEONGUARD_LOG_FORMAT)")
	g.flags["store"] = pf.String("store", "", "metadata store: sqlite:PATH or postgres://… (env NEONGUARD_STORE; default DATA_DIR/neonguard.db)")
	root.AddCommand(newServeCmd(g), newLocalCmd(g), newCallCmd(g), newVersionCmd(g), newTenantCmd(g))
	root.AddCommand(newLoadCmd(g), newJobsCmd(g))
	return root
}

// load reads the configuration: defaults ← file ← environment ← flags.
func (g *globals) load() (config.Config, error) {
	cfg, err := config.Load(g.configPath, os.Getenv)
	if err != nil {
		return cfg, err
	}
	for key, v := range g.flags {
		if v != nil && *v != "" {
			if err := cfg.Set(key, *v); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, cfg.Validate()
}

// logger writes to stderr (never stdout: in stdio mode stdout is the MCP stream): tint for a
// person at a terminal, JSON for machines.
func (g *globals) logger(cfg config.Config) *slog.Logger {
	level := cfg.Log.SlogLevel()
	format := cfg.Log.Format
	if format == "" || format == "auto" {
		format = "json"
		if f, ok := g.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(g.stderr, &tint.Options{Level: level}))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}
