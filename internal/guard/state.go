package guard

import (
	"context"
	"fmt"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// dbState is a database's branches as Neon reports them, with the kinds the guard recorded.
// Counts for policy decisions come from here (Neon), so branches made or removed outside
// neonguard are counted too; create_dev_branch counts from the store far from the limit and
// comes here near it (devfast.go).
type dbState struct {
	db       store.Database
	branches []neon.Branch
	main     neon.Branch
	dev      map[string]bool
}

func (g *Guard) state(ctx context.Context, org Org, db store.Database) (*dbState, error) {
	branches, err := org.API.ListBranches(ctx, db.ID)
	if err != nil {
		return nil, upstream("list branches", err)
	}
	g.sizes.note(db.ID, branches, g.now())
	st := &dbState{db: db, branches: branches, dev: map[string]bool{}}
	found := false
	for _, b := range branches {
		if b.Default {
			st.main, found = b, true
		}
	}
	if !found {
		for _, b := range branches {
			if b.ID == db.RootBranchID {
				st.main, found = b, true
			}
		}
	}
	if !found {
		return nil, &errcode.Error{Code: errcode.Upstream, Message: fmt.Sprintf("database %s has no main branch", db.ID),
			Hint: "the project was changed outside neonguard; contact the platform operator"}
	}
	if st.main.ID != db.RootBranchID {
		// The default branch moved (a checkpoint restore finished after we recorded it, or a
		// change outside neonguard): follow Neon.
		if err := g.store.SetRootBranch(ctx, db.ID, st.main.ID); err != nil {
			return nil, err
		}
		st.db.RootBranchID = st.main.ID
	}
	recorded, err := g.store.ListBranches(ctx, db.ID)
	if err != nil {
		return nil, err
	}
	for _, b := range recorded {
		if b.Kind == store.BranchDev {
			st.dev[b.ID] = true
		}
	}
	return st, nil
}

func (s *dbState) kind(b neon.Branch) string {
	switch {
	case b.ID == s.main.ID:
		return store.BranchMain
	case s.dev[b.ID]:
		return store.BranchDev
	default:
		return store.BranchBackup
	}
}

func (s *dbState) refs() []policy.BranchRef {
	out := make([]policy.BranchRef, 0, len(s.branches))
	for _, b := range s.branches {
		out = append(out, policy.BranchRef{Name: b.Name, Kind: s.kind(b)})
	}
	return out
}

// resolve finds a branch by id or name; "" and "main" mean the main branch.
func (s *dbState) resolve(ref string) (neon.Branch, error) {
	if ref == "" || ref == mainBranchName {
		return s.main, nil
	}
	for _, b := range s.branches {
		if b.ID == ref {
			return b, nil
		}
	}
	for _, b := range s.branches {
		if b.Name == ref {
			return b, nil
		}
	}
	return neon.Branch{}, &errcode.Error{Code: errcode.NotFound, Message: fmt.Sprintf("branch %q not found in database %s", ref, s.db.ID),
		Hint: "call list_branches to see the database's branches"}
}

func (s *dbState) byName(name string) (neon.Branch, bool) {
	for _, b := range s.branches {
		if b.Name == name {
			return b, true
		}
	}
	return neon.Branch{}, false
}
