package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/store"
)

func newTenantSetTierCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "set-tier TENANT TIER",
		Short: "Move a tenant to another tier (its projects change org and settings); a resumable job",
		Long: "Move a tenant to another tier: every database's Neon project moves to the tier's org (Neon's personal API key) " +
			"and gets the tier's quotas, compute range, suspend timeout and restore window; then the tenant's tier is set. " +
			"A downgrade whose databases exceed the target tier is refused with a report unless --force. " +
			"The change is a durable job: if it is interrupted, `neonguard jobs resume` finishes it.",
		Example: "  neonguard tenant set-tier acme pro\n  neonguard tenant set-tier acme free --force",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant, tier := cmd.Context(), args[0], args[1]
			return g.withLifecycle(ctx, func(svc *operator.TierChanges) error {
				j, err := svc.Start(ctx, tenant, tier, force)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "job %s\n", j.ID)
				j, err = svc.Run(ctx, j.ID)
				if j != nil {
					printJob(g.stdout, j)
				}
				if err != nil {
					return err
				}
				if j.State == store.JobRefused {
					return fmt.Errorf("tier change refused: %s (bring the databases under the limits, or pass --force)", j.Report)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "change the tier even when databases exceed the target tier's limits")
	return cmd
}
