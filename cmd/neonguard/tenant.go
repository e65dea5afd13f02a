package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/store"
)

func newTenantCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Manage tenants and their bearer tokens (hosted mode)",
	}
	token := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke a tenant's bearer tokens",
	}
	token.AddCommand(newTenantTokenCreateCmd(g), newTenantTokenListCmd(g), newTenantTokenRevokeCmd(g))
	cmd.AddCommand(newTenantCreateCmd(g), newTenantListCmd(g), token)
	return cmd
}

// withStore loads the configuration and runs fn on the metadata store.
func (g *globals) withStore(ctx context.Context, fn func(config.Config, store.Store) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	path := cfg.SQLitePath()
	if path == "" {
		return fmt.Errorf("store %q: tenant commands support only the SQLite store for now", cfg.Store)
	}
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return err
	}
	err = fn(cfg, st)
	return errors.Join(err, st.Close())
}

// existingTenant is GetTenant with a message fit for the command line.
func existingTenant(ctx context.Context, st store.Store, id string) error {
	_, err := st.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tenant %q does not exist (create it with: neonguard tenant create %s)", id, id)
	}
	return err
}

func newTenantCreateCmd(g *globals) *cobra.Command {
	var tier string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a tenant (an existing one keeps its tier)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, id := cmd.Context(), args[0]
			return g.withStore(ctx, func(cfg config.Config, st store.Store) error {
				if tier == "" {
					tier = cfg.Tier
				}
				if _, ok := cfg.Policy.Tiers[tier]; !ok {
					return fmt.Errorf("unknown tier %q (known: %s)", tier,
						strings.Join(slices.Sorted(maps.Keys(cfg.Policy.Tiers)), ", "))
				}
				if t, err := st.GetTenant(ctx, id); err == nil {
					fmt.Fprintf(g.stdout, "tenant %s already exists with tier %s; tier unchanged\n", t.ID, t.Tier)
					return nil
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				t, err := st.EnsureTenant(ctx, id, tier)
				if err != nil {
					return err
				}
				if t.Tier != tier { // created concurrently by someone else
					fmt.Fprintf(g.stdout, "tenant %s already exists with tier %s; tier unchanged\n", t.ID, t.Tier)
					return nil
				}
				fmt.Fprintf(g.stdout, "created tenant %s with tier %s\n", t.ID, t.Tier)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tier, "tier", "", "tier of the new tenant (a key of policy.tiers; default: the configured tier)")
	return cmd
}

func newTenantListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return g.withStore(ctx, func(_ config.Config, st store.Store) error {
				ts, err := st.ListTenants(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTIER\tCREATED")
				for _, t := range ts {
					fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.Tier, fmtTime(&t.CreatedAt))
				}
				return w.Flush()
			})
		},
	}
}

func newTenantTokenCreateCmd(g *globals) *cobra.Command {
	var scopes []string
	cmd := &cobra.Command{
		Use:   "create TENANT",
		Short: "Create a bearer token and print its secret (shown once, never stored)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant := cmd.Context(), args[0]
			for _, s := range scopes {
				if !auth.ValidScope(s) {
					return fmt.Errorf("unknown scope %q (known: %s)", s, strings.Join(auth.Scopes, ", "))
				}
			}
			return g.withStore(ctx, func(_ config.Config, st store.Store) error {
				if err := existingTenant(ctx, st, tenant); err != nil {
					return err
				}
				secret, tok, err := auth.NewToken()
				if err != nil {
					return err
				}
				tok.TenantID = tenant
				tok.Scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
				if err := st.CreateToken(ctx, tok); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "created token %s for tenant %s (scopes: %s)\n", tok.ID, tenant, scopeList(tok.Scopes))
				fmt.Fprintln(g.stdout, secret)
				fmt.Fprintln(g.stdout, "This secret is shown only once: neonguard stores only its hash. Keep it now.")
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "grant a scope (repeatable; known: "+strings.Join(auth.Scopes, ", ")+")")
	return cmd
}

func newTenantTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT TOKEN_ID",
		Short: "Revoke a token; requests with it are refused from now on",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant, id := cmd.Context(), args[0], args[1]
			return g.withStore(ctx, func(_ config.Config, st store.Store) error {
				if err := existingTenant(ctx, st, tenant); err != nil {
					return err
				}
				err := st.RevokeToken(ctx, tenant, id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("tenant %s has no token %s", tenant, id)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "revoked token %s of tenant %s\n", id, tenant)
				return nil
			})
		},
	}
}

func newTenantTokenListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's tokens (never their secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant := cmd.Context(), args[0]
			return g.withStore(ctx, func(_ config.Config, st store.Store) error {
				if err := existingTenant(ctx, st, tenant); err != nil {
					return err
				}
				toks, err := st.ListTokens(ctx, tenant)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tSCOPES\tCREATED\tLAST USED\tREVOKED")
				for _, t := range toks {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, scopeList(t.Scopes),
						fmtTime(&t.CreatedAt), fmtTime(t.LastUsedAt), fmtTime(t.RevokedAt))
				}
				return w.Flush()
			})
		},
	}
}

func scopeList(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
