package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/config"
)

func newHealthCmd(g *globals) *cobra.Command {
	var rawURL string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe a running HTTP server's /readyz (or --url): exit 0 when it answers 2xx, 1 otherwise",
		Long: `Probe a running neonguard HTTP server, for container health checks (no curl needed).

Without --url it GETs /readyz on http.listen (NEONGUARD_HTTP_LISTEN, the config file, or
127.0.0.1:8080), with 0.0.0.0 and :: read as 127.0.0.1. --url takes a full URL
(http://host:port/healthz for liveness only); a URL without a path gets /readyz.`,
		Example: `  neonguard health
  neonguard health --url http://127.0.0.1:8080/healthz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target := rawURL
			if target == "" {
				target = g.defaultHealthURL()
			}
			u, err := url.Parse(target)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageErrorf(cmd, "--url %q: want http(s)://host:port[/path]", target)
			}
			if u.Path == "" || u.Path == "/" {
				u.Path = "/readyz"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			status, err := probe(ctx, u.String())
			if err != nil {
				fmt.Fprintf(g.stderr, "unhealthy: %s: %v\n", u.Redacted(), err)
				return exitError{}
			}
			if status < 200 || status > 299 {
				fmt.Fprintf(g.stderr, "unhealthy: %s answered %d\n", u.Redacted(), status)
				return exitError{}
			}
			fmt.Fprintf(g.stdout, "healthy: %s answered %d\n", u.Redacted(), status)
			return nil
		},
	}
	cmd.Flags().StringVar(&rawURL, "url", "", "URL to GET (default: /readyz on http.listen)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// defaultHealthURL is /readyz on http.listen, reached over loopback. A config that does not
// load (the probe must not fail on a setting it does not use) falls back to the default.
func (g *globals) defaultHealthURL() string {
	listen := config.Default().HTTP.Listen
	if cfg, err := config.Load(g.configPath, os.Getenv); err == nil {
		listen = cfg.HTTP.Listen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "127.0.0.1", "8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

func probe(ctx context.Context, target string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}
