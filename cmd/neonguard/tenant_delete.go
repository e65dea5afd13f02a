package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/operator"
)

// withDatabases is withTenants with the Neon backend wired too (the guard), for the commands
// that act on tenants' databases. On the local backend it starts the emulator, so it cannot
// run beside a serve on the same data dir.
func (g *globals) withDatabases(ctx context.Context, fn func(config.Config, *operator.Service) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: g.logger(cfg)})
	if err != nil {
		return err
	}
	err = fn(cfg, &operator.Service{Store: a.Store, Policy: cfg.Policy, Databases: a.Guard})
	return errors.Join(cliError(err), a.Close())
}

func newTenantDeleteDatabaseCmd(g *globals) *cobra.Command {
	var confirm string
	cmd := &cobra.Command{
		Use:   "delete-database TENANT DATABASE_ID --confirm NAME",
		Short: "Delete a tenant's database (its Neon project, branches and checkpoints); NAME must repeat its name",
		Example: `  neonguard tenant inactive --days 90 --tenant acme
  neonguard tenant delete-database acme aged-pine-01719587 --confirm shop`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant, id := cmd.Context(), args[0], args[1]
			if confirm == "" {
				return usageErrorf(cmd, "--confirm NAME is required: repeat the database's name to confirm its deletion")
			}
			return g.withDatabases(ctx, func(_ config.Config, svc *operator.Service) error {
				res, err := svc.DeleteDatabase(ctx, tenant, id, confirm)
				if err != nil {
					return err
				}
				if !res.Deleted {
					fmt.Fprintf(g.stdout, "database %s (%s) of tenant %s was already deleted at %s\n", res.DatabaseID, res.Name, res.Tenant, fmtTime(&res.DeletedAt))
					return nil
				}
				fmt.Fprintf(g.stdout, "deleted database %s (%s) of tenant %s\n", res.DatabaseID, res.Name, res.Tenant)
				fmt.Fprintln(g.stdout, res.Note)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the database's name, again (required)")
	return cmd
}
