package tools

import (
	"slices"
	"testing"
)

// Every agent tool is in exactly one group (a tool in none would never be served with --tools),
// every group has a tool a read principal can call, and no admin tool is in a group.
func TestGroups(t *testing.T) {
	if want := []string{"databases", "versioning", "branches", "sql", "usage"}; !slices.Equal(Groups(), want) {
		t.Fatalf("Groups() = %v, want %v", Groups(), want)
	}
	readable := map[string]int{}
	for _, st := range All(Deps{}) {
		g := GroupOf(st.Tool.Name)
		if !slices.Contains(Groups(), g) {
			t.Errorf("%s: group %q is not one of %v", st.Tool.Name, g, Groups())
		}
		if _, ok := ReadOnlyView(st.Tool); ok {
			readable[g]++
		}
	}
	for _, g := range Groups() {
		if readable[g] == 0 {
			t.Errorf("group %s has no tool a read principal can call", g)
		}
	}
	for _, st := range AdminTools(Deps{}) {
		if g := GroupOf(st.Tool.Name); g != "" {
			t.Errorf("admin tool %s is in group %s", st.Tool.Name, g)
		}
	}
	for name, g := range groupOf {
		if !slices.Contains(Groups(), g) {
			t.Errorf("%s: unknown group %q", name, g)
		}
	}
}

// What a principal that may only read sees and calls: the read-only tools as they are, run_sql
// annotated read-only, nothing else.
func TestReadOnlyView(t *testing.T) {
	var got []string
	for _, st := range append(All(Deps{}), AdminTools(Deps{})...) {
		v, ok := ReadOnlyView(st.Tool)
		if !ok {
			if st.Tool.Name == "run_sql" || *st.Tool.Annotations.ReadOnlyHint {
				t.Errorf("%s is hidden from read principals", st.Tool.Name)
			}
			continue
		}
		got = append(got, v.Name)
		a := v.Annotations
		if !*a.ReadOnlyHint || *a.DestructiveHint || a.OpenWorldHint == nil || *a.OpenWorldHint {
			t.Errorf("%s as a read principal sees it: %+v", v.Name, a)
		}
		if v.Name == "run_sql" {
			if *st.Tool.Annotations.ReadOnlyHint {
				t.Error("the view changed the registered run_sql")
			}
			if v.Description == st.Tool.Description {
				t.Error("run_sql's view does not say that writes are refused")
			}
		} else if v.Description != st.Tool.Description {
			t.Errorf("%s: description changed", v.Name)
		}
	}
	for _, w := range []string{"run_sql", "list_databases", "describe_schema", "admin_list_tokens"} {
		if !slices.Contains(got, w) {
			t.Errorf("%s missing from the read-only view %v", w, got)
		}
	}
	for _, w := range []string{"apply_migration", "undo_migration", "create_database", "admin_create_token"} {
		if slices.Contains(got, w) {
			t.Errorf("%s is in the read-only view", w)
		}
	}
}

func TestAsksToWrite(t *testing.T) {
	for _, c := range []struct {
		tool string
		args map[string]any
		want bool
	}{
		{"run_sql", map[string]any{"read_only": false}, true},
		{"run_sql", map[string]any{"read_only": true}, false},
		{"run_sql", map[string]any{}, false},
		{"run_sql", nil, false},
		{"run_sql", map[string]any{"read_only": "false"}, false}, // refused by the decoder
		{"describe_schema", map[string]any{"read_only": false}, false},
	} {
		if got := AsksToWrite(c.tool, c.args); got != c.want {
			t.Errorf("AsksToWrite(%s, %v) = %v, want %v", c.tool, c.args, got, c.want)
		}
	}
}
