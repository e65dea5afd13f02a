package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The MCP conveniences of issue 14 proved with the official TypeScript MCP client against the
// real binary on the local backend, over stdio, Streamable HTTP and the legacy SSE transport:
// testdata/e2e/ts/mcpnative.mjs runs them and prints the facts; checkNative asserts on them.

// nativeConfig: a short undo backup TTL, so that an undo's backup expires within the hour and
// is warned about.
const nativeConfig = `policy:
  tiers:
    free:
      undo_backup_ttl: 30m
`

type tsUpdate struct {
	Progress float64
	Total    float64
	Message  string
}

type tsBranch struct {
	Name          string
	Kind          string
	ExpiresAt     *string `json:"expires_at"`
	EndpointState string  `json:"endpoint_state"`
}

type tsResource struct {
	URI      string
	MIMEType string `json:"mimeType"`
	JSON     json.RawMessage
}

type tsNative struct {
	Transport    string
	DatabaseID   string `json:"database_id"`
	Capabilities map[string]json.RawMessage
	Progress     map[string][]tsUpdate
	Abort        struct {
		AbortedAt *string `json:"aborted_at"`
		// AbortedProgress is the progress value of the update that triggered the abort.
		AbortedProgress float64 `json:"aborted_progress"`
		Rejected        *bool
		Error           string
		ElapsedMS       float64 `json:"elapsed_ms"`
		Updates         []tsUpdate
		UpdatesAfter    int `json:"updates_after"`
		Branches        []tsBranch
	}
	Completions map[string][]string
	Resources   struct {
		List      []string
		Templates []string
		Databases tsResource
		Database  tsResource
		Missing   string
	}
	Logging struct {
		BeforeSetLevel int `json:"before_set_level"`
		Messages       []struct {
			Level  string
			Logger string
			Data   map[string]any
		}
	}
	Errors []string
}

func runNativeScript(t *testing.T, node string, env []string, args ...string) tsNative {
	t.Helper()
	var res tsNative
	out := runTSScript(t, node, env, "mcpnative.mjs", &res, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mcpnative.mjs printed:\n%s", out)
		}
	})
	return res
}

func messages(us []tsUpdate) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Message)
	}
	return out
}

