package tools

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// The agent's contract (DESIGN.md §3), in All's order.
var wantNames = []string{
	"create_database", "checkpoint", "undo_to_time", "create_dev_branch", "get_usage",
	"list_databases", "list_checkpoints", "restore_checkpoint", "list_branches",
	"delete_dev_branch", "get_connection_string", "describe_limits", "run_sql", "apply_migration", "list_migrations", "undo_migration", "describe_schema",
	"compare_schema",
}

var wantAdminNames = []string{
	"admin_create_tenant", "admin_list_tenants", "admin_create_token", "admin_list_tokens", "admin_revoke_token",
	"admin_delete_database", "admin_set_tier",
}

func TestAdminNames(t *testing.T) {
	var got []string
	for _, st := range AdminTools(Deps{}) {
		got = append(got, st.Tool.Name)
		if !IsAdmin(st.Tool.Name) {
			t.Errorf("%s is in the admin set but IsAdmin says no", st.Tool.Name)
		}
	}
	if !slices.Equal(got, wantAdminNames) {
		t.Errorf("admin tools = %v, want %v", got, wantAdminNames)
	}
	for _, n := range Names() {
		if IsAdmin(n) {
			t.Errorf("agent tool %s would be hidden as an admin tool", n)
		}
	}
}

func TestNames(t *testing.T) {
	got := Names()
	if !slices.Equal(got, wantNames) {
		t.Fatalf("names = %v\nwant %v", got, wantNames)
	}
	seen := map[string]bool{}
	for _, st := range All(Deps{Guard: &fakeGuard{}}) {
		if seen[st.Tool.Name] {
			t.Errorf("duplicate tool %q (AddTools would silently replace it)", st.Tool.Name)
		}
		seen[st.Tool.Name] = true
		if st.Handler == nil {
			t.Errorf("%s: no handler", st.Tool.Name)
		}
	}
}

// TestAnnotations fails when a tool leaves a hint unset (mcp-go then sends the client's
// default, destructive and open-world), is read-only and destructive, or drifts from §3.
func TestAnnotations(t *testing.T) {
	type want struct{ readOnly, destructive, idempotent bool }
	ro := want{true, false, true}
	table := map[string]want{
		"create_database":       {false, false, true},
		"checkpoint":            {false, true, false},
		"undo_to_time":          {false, true, false},
		"create_dev_branch":     {false, false, false},
		"get_usage":             ro,
		"list_databases":        ro,
		"list_checkpoints":      ro,
		"restore_checkpoint":    {false, true, false},
		"list_branches":         ro,
		"delete_dev_branch":     {false, true, true},
		"get_connection_string": ro,
		"describe_limits":       ro,
		"run_sql":               {false, true, false},
		"apply_migration":       {false, true, true},
		"list_migrations":       ro,
		"undo_migration":        {false, true, false},
		"describe_schema":       ro,
		"compare_schema":        ro,
	}
	for _, st := range All(Deps{}) {
		a := st.Tool.Annotations
		name := st.Tool.Name
		if a.ReadOnlyHint == nil || a.DestructiveHint == nil || a.IdempotentHint == nil || a.OpenWorldHint == nil {
			t.Errorf("%s: every annotation must be set explicitly: %+v", name, a)
			continue
		}
		if *a.ReadOnlyHint && *a.DestructiveHint {
			t.Errorf("%s: read-only and destructive", name)
		}
		if *a.OpenWorldHint {
			t.Errorf("%s: openWorldHint must be false (closed set of the tenant's databases)", name)
		}
		w, ok := table[name]
		if !ok {
			t.Errorf("%s: no expected annotations", name)
			continue
		}
		if got := (want{*a.ReadOnlyHint, *a.DestructiveHint, *a.IdempotentHint}); got != w {
			t.Errorf("%s: annotations %+v, want %+v", name, got, w)
		}
		if st.Tool.Title == "" || st.Tool.Description == "" {
			t.Errorf("%s: title and description are required", name)
		}
		if len(st.Tool.Description) > 300 {
			t.Errorf("%s: description is %d bytes; keep it to one or two sentences", name, len(st.Tool.Description))
		}
	}
}

