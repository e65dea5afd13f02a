package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Token SQL, shared by every engine like the strings in queries.go. Scopes are stored
// space-separated in the TEXT column (scope names contain no spaces).
const (
	tokenColumns = `id, tenant_id, hash, scopes, created_at, revoked_at, last_used_at`

	qCreateToken = `INSERT INTO tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	qTokenByHash = `SELECT ` + tokenColumns + ` FROM tokens WHERE hash = $1`
	qListTokens  = `SELECT ` + tokenColumns + ` FROM tokens WHERE tenant_id = $1 ORDER BY created_at, id`
	// Revoking twice keeps the first revocation time.
	qRevokeToken = `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE tenant_id = $1 AND id = $2`
	// A late, out-of-order touch never moves the last use backwards.
	qTouchToken = `UPDATE tokens SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`
	qTokenExists = `SELECT COUNT(*) FROM tokens WHERE id = $1`
)

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	if t.ID == "" || t.TenantID == "" || t.Hash == "" {
		return errors.New("store: create token: empty id, tenant id or hash")
	}
	for _, sc := range t.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return fmt.Errorf("store: create token %q: invalid scope %q", t.ID, sc)
		}
	}
	_, err := s.w.ExecContext(ctx, qCreateToken, t.ID, t.TenantID, t.Hash, strings.Join(t.Scopes, " "),
		micros(orNow(t.CreatedAt)), nullMicros(t.RevokedAt), nullMicros(t.LastUsedAt))
	if err != nil {
		if isForeignKey(err) {
			return fmt.Errorf("store: create token %q of tenant %q: tenant: %w", t.ID, t.TenantID, ErrNotFound)
		}
		return fmt.Errorf("store: create token %q of tenant %q: %w", t.ID, t.TenantID, mapWriteErr(err))
	}
	return nil
}

func (s *sqlStore) TokenByHash(ctx context.Context, hash string) (Token, error) {
	t, err := scanToken(s.queryRow(ctx, s.r, qTokenByHash, hash))
	if err != nil {
		// The hash is not secret, but there is no reason to put it in logs either.
		return Token{}, fmt.Errorf("store: token by hash: %w", err)
	}
	return t, nil
}

func (s *sqlStore) RevokeToken(ctx context.Context, tenantID, id string) error {
	res, err := s.w.ExecContext(ctx, qRevokeToken, tenantID, id, micros(time.Now()))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: revoke token %q of tenant %q: %w", id, tenantID, err)
	}
	return nil
}

func (s *sqlStore) ListTokens(ctx context.Context, tenantID string) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, qListTokens, tenantID)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens of tenant %q: %w", tenantID, err)
	}
	out, err := collect(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens of tenant %q: %w", tenantID, err)
	}
	return out, nil
}

func (s *sqlStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, qTouchToken, id, micros(orNow(at)))
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			// No row changed: unknown id, or a newer last use is already recorded.
			var c int
			if err = s.w.QueryRowContext(ctx, qTokenExists, id).Scan(&c); err == nil && c == 0 {
				err = ErrNotFound
			}
		}
	}
	if err != nil {
		return fmt.Errorf("store: touch token %q: %w", id, err)
	}
	return nil
}

func scanToken(r scanner) (Token, error) {
	var t Token
	var scopes string
	var created int64
	var revoked, used sql.NullInt64
	if err := r.Scan(&t.ID, &t.TenantID, &t.Hash, &scopes, &created, &revoked, &used); err != nil {
		return Token{}, notFound(err)
	}
	t.Scopes = strings.Fields(scopes)
	t.CreatedAt = fromMicros(created)
	t.RevokedAt = fromNullMicros(revoked)
	t.LastUsedAt = fromNullMicros(used)
	return t, nil
}
