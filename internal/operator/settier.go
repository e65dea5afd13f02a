package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/store"
)

// TierChanger runs a tenant's tier change to its end (*Service).
type TierChanger interface {
	SetTier(ctx context.Context, tenant, tier string, force bool) (*Job, error)
}

var errNoLifecycle = errors.New("tenants: tier changes are not wired (no Neon client)")

// SetTier moves the tenant to tier (a durable job; see TierChanges) and returns the
// finished job. A downgrade over the target tier's limits is refused with INVALID_ARGUMENT
// whose message is the report (which database, what, by how much), unless force.
func (s *Service) SetTier(ctx context.Context, tenant, tier string, force bool) (*Job, error) {
	if s.Lifecycle == nil {
		return nil, errNoLifecycle
	}
	j, err := s.Lifecycle.SetTier(ctx, tenant, tier, force)
	if err != nil {
		return nil, err
	}
	if j.State == store.JobRefused {
		return nil, &errcode.Error{Code: errcode.InvalidArgument,
			Message: fmt.Sprintf("tier change of tenant %s to %s refused (job %s): %s", tenant, tier, j.ID, j.Report.String()),
			Hint:    "bring the databases under the tier's limits (delete dev branches or checkpoints; wait for the next billing period) and try again, or pass force=true to change the tier anyway"}
	}
	return j, nil
}