func hasPrefix(msgs []string, prefix string) bool {
	return slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

func checkNative(t *testing.T, r tsNative) {
	t.Helper()
	if r.DatabaseID == "" {
		t.Fatal("create_database failed")
	}
	for _, c := range []string{"completions", "resources", "logging", "prompts", "tools"} {
		if _, ok := r.Capabilities[c]; !ok {
			t.Errorf("capabilities over %s lack %s: %v", r.Transport, c, r.Capabilities)
		}
	}

	t.Run("progress", func(t *testing.T) {
		for tool, want := range map[string][]string{
			// Over Streamable HTTP mcp-go may drop the update sent just before the answer, so
			// the last step of each is not required.
			"create_database":   {"checking the database limit", `creating the Neon project for "native-`, "waiting for Neon operation 1/"},
			"create_dev_branch": {"checking the branch limit and quota", `creating branch "feat" with its compute`, "waiting for Neon operation"},
		} {
			us := r.Progress[tool]
			msgs := messages(us)
			for _, w := range want {
				if !hasPrefix(msgs, w) {
					t.Errorf("%s's progress %q lacks %q", tool, msgs, w)
				}
			}
			for i, u := range us {
				// neonguard sends them in order; over Streamable HTTP mcp-go forwards a
				// session's notifications on whichever of its streams (the call's POST, the
				// GET stream) takes them first, so they may arrive out of order there.
				if r.Transport == "stdio" && i > 0 && u.Progress <= us[i-1].Progress {
					t.Errorf("%s: progress %v after %v", tool, u.Progress, us[i-1].Progress)
				}
				if u.Total == 0 || u.Progress >= u.Total {
					t.Errorf("%s: progress %v of total %v", tool, u.Progress, u.Total)
				}
			}
		}
		if len(r.Progress["list_branches"]) != 0 {
			t.Errorf("list_branches (fast) reported %v", r.Progress["list_branches"])
		}
	})

	t.Run("abort", func(t *testing.T) {
		a := r.Abort
		if a.AbortedAt == nil || a.Rejected == nil || !*a.Rejected {
			t.Fatalf("abort: at %v, rejected %v (%s)", a.AbortedAt, a.Rejected, a.Error)
		}
		if a.UpdatesAfter != 0 {
			t.Errorf("%d progress updates after the abort", a.UpdatesAfter)
		}
		// The SDK forgets an aborted call's token and reports any later update for it. None
		// for a step past the one that triggered the abort may come: the server saw the
		// cancellation (its steps went on, unreported). An earlier step can still arrive late
		// over Streamable HTTP, where mcp-go may deliver a session's notifications out of order.
		for _, e := range r.Errors {
			if !strings.Contains(e, "unknown token") || !strings.Contains(e, `\"aborted\"`) {
				continue
			}
			m := progressValue.FindStringSubmatch(e)
			if m == nil {
				t.Errorf("progress of the aborted call after the abort, without a progress value: %s", e)
				continue
			}
			if v, _ := strconv.ParseFloat(m[1], 64); v > a.AbortedProgress {
				t.Errorf("progress of the aborted call past the step it was aborted at (%v): %s", a.AbortedProgress, e)
			}
		}
		// Aborted once Neon was creating it: the intent finishes it (as after a crash), so it is
		// a whole dev branch with its expiry and compute, never a half-made one.
		var found bool
		for _, b := range a.Branches {
			if b.Name != "aborted" {
				continue
			}
			found = true
			if b.Kind != "dev" || b.ExpiresAt == nil || b.EndpointState == "none" {
				t.Errorf("the aborted call's branch is half-made: %+v", b)
			}
		}
		if !found {
			t.Errorf("branches after the abort: %+v; want the branch Neon was making, finished", a.Branches)
		}
		for _, b := range a.Branches {
			if b.Kind == "" || (b.Kind != "main" && b.ExpiresAt == nil) {
				t.Errorf("branch %+v is not fully recorded", b)
			}
		}
		// The SDK reports an answer to the request it cancelled; none may come, on any transport.
		for _, e := range r.Errors {
			if strings.Contains(strings.ToLower(e), "unknown message") {
				t.Errorf("the aborted call was answered over %s: %s", r.Transport, e)
			}
		}
	})

	t.Run("completions", func(t *testing.T) {
		c := r.Completions
		if !slices.Contains(c["prompt_empty"], r.DatabaseID) || !slices.Equal(c["prompt_by_name"], []string{r.DatabaseID}) ||
			len(c["prompt_none"]) != 0 || !slices.Equal(c["template"], []string{r.DatabaseID}) {
			t.Errorf("completions of database_id %s: %v", r.DatabaseID, c)
		}
	})

	t.Run("resources", func(t *testing.T) {
		res := r.Resources
		if !slices.Equal(res.List, []string{"neonguard://databases"}) || !slices.Equal(res.Templates, []string{"neonguard://databases/{database_id}"}) {
			t.Errorf("resources %v, templates %v", res.List, res.Templates)
		}
		if res.Databases.MIMEType != "application/json" || !strings.Contains(string(res.Databases.JSON), r.DatabaseID) {
			t.Errorf("neonguard://databases: %s %s", res.Databases.MIMEType, res.Databases.JSON)
		}
		var doc struct {
			DatabaseID  string `json:"database_id"`
			Branches    struct{ Branches []tsBranch }
			Checkpoints struct {
				Checkpoints []any
			}
			Usage *struct{ Metrics []any }
		}
		if err := json.Unmarshal(res.Database.JSON, &doc); err != nil || doc.DatabaseID != r.DatabaseID || len(doc.Branches.Branches) < 2 || doc.Usage == nil {
			t.Errorf("neonguard://databases/%s: %s (%v)", r.DatabaseID, res.Database.JSON, err)
		}
		if !strings.Contains(res.Missing, "NOT_FOUND") {
			t.Errorf("reading a missing database: %q", res.Missing)
		}
	})

	t.Run("logging", func(t *testing.T) {
		l := r.Logging
		if l.BeforeSetLevel != 0 {
			t.Errorf("%d messages before logging/setLevel", l.BeforeSetLevel)
		}
		if len(l.Messages) != 1 {
			t.Fatalf("messages after setLevel warning: %+v; want the backup's warning once", l.Messages)
		}
		m := l.Messages[0]
		msg, _ := m.Data["message"].(string)
		if m.Level != "warning" || m.Logger != "neonguard" || m.Data["database_id"] != r.DatabaseID || !strings.Contains(msg, "expires at") {
			t.Errorf("warning: %+v", m)
		}
		if strings.Contains(msg, "postgres") {
			t.Errorf("the warning carries a connection string: %q", msg)
		}
	})
}

// progressValue finds the progress value in the SDK's report of a notification.
var progressValue = regexp.MustCompile(`"progress":([0-9.]+)`)

// TestMCPNativeWithTypeScriptClient runs the real binary on the local backend (control plane
// only, slow operations so that a call can be aborted half-way) and proves progress,
// cancellation, completions, resources and logging through the official TypeScript client, over
// stdio, Streamable HTTP and SSE.
func TestMCPNativeWithTypeScriptClient(t *testing.T) {
	node := requireNodeSDK(t)
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(cfg, []byte(nativeConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	serverEnv := func(dataDir string) []string {
		return hermeticEnv(
			"NEONGUARD_CONFIG="+cfg,
			"NEONGUARD_DATA_DIR="+dataDir,
			"NEONGUARD_BACKEND=local",
			"NEONGUARD_LOCAL_POSTGRES=off",
			"NEONGUARD_LOCAL_OPERATION_DELAY=600ms",
			"NEONGUARD_LOG_LEVEL=info",
		)
	}
	t.Run("stdio", func(t *testing.T) {
		dir := t.TempDir()
		checkNative(t, runNativeScript(t, node, serverEnv(dir), "stdio", bin, dir))
	})
	for _, transport := range []string{"streamable", "sse"} {
		t.Run(transport, func(t *testing.T) {
			e := &httpEnv{bin: bin, env: serverEnv(t.TempDir())}
			e.cli(t, "tenant", "create", "acme", "--tier", "free")
			_, tok := e.createToken(t, "acme")
			e.start(t)
			checkNative(t, runNativeScript(t, node, append(os.Environ(), "NEONGUARD_E2E_TOKEN="+tok), transport, e.base))
		})
	}
}
