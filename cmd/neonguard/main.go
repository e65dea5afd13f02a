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
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/neonguard/neonguard/internal/config"
)

func main() {
	applyGCPercent(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// defaultGCPercent is the garbage collector's target when GOGC is not set: the heap may grow to
// five times what is live before a collection, instead of Go's twice. neonguard's live heap is
// small (tens of MB) and every call allocates: at Go's default the collector took about 14 % of
// the server's CPU under load; at 400, about 4 % (docs/benchmarks.md, "Hosted endpoint"). An
// operator who wants the heap smaller sets GOGC (or GOMEMLIMIT, which still applies) as usual.
const defaultGCPercent = 400

// applyGCPercent sets defaultGCPercent unless the environment sets GOGC, and returns the
// percentage in force.
func applyGCPercent(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		old := debug.SetGCPercent(100) // read what the runtime took from GOGC …
		debug.SetGCPercent(old)        // … and leave it
		return old
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// Exit statuses: 0 success, 1 the command failed while running, 2 it was used wrongly (an
// unknown command, flag or tool, a missing or malformed argument, a flag's value the
// configuration refuses), as most CLIs do. A bad value from the environment or the config file
// exits 1: the command line was right, the settings it runs with are not.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitStatus reports err on stderr (a usage error with a pointer to the command's help) and
// returns the process's exit status.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "neonguard: %v\nRun '%s --help' for usage.\n", ue.err, ue.command)
		return exitUsage
	}
	if !errors.As(err, new(exitError)) {
		fmt.Fprintln(stderr, "neonguard:", err)
	}
	return exitFailure
}

// exitError ends the process with status 1 after the command already reported the failure.
type exitError struct{}

func (exitError) Error() string { return "failed" }

// usageError is a command used wrongly: the process exits 2.
type usageError struct {
	command string // the command's path, e.g. "neonguard tenant create"
	err     error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError{command: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// markUsageErrors makes cobra's own usage errors usageErrors, for cmd and every command below
// it: bad flags, argument counts, and unknown subcommands (a command that only groups others
// would otherwise print its help and exit 0 for `neonguard tenant frobnicate`); and so are the
// configuration's errors about a flag's value, which only loading the configuration finds.
func markUsageErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			if errors.Is(err, config.ErrFlagValue) && !errors.As(err, new(usageError)) {
				return usageError{command: c.CommandPath(), err: err}
			}
			return err
		}
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{command: c.CommandPath(), err: err}
	})
	if validate := cmd.Args; validate != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				return usageError{command: c.CommandPath(), err: err}
			}
			return nil
		}
	}
	if !cmd.Runnable() && cmd.HasSubCommands() {
		// With Args set, cobra hands unknown words to RunE instead of failing in Find with an
		// error that cannot be told apart from a runtime one.
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usageError{command: c.CommandPath(), err: errors.New(msg)}
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// globals are the settings every subcommand shares.
type globals struct {
	configPath string
	flags      map[string]*string // YAML key → flag value, applied over file and env
	flagNames  map[string]string  // YAML key → the flag that sets it ("--log-level"), named in errors
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{flags: map[string]*string{}, flagNames: map[string]string{}, stdin: stdin, stdout: stdout, stderr: stderr}
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
	g.stringFlag(pf, "data_dir", "data-dir", "where state and local databases live (env NEONGUARD_DATA_DIR)")
	g.stringFlag(pf, "log.level", "log-level", "debug, info, warn or error (env NEONGUARD_LOG_LEVEL)")
	g.stringFlag(pf, "log.format", "log-format", "auto (text on a terminal, JSON otherwise), text (coloured only on a terminal) or json (env NEONGUARD_LOG_FORMAT)")
	g.stringFlag(pf, "store", "store", "metadata store: sqlite:PATH or postgres://… (env NEONGUARD_STORE; default DATA_DIR/neonguard.db)")
	root.AddCommand(newServeCmd(g), newLocalCmd(g), newCallCmd(g), newVersionCmd(g), newTenantCmd(g))
	root.AddCommand(newLoadCmd(g), newJobsCmd(g), newHealthCmd(g))
	markUsageErrors(root)
	return root
}

// stringFlag adds the string flag --name for the setting key, applied over file and env.
func (g *globals) stringFlag(fs *pflag.FlagSet, key, name, usage string) {
	g.flags[key] = fs.String(name, "", usage)
	g.flagNames[key] = "--" + name
}

// load reads the configuration: defaults ← file ← environment ← flags. Errors name where the
// faulty value came from (the flag, the environment variable, or the file and line).
func (g *globals) load() (config.Config, error) {
	cfg, err := config.Load(g.configPath, os.Getenv)
	if err != nil {
		return cfg, err
	}
	for key, v := range g.flags {
		if v != nil && *v != "" {
			if err := cfg.SetFrom(key, *v, strings.TrimSpace(config.SourceFlag+" "+g.flagNames[key])); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, cfg.Validate()
}

// logger writes to stderr (never stdout: in stdio mode stdout is the MCP stream): tint for a
// person at a terminal, JSON for machines. Text has colours only on a terminal (a pipe or a
// file gets plain text); JSON writes durations as Go duration strings ("1.5s"), not
// nanoseconds.
func (g *globals) logger(cfg config.Config) *slog.Logger {
	level := cfg.Log.SlogLevel()
	terminal := false
	if f, ok := g.stderr.(*os.File); ok {
		terminal = isatty.IsTerminal(f.Fd())
	}
	format := cfg.Log.Format
	if format == "" || format == "auto" {
		format = "json"
		if terminal {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(g.stderr, &tint.Options{Level: level, NoColor: !terminal}))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: durationString}))
}

// durationString writes a time.Duration attribute as its Go string ("250ms", "1m30s"):
// slog's JSON handler would write an integer of nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
