package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/operator"
)

func newTenantInactiveCmd(g *globals) *cobra.Command {
	var days int
	var tenant string
	cmd := &cobra.Command{
		Use:   "inactive --days N [--tenant T]",
		Short: "List databases without compute activity for N days (Neon's last activity, or creation when never used)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !cmd.Flags().Changed("days") {
				return usageErrorf(cmd, "--days N is required")
			}
			return g.withDatabases(ctx, func(_ config.Config, svc *operator.Service) error {
				list, err := svc.InactiveDatabases(ctx, tenant, days, time.Now())
				if err != nil {
					return err
				}
				if len(list) == 0 {
					fmt.Fprintf(g.stdout, "no database has been inactive for %d days\n", days)
					return nil
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TENANT\tDATABASE ID\tNAME\tLAST ACTIVE")
				for _, d := range list {
					last := fmtTime(&d.LastActive)
					switch {
					case d.Missing:
						last = "- (not found on Neon)"
					case d.NeverUsed:
						last += " (never used: created)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Tenant, d.DatabaseID, d.Name, last)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&days, "days", 0, "inactive for at least this many days (required; 0 lists every database)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's databases")
	return cmd
}
