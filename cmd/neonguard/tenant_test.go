package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the root command in-process against dataDir and returns stdout and the error.
func runCLI(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	stdout, _, err := runCLISplit(t, dataDir, args...)
	return stdout, err
}

// runCLISplit is runCLI returning stderr too.
func runCLISplit(t *testing.T, dataDir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd(strings.NewReader(""), &out, &errb)
	cmd.SetArgs(append([]string{"--data-dir", dataDir, "--log-level", "error"}, args...))
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestTenantTokenLifecycle(t *testing.T) {
	t.Setenv("NEONGUARD_CONFIG", "")
	dir := t.TempDir()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, dir, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}

	out := mustRun("tenant", "create", "acme", "--tier", "free")
	if !strings.Contains(out, "created tenant acme with tier free") {
		t.Fatalf("create: %q", out)
	}
	if _, err := runCLI(t, dir, "tenant", "create", "bad", "--tier", "platinum-plus"); err == nil ||
		!strings.Contains(err.Error(), `unknown tier "platinum-plus" (known tiers: `) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("unknown tier: err = %v", err)
	}
	// An existing tenant keeps its tier (pro is a default tier).
	out = mustRun("tenant", "create", "acme", "--tier", "pro")
	if !strings.Contains(out, "already exists with tier free; tier unchanged") {
		t.Fatalf("re-create: %q", out)
	}
	out = mustRun("tenant", "list")
	if !regexp.MustCompile(`(?m)^acme\s+free\s`).MatchString(out) || strings.Contains(out, "\nbad") {
		t.Fatalf("tenant list: %q", out)
	}

	if _, err := runCLI(t, dir, "tenant", "token", "create", "nobody"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("token for unknown tenant: err = %v", err)
	}
	if _, err := runCLI(t, dir, "tenant", "token", "create", "acme", "--scope", "root"); err == nil || !strings.Contains(err.Error(), "unknown scope") {
		t.Fatalf("unknown scope: err = %v", err)
	}
	// Only the secret on stdout (TOKEN=$(…) captures it), the rest on stderr.
	out, errOut, err := runCLISplit(t, dir, "tenant", "token", "create", "acme", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSuffix(out, "\n")
	id := regexp.MustCompile(`created token (tok_[0-9a-f]+) for tenant acme \(scopes: admin\)`).FindStringSubmatch(errOut)
	if !regexp.MustCompile(`^ngt_[a-z2-7]{52}$`).MatchString(secret) || id == nil ||
		!strings.Contains(errOut, "shown only once") || !strings.Contains(errOut, "stores only its hash") {
		t.Fatalf("token create: stdout %q stderr %q", out, errOut)
	}
	if strings.Contains(errOut, secret) {
		t.Fatal("the secret is printed on stderr too")
	}
	tokenID := id[1]

	out = mustRun("tenant", "token", "create", "acme", "--output", "json")
	var created struct {
		ID, Tenant, Secret string
		Scopes             []string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.ID, "tok_") ||
		created.Tenant != "acme" || !strings.HasPrefix(created.Secret, "ngt_") || created.Scopes == nil || len(created.Scopes) != 0 {
		t.Fatalf("token create --output json: %q (%v)", out, err)
	}
	if _, err := runCLI(t, dir, "tenant", "token", "create", "acme", "--output", "yaml"); err == nil {
		t.Fatal("--output yaml accepted")
	}

	out = mustRun("tenant", "token", "list", "acme")
	if strings.Contains(out, secret) || strings.Contains(out, "ngt_") {
		t.Fatalf("token list shows the secret: %q", out)
	}
	row := regexp.MustCompile(`(?m)^` + tokenID + `\s+admin\s+\S+\s+-\s+-\s*$`)
	if !row.MatchString(out) {
		t.Fatalf("token list (live): %q", out)
	}

	if _, err := runCLI(t, dir, "tenant", "token", "revoke", "acme", "tok_nope"); err == nil || !strings.Contains(err.Error(), "has no token") {
		t.Fatalf("revoke unknown: err = %v", err)
	}
	out = mustRun("tenant", "token", "revoke", "acme", tokenID)
	if !strings.Contains(out, "revoked token "+tokenID) {
		t.Fatalf("revoke: %q", out)
	}
	out = mustRun("tenant", "token", "list", "acme")
	revoked := regexp.MustCompile(`(?m)^` + tokenID + `\s+admin\s+\S+\s+-\s+\d{4}-\d\d-\d\dT\S+\s*$`)
	if !revoked.MatchString(out) {
		t.Fatalf("token list (revoked): %q", out)
	}

	// Only the hash reached disk: neither the secret nor its random part is in any store file.
	files, _ := filepath.Glob(filepath.Join(dir, "neonguard.db*"))
	if len(files) == 0 {
		t.Fatalf("no store file in %s", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(secret[len("ngt_"):])) {
			t.Fatalf("%s contains the secret", f)
		}
	}
}
