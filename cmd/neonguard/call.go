package main

import (
	"encoding/json"
	"fmt"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
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
					return fmt.Errorf("arguments must be a JSON object: %w", err)
				}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := app.New(ctx, cfg, app.Options{Logger: g.logger(cfg)})
			if err != nil {
				return err
			}
			defer a.Close()
			c, err := client.NewInProcessClient(a.MCP)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				return err
			}
			if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
				return err
			}
			var req mcp.CallToolRequest
			req.Params.Name = args[0]
			req.Params.Arguments = arguments
			res, err := c.CallTool(ctx, req)
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

// printResult prints the structured result (or the error JSON) indented; an error result makes
// the command exit 1.
func printResult(g *globals, res *mcp.CallToolResult) error {
	var body []byte
	if res.StructuredContent != nil && !res.IsError {
		body, _ = json.MarshalIndent(res.StructuredContent, "", "  ")
	} else {
		for _, c := range res.Content {
			if tc, ok := c.(mcp.TextContent); ok {
				var v any
				if json.Unmarshal([]byte(tc.Text), &v) == nil {
					body, _ = json.MarshalIndent(v, "", "  ")
				} else {
					body = []byte(tc.Text)
				}
				break
			}
		}
	}
	fmt.Fprintln(g.stdout, string(body))
	if res.IsError {
		return exitError{}
	}
	return nil
}
