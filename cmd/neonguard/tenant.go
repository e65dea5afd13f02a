package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/operator"
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
	cmd.AddCommand(newTenantCreateCmd(g), newTenantListCmd(g), token, newTenantSetTierCmd(g),
		newTenantDeleteDatabaseCmd(g), newTenantInactiveCmd(g))
	return cmd
}

// withTenants loads the configuration and runs fn on the tenant service over the metadata store.
func (g *globals) withTenants(ctx context.Context, fn func(config.Config, *operator.Service) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	st, _, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	err = fn(cfg, &operator.Service{Store: st, Policy: cfg.Policy})
	return errors.Join(cliError(err), st.Close())
}

// cliError turns the service's agent-facing errors into one line for the command line.
func cliError(err error) error {
	if ge := errcode.As(err); ge != nil {
		if ge.Hint != "" {
			return fmt.Errorf("%s (%s)", ge.Message, ge.Hint)
		}
		return errors.New(ge.Message)
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
			return g.withTenants(ctx, func(cfg config.Config, svc *operator.Service) error {
				if tier == "" {
					tier = cfg.Tier
				}
				res, err := svc.CreateTenant(ctx, id, tier)
				if err != nil {
					return err
				}
				if !res.Created {
					fmt.Fprintf(g.stdout, "tenant %s already exists with tier %s; tier unchanged\n", res.Tenant.ID, res.Tenant.Tier)
					return nil
				}
				fmt.Fprintf(g.stdout, "created tenant %s with tier %s\n", res.Tenant.ID, res.Tenant.Tier)
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
			return g.withTenants(ctx, func(_ config.Config, svc *operator.Service) error {
				ts, err := svc.ListTenants(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTIER\tCREATED")
				for _, t := range ts.Tenants {
					fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.Tier, fmtTime(&t.CreatedAt))
				}
				return w.Flush()
			})
		},
	}
}

func newTenantTokenCreateCmd(g *globals) *cobra.Command {
	var scopes []string
	var output string
	cmd := &cobra.Command{
		Use:   "create TENANT",
		Short: "Create a bearer token and print its secret (shown once, never stored)",
		Long: `Create a bearer token for TENANT and print its secret, which is shown only this once.

Only the secret goes to stdout, so TOKEN=$(neonguard tenant token create acme) captures exactly
it; the token's id and scopes go to stderr. --output json prints {"id", "tenant", "scopes",
"secret"} on stdout instead.

--scope read makes a read-only token: it lists and calls only the tools annotated read-only,
and run_sql only reads. Without a scope a token may call every agent tool (write).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant := cmd.Context(), args[0]
			if output != "text" && output != "json" {
				return usageErrorf(cmd, "--output %q: want text or json", output)
			}
			return g.withTenants(ctx, func(_ config.Config, svc *operator.Service) error {
				tok, err := svc.CreateToken(ctx, tenant, scopes)
				if err != nil {
					return err
				}
				if output == "json" {
					enc := json.NewEncoder(g.stdout)
					return enc.Encode(struct {
						ID     string   `json:"id"`
						Tenant string   `json:"tenant"`
						Scopes []string `json:"scopes"`
						Secret string   `json:"secret"`
					}{tok.Token.ID, tenant, append([]string{}, tok.Token.Scopes...), tok.Secret})
				}
				fmt.Fprintf(g.stderr, "created token %s for tenant %s (scopes: %s)\n", tok.Token.ID, tenant, scopeList(tok.Token.Scopes))
				fmt.Fprintln(g.stderr, "This secret is shown only once: neonguard stores only its hash. Keep it now.")
				_, err = fmt.Fprintln(g.stdout, tok.Secret)
				return err
			})
		},
	}
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "grant a scope (repeatable; known: "+strings.Join(identity.Scopes, ", ")+
		"): read calls only read-only tools, write (the default without a scope) every agent tool, admin the admin tools too; the highest one counts")
	cmd.Flags().StringVar(&output, "output", "text", "text (the secret alone on stdout, the rest on stderr) or json")
	return cmd
}

func newTenantTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT TOKEN_ID",
		Short: "Revoke a token; requests with it are refused from now on",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, tenant, id := cmd.Context(), args[0], args[1]
			return g.withTenants(ctx, func(_ config.Config, svc *operator.Service) error {
				if _, err := svc.RevokeToken(ctx, tenant, id); err != nil {
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
			return g.withTenants(ctx, func(_ config.Config, svc *operator.Service) error {
				list, err := svc.ListTokens(ctx, tenant)
				if err != nil {
					return err
				}
				toks := list.Tokens
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
