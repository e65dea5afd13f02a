package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
)

func newLocalCmd(g *globals) *cobra.Command {
	var listen, sqlListen, endpointHost string
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run the local Neon API emulator alone (for neonctl, Neon SDKs, or your own tests)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if listen == "" {
				// local.listen, unless it is left at the embedded default (any free port),
				// which suits a server in-process but not one a person points clients at.
				listen = cfg.Local.Listen
				if listen == "127.0.0.1:0" {
					listen = "127.0.0.1:4040"
				}
			}
			log := g.logger(cfg)
			ctx := cmd.Context()
			emu, closeEmu, err := app.NewEmulator(ctx, cfg, log, app.WithEndpointHost(endpointHost))
			if err != nil {
				return err
			}
			defer closeEmu()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
			servers := []*http.Server{srv}
			sqlLine := ""
			if sqlListen != "" && sqlListen != "off" {
				sqlSrv, sqlLn, certFile, err := app.ListenSQLOverHTTP(emu, cfg.DataDir, sqlListen, log.With("component", "sqlhttp"))
				if err != nil {
					ln.Close()
					return err
				}
				servers = append(servers, sqlSrv)
				sqlLine = fmt.Sprintf("  SQL over HTTP:     https://%s/sql (also http://)\n"+
					"  its certificate:   %s (NODE_EXTRA_CA_CERTS)\n", sqlLn.Addr(), certFile)
				go func() {
					if err := sqlSrv.Serve(sqlLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.Error("SQL over HTTP stopped", "err", err)
					}
				}()
			}
			c := emu.Credentials()
			// The person who starts the emulator needs its keys: print them once, to stdout.
			fmt.Fprintf(g.stdout, "Neon API emulator listening\n"+
				"  base URL:          http://%s/api/v2\n"+
				"  free org id:       %s\n  free org API key:  %s\n"+
				"  paid org id:       %s\n  paid org API key:  %s\n"+
				"  personal API key:  %s\n"+
				"  data dir:          %s\n%s",
				ln.Addr(), c.FreeOrgID, c.FreeOrgAPIKey, c.PaidOrgID, c.PaidOrgAPIKey, c.PersonalAPIKey, cfg.DataDir, sqlLine)
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				for _, s := range servers {
					_ = s.Shutdown(sctx)
				}
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default local.listen, or 127.0.0.1:4040)")
	cmd.Flags().StringVar(&sqlListen, "sql-listen", "127.0.0.1:4444",
		"address of SQL over HTTP (Neon's serverless driver protocol, POST /sql; TLS or plain HTTP on one port; off: none)")
	cmd.Flags().StringVar(&endpointHost, "endpoint-host", "127.0.0.1",
		"host name of the endpoints in connection strings; it must resolve to 127.0.0.1 (localhost: Neon's serverless driver then sends SQL to https://localhost/sql, so --sql-listen 127.0.0.1:443 serves it unconfigured)")
	return cmd
}
