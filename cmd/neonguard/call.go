package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/server"
)

func newCallCmd(g *globals) *cobra.Command {
	var stay bool
	cmd := &cobra.Command{
		Use:   "call TOOL ['JSON arguments']",
		Short: "Call one tool through the full server in-process and print its result",
		Example: `  neonguard call describe_limits
  neonguard call create_database '{"name":"my-app"}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var arguments map[string]any
			if len(args) == 2 {
				if err := json.Unmarshal([]byte(args[1]), &arguments); err != nil {
					return usageErrorf(cmd, "arguments must be a JSON object: %w", err)
				}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := g.logger(cfg)
			stopTracing, err := startTracing(ctx, log)
			if err != nil {
				return err
			}
			defer stopTracing()
			a, err := app.New(ctx, cfg, app.Options{Logger: log})
			if err != nil {
				return err
			}
			defer a.Close()
			// A long operation's steps go to stderr as they happen (stdout keeps the result
			// alone, for pipes and jq).
			res, err := a.Local.CallWithProgress(ctx, args[0], arguments, func(p, total float64, message string) {
				printProgress(g.stderr, args[0], p, total, message)
			})
			if errors.Is(err, server.ErrUnknownTool) {
				return usageError{command: cmd.CommandPath(), err: err}
			}
			if err != nil {
				return err
			}
			if err := printResult(g, res); err != nil || !stay {
				return err
			}
			// The local databases live in this process: keep them up for psql and friends.
			fmt.Fprintln(g.stderr, "databases stay up until interrupted (Ctrl-C)")
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().BoolVar(&stay, "stay", false, "keep running after the call, so the local databases accept connections, until interrupted")
	return cmd
}

// printProgress prints one progress report of tool as a short line: the step it is in out of
// those planned ("create_database [2/3] creating the project"), or the message alone when the
// number of steps is not known.
func printProgress(w io.Writer, tool string, progress, total float64, message string) {
	if total > 0 {
		step := min(int(progress)+1, int(total))
		fmt.Fprintf(w, "%s [%d/%d] %s\n", tool, step, int(total), message)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", tool, message)
}

// printResult prints the structured result (or the error JSON) indented; an error result makes
// the command exit 1.
func printResult(g *globals, res server.CallResult) error {
	var body []byte
	if res.Structured != nil && !res.IsError {
		body, _ = json.MarshalIndent(res.Structured, "", "  ")
	} else {
		var v any
		if json.Unmarshal([]byte(res.Text), &v) == nil {
			body, _ = json.MarshalIndent(v, "", "  ")
		} else {
			body = []byte(res.Text)
		}
	}
	fmt.Fprintln(g.stdout, string(body))
	if res.IsError {
		return exitError{}
	}
	return nil
}