func TestSchemas(t *testing.T) {
	for _, st := range All(Deps{}) {
		name := st.Tool.Name
		if st.Tool.InputSchema.Type != "" || st.Tool.OutputSchema.Type != "" {
			t.Errorf("%s: structured schema set next to the raw one (breaks tools/list)", name)
		}
		if _, err := json.Marshal(st.Tool); err != nil {
			t.Fatalf("%s: tool does not marshal: %v", name, err)
		}

		var in map[string]any
		if err := json.Unmarshal(st.Tool.RawInputSchema, &in); err != nil {
			t.Fatalf("%s: input schema: %v", name, err)
		}
		if in["type"] != "object" || in["additionalProperties"] != false {
			t.Errorf("%s: input schema must be an object with additionalProperties false: %s", name, st.Tool.RawInputSchema)
		}
		if _, ok := in["properties"].(map[string]any); !ok {
			t.Errorf("%s: input schema lacks properties", name)
		}
		// Some providers reject the whole tools/list over top-level combinators.
		for _, k := range []string{"anyOf", "oneOf", "allOf", "not", "$defs", "$ref", "$schema", "$id"} {
			if _, ok := in[k]; ok {
				t.Errorf("%s: input schema has top-level %s", name, k)
			}
		}
		for p, v := range in["properties"].(map[string]any) {
			if m, _ := v.(map[string]any); m["type"] == nil {
				t.Errorf("%s: property %s has no type", name, p)
			}
		}
		compileSchema(t, name+"-in", st.Tool.RawInputSchema)

		var out map[string]any
		if err := json.Unmarshal(st.Tool.RawOutputSchema, &out); err != nil {
			t.Fatalf("%s: output schema: %v", name, err)
		}
		if out["type"] != "object" {
			t.Errorf("%s: output schema root must be an object (MCP spec)", name)
		}
		for _, k := range []string{"$defs", "$ref", "$schema", "$id"} {
			if _, ok := out[k]; ok {
				t.Errorf("%s: output schema has %s", name, k)
			}
		}
		compileSchema(t, name+"-out", st.Tool.RawOutputSchema)
	}
}

// TestToolsListSize keeps the whole tools/list answer small: agents pay for every byte.
func TestToolsListSize(t *testing.T) {
	var list []mcp.Tool
	for _, st := range All(Deps{}) {
		list = append(list, st.Tool)
	}
	b, err := json.Marshal(map[string]any{"tools": list})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tools/list: %d tools, %d bytes", len(list), len(b))
	// The SQL tools' result schemas are the largest; Neon's own MCP server lists 38.9 kB.
	if len(b) >= 28672 {
		t.Errorf("tools/list is %d bytes, want < 28672", len(b))
	}
}

// TestToolSnapshots compares each tool's wire form with tools/testdata/toolsnaps/<name>.json.
// UPDATE_TOOLSNAPS=1 go test ./tools rewrites them; a missing snapshot fails.
func TestToolSnapshots(t *testing.T) {
	update := os.Getenv("UPDATE_TOOLSNAPS") != ""
	for _, st := range append(All(Deps{}), AdminTools(Deps{})...) {
		t.Run(st.Tool.Name, func(t *testing.T) {
			raw, err := json.Marshal(st.Tool)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(v, "", "  ") // maps marshal with sorted keys
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "toolsnaps", st.Tool.Name+".json")
			if update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("missing snapshot (run UPDATE_TOOLSNAPS=1 go test ./tools): %v", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s changed; if intended, run UPDATE_TOOLSNAPS=1 go test ./tools\ngot:\n%s", path, got)
			}
		})
	}
	if update {
		return
	}
	// A snapshot without a tool is a renamed or removed tool: part of the contract too.
	files, _ := filepath.Glob(filepath.Join("testdata", "toolsnaps", "*.json"))
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".json"); !slices.Contains(wantNames, name) && !slices.Contains(wantAdminNames, name) {
			t.Errorf("stale snapshot %s", f)
		}
	}
}
