package dataplane

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// ApplyConfig makes one change to a branch's roles or databases (Neon's apply_config), on
// the branch's running PostgreSQL or on one started for the change (held like a backup's:
// it stops after holdGrace unless an endpoint wants it). Every change checks the catalog
// first, so applying it again is harmless.
func (dp *DataPlane) ApplyConfig(ctx context.Context, ch neonlocal.ConfigChange) error {
	c := dp.cluster(ch.ProjectID, ch.BranchID)
	p, err := c.hold(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	conn, err := dp.tk.Admin(ctx, c.socketDir(), p.Port, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := applyConfig(ctx, conn, ch, func(db string) (*pgx.Conn, error) {
		return dp.tk.Admin(ctx, c.socketDir(), p.Port, db)
	}); err != nil {
		return fmt.Errorf("branch %s: %s: %w", ch.BranchID, ch.Kind, err)
	}
	return nil
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func execf(ctx context.Context, conn *pgx.Conn, format string, args ...any) error {
	_, err := conn.Exec(ctx, fmt.Sprintf(format, args...))
	return err
}

func catalogHas(ctx context.Context, conn *pgx.Conn, query, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, query, name).Scan(&ok)
	return ok, err
}

const (
	roleExists = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)"
	dbExists   = "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)"
)

// applyConfig runs ch on conn (the admin's, to the postgres database); dial opens an admin
// connection to another database (a role's objects are reassigned in each).
func applyConfig(ctx context.Context, conn *pgx.Conn, ch neonlocal.ConfigChange, dial func(db string) (*pgx.Conn, error)) error {
	switch ch.Kind {
	case neonlocal.CreateRole, neonlocal.SetPassword:
		has, err := catalogHas(ctx, conn, roleExists, ch.Role)
		if err != nil {
			return err
		}
		// Roles made through the API may log in with their password, create databases and
		// roles, like the project's role (Neon makes them members of neon_superuser).
		login := "LOGIN PASSWORD " + quoteLiteral(ch.Password)
		if ch.NoLogin {
			login = "NOLOGIN"
		}
		switch {
		case !has && ch.Kind == neonlocal.CreateRole:
			return execf(ctx, conn, "CREATE ROLE %s %s CREATEDB CREATEROLE", quoteIdent(ch.Role), login)
		case !has:
			return fmt.Errorf("role %q does not exist", ch.Role)
		default:
			return execf(ctx, conn, "ALTER ROLE %s %s", quoteIdent(ch.Role), login)
		}
	case neonlocal.DropRole:
		has, err := catalogHas(ctx, conn, roleExists, ch.Role)
		if err != nil || !has {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", ch.Role); err != nil {
			return err
		}
		// As Neon's compute does: what the role owns in each database goes to the database's
		// owner, its privileges are dropped, then the role.
		rows, err := conn.Query(ctx, `SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datallowconn AND NOT datistemplate`)
		if err != nil {
			return err
		}
		dbs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var v [2]string
			err := r.Scan(&v[0], &v[1])
			return v, err
		})
		if err != nil {
			return err
		}
		for _, d := range dbs {
			if err := reassignOwned(ctx, dial, d[0], ch.Role, d[1]); err != nil {
				return err
			}
		}
		return execf(ctx, conn, "DROP ROLE IF EXISTS %s", quoteIdent(ch.Role))
	case neonlocal.CreateDatabase:
		has, err := catalogHas(ctx, conn, dbExists, ch.Database)
		if err != nil || has {
			return err
		}
		return execf(ctx, conn, "CREATE DATABASE %s OWNER %s", quoteIdent(ch.Database), quoteIdent(ch.Owner))
	case neonlocal.AlterDatabase:
		name := ch.Database
		if ch.NewName != "" && ch.NewName != name {
			has, err := catalogHas(ctx, conn, dbExists, name)
			if err != nil {
				return err
			}
			if has { // else renamed already (a re-run)
				// A database with sessions cannot be renamed: they end, as Neon's drop.
				if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
					return err
				}
				if err := execf(ctx, conn, "ALTER DATABASE %s RENAME TO %s", quoteIdent(name), quoteIdent(ch.NewName)); err != nil {
					return err
				}
			}
			name = ch.NewName
		}
		if ch.Owner != "" {
			return execf(ctx, conn, "ALTER DATABASE %s OWNER TO %s", quoteIdent(name), quoteIdent(ch.Owner))
		}
		return nil
	case neonlocal.DropDatabase:
		// WITH (FORCE) ends its sessions (PostgreSQL 13+; Neon serves 14+).
		return execf(ctx, conn, "DROP DATABASE IF EXISTS %s WITH (FORCE)", quoteIdent(ch.Database))
	}
	return fmt.Errorf("unknown change %q", ch.Kind)
}

// reassignOwned gives what role owns in db to owner and drops its privileges there.
func reassignOwned(ctx context.Context, dial func(string) (*pgx.Conn, error), db, role, owner string) error {
	conn, err := dial(db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if owner != role {
		if err := execf(ctx, conn, "REASSIGN OWNED BY %s TO %s", quoteIdent(role), quoteIdent(owner)); err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
	}
	if err := execf(ctx, conn, "DROP OWNED BY %s", quoteIdent(role)); err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	return nil
}
