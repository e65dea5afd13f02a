package prompts

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func prompt(t *testing.T, name string) server.ServerPrompt {
	t.Helper()
	for _, p := range All() {
		if p.Prompt.Name == name {
			return p
		}
	}
	t.Fatalf("no prompt %q", name)
	return server.ServerPrompt{}
}

func render(t *testing.T, name string, args map[string]string) (string, error) {
	t.Helper()
	var req mcp.GetPromptRequest
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := prompt(t, name).Handler(context.Background(), req)
	if err != nil {
		return "", err
	}
	if len(res.Messages) != 1 || res.Messages[0].Role != mcp.RoleUser {
		t.Fatalf("want one user message, got %+v", res.Messages)
	}
	tc, ok := res.Messages[0].Content.(mcp.TextContent)
	if !ok {
		t.Fatalf("want text content, got %T", res.Messages[0].Content)
	}
	if strings.Contains(tc.Text, "<no value>") {
		t.Fatalf("unfilled template value:\n%s", tc.Text)
	}
	return tc.Text, nil
}

func TestAll(t *testing.T) {
	var names []string
	for _, p := range All() {
		names = append(names, p.Prompt.Name)
		if p.Prompt.Description == "" || p.Handler == nil {
			t.Errorf("%s: description and handler required", p.Prompt.Name)
		}
	}
	if strings.Join(names, ",") != "safe_migration,feature_branch" {
		t.Fatalf("prompts = %v", names)
	}
	req := map[string][]string{}
	for _, p := range All() {
		for _, a := range p.Prompt.Arguments {
			if a.Required {
				req[p.Prompt.Name] = append(req[p.Prompt.Name], a.Name)
			}
		}
	}
	if strings.Join(req["safe_migration"], ",") != "database_id,change" || strings.Join(req["feature_branch"], ",") != "database_id,feature" {
		t.Fatalf("required arguments = %v", req)
	}
}

func TestSafeMigration(t *testing.T) {
	got, err := render(t, "safe_migration", map[string]string{"database_id": "wispy-sun-1", "change": "ALTER TABLE users ADD COLUMN email text"})
	if err != nil {
		t.Fatal(err)
	}
	// The workflow, in order.
	last := -1
	for _, step := range []string{"wispy-sun-1", "ALTER TABLE users ADD COLUMN email text", "describe_limits", "list_migrations", "`checkpoint`",
		"replace: true", "apply_migration", "dry_run: true", "ONE transaction", "CONFIRMATION_REQUIRED", "restore_point", "Verify",
		"undo_migration", "undo_to_time", "restore_checkpoint", "Confirm"} {
		i := strings.Index(got, step)
		if i < 0 || i < last {
			t.Fatalf("%q missing or out of order in:\n%s", step, got)
		}
		last = i
	}
}

func TestFeatureBranch(t *testing.T) {
	got, err := render(t, "feature_branch", map[string]string{"database_id": "wispy-sun-1", "feature": "Add user auth (OAuth)!", "ttl": "48h"})
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, step := range []string{"describe_limits", "every branch counts", "create_dev_branch", `name: "add-user-auth-oauth"`, `ttl: "48h"`,
		"connection_string", "disappears by itself", "compare_schema", "safe_migration", "**Clean up.** Call `delete_dev_branch`", `branch: "add-user-auth-oauth"`} {
		i := strings.Index(got, step)
		if i < 0 || i < last {
			t.Fatalf("%q missing or out of order in:\n%s", step, got)
		}
		last = i
	}

	got, err = render(t, "feature_branch", map[string]string{"database_id": "wispy-sun-1", "feature": "checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "ttl: ") || !strings.Contains(got, "tier's default applies") {
		t.Fatalf("without ttl the tier default applies:\n%s", got)
	}
}

func TestBranchName(t *testing.T) {
	for in, want := range map[string]string{
		"Add user auth": "add-user-auth", "  --x--  ": "x", "日本語": "feature", "main": "feature-main", "MAIN!": "feature-main",
		strings.Repeat("ab ", 40): "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-a", "v2.1_fix": "v2-1-fix",
	} {
		if got := branchName(in); got != want {
			t.Errorf("branchName(%q) = %q, want %q", in, got, want)
		}
		if got := branchName(in); len(got) > 40 || !identRE.MatchString(got) {
			t.Errorf("branchName(%q) = %q is not a valid branch name", in, got)
		}
	}
}

func TestArgumentErrors(t *testing.T) {
	tests := []struct {
		prompt string
		args   map[string]string
		want   string
	}{
		{"safe_migration", map[string]string{"change": "x"}, "missing required argument database_id"},
		{"safe_migration", map[string]string{"database_id": "d1"}, "missing required argument change"},
		{"safe_migration", map[string]string{"database_id": "d1", "change": "   "}, "missing required argument change"},
		{"safe_migration", nil, "missing required argument database_id"},
		{"safe_migration", map[string]string{"database_id": "d 1", "change": "x"}, "argument database_id"},
		{"safe_migration", map[string]string{"database_id": "d1", "change": strings.Repeat("x", 8001)}, "too long"},
		{"safe_migration", map[string]string{"database_id": "d1", "change": "x", "extra": "y"}, `unknown argument "extra"`},
		{"feature_branch", map[string]string{"database_id": "d1"}, "missing required argument feature"},
		{"feature_branch", map[string]string{"feature": "f"}, "missing required argument database_id"},
		{"feature_branch", map[string]string{"database_id": "d1", "feature": "f", "ttl": "forever"}, "argument ttl: must be a duration"},
	}
	for _, tt := range tests {
		if _, err := render(t, tt.prompt, tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: err = %v, want %q", tt.prompt, tt.args, err, tt.want)
		}
	}
}

// TestEmbedded proves the templates are compiled in: rendering works from a directory where
// no templates/ exists.
func TestEmbedded(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, err := os.Stat("templates"); err == nil {
		t.Fatal("templates/ unexpectedly present")
	}
	ps := All() // parse after the chdir too
	if len(ps) != 2 {
		t.Fatal(len(ps))
	}
	if _, err := render(t, "safe_migration", map[string]string{"database_id": "d1", "change": "x"}); err != nil {
		t.Fatal(err)
	}
	entries, err := templates.ReadDir("templates")
	if err != nil || len(entries) != 2 {
		t.Fatalf("embedded templates: %v %v", entries, err)
	}
}
