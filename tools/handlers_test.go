package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
)

// validArgs is one valid call per tool.
var validArgs = map[string]string{
	"create_database":       `{"name":"shop"}`,
	"checkpoint":            `{"database_id":"wispy-sun-12345678","name":"before-auth"}`,
	"undo_to_time":          `{"database_id":"wispy-sun-12345678","ago":"15m"}`,
	"create_dev_branch":     `{"database_id":"wispy-sun-12345678","name":"feat-auth"}`,
	"get_usage":             `{}`,
	"list_databases":        `{}`,
	"list_checkpoints":      `{"database_id":"wispy-sun-12345678"}`,
	"restore_checkpoint":    `{"database_id":"wispy-sun-12345678","checkpoint":"before-auth"}`,
	"list_branches":         `{"database_id":"wispy-sun-12345678"}`,
	"delete_dev_branch":     `{"database_id":"wispy-sun-12345678","branch":"feat-auth"}`,
	"get_connection_string": `{"database_id":"wispy-sun-12345678"}`,
	"describe_limits":       `{}`,
	"run_sql":               `{"database_id":"wispy-sun-12345678","sql":"select 1"}`,
	"apply_migration":       `{"database_id":"wispy-sun-12345678","name":"0001_init","sql":"create table t (id int)"}`,
	"list_migrations":       `{"database_id":"wispy-sun-12345678"}`,
	"undo_migration":        `{"database_id":"wispy-sun-12345678","version":2}`,
	"describe_schema":       `{"database_id":"wispy-sun-12345678"}`,
	"compare_schema":        `{"database_id":"wispy-sun-12345678","branch":"feat-auth"}`,
}

func TestArgumentMapping(t *testing.T) {
	ts := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		tool, args string
		want       any
	}{
		{"create_database", `{"name":"shop"}`, guard.CreateDatabaseInput{Name: "shop"}},
		{"create_database", `{"name":"shop","region":"aws-eu-central-1","pg_version":16}`,
			guard.CreateDatabaseInput{Name: "shop", Region: "aws-eu-central-1", PGVersion: 16}},
		{"checkpoint", `{"database_id":"d1","name":"before-auth"}`, guard.CheckpointInput{DatabaseID: "d1", Name: "before-auth"}},
		{"checkpoint", `{"database_id":"d1","name":"v2","replace":true}`, guard.CheckpointInput{DatabaseID: "d1", Name: "v2", Replace: true}},
		{"undo_to_time", `{"database_id":"d1","ago":"15m"}`, guard.UndoInput{DatabaseID: "d1", Ago: 15 * time.Minute}},
		{"undo_to_time", `{"database_id":"d1","ago":"1h30m","branch":"main"}`, guard.UndoInput{DatabaseID: "d1", Ago: 90 * time.Minute}},
		{"undo_to_time", `{"database_id":"d1","ago":"1d","branch":"feat"}`, guard.UndoInput{DatabaseID: "d1", Ago: 24 * time.Hour, Branch: "feat"}},
		{"undo_to_time", `{"database_id":"d1","timestamp":"2025-01-02T15:04:05Z"}`, guard.UndoInput{DatabaseID: "d1", Timestamp: &ts}},
		{"create_dev_branch", `{"database_id":"d1","name":"feat"}`, guard.DevBranchInput{DatabaseID: "d1", Name: "feat", From: "main"}},
		{"create_dev_branch", `{"database_id":"d1","name":"feat","from":"before-auth","ttl":"7d"}`,
			guard.DevBranchInput{DatabaseID: "d1", Name: "feat", From: "before-auth", TTL: 7 * 24 * time.Hour}},
		{"create_dev_branch", `{"database_id":"d1","name":"feat","from":"2025-01-02T15:04:05+01:00","ttl":"24h"}`,
			guard.DevBranchInput{DatabaseID: "d1", Name: "feat", From: "2025-01-02T15:04:05+01:00", TTL: 24 * time.Hour}},
		{"get_usage", `{}`, ""},
		{"get_usage", `{"database_id":"d1"}`, "d1"},
		{"list_databases", `{}`, nil},
		{"list_databases", `null`, nil},
		{"list_checkpoints", `{"database_id":"d1"}`, "d1"},
		{"restore_checkpoint", `{"database_id":"d1","checkpoint":"before-auth"}`, [2]string{"d1", "before-auth"}},
		{"list_branches", `{"database_id":"d1"}`, "d1"},
		{"delete_dev_branch", `{"database_id":"d1","branch":"feat"}`, [2]string{"d1", "feat"}},
		{"get_connection_string", `{"database_id":"d1"}`, guard.ConnectionInput{DatabaseID: "d1", Pooled: true}},
		{"get_connection_string", `{"database_id":"d1","pooled":null}`, guard.ConnectionInput{DatabaseID: "d1", Pooled: true}},
		{"get_connection_string", `{"database_id":"d1","branch":"feat","pooled":false}`, guard.ConnectionInput{DatabaseID: "d1", Branch: "feat"}},
		{"get_connection_string", `{"database_id":"d1","branch":"main","pooled":true}`, guard.ConnectionInput{DatabaseID: "d1", Pooled: true}},
		{"describe_limits", `{}`, nil},
		{"run_sql", `{"database_id":"d1","sql":"select $1","params":[1,"a",null]}`,
			guard.RunSQLInput{DatabaseID: "d1", SQL: "select $1", Params: []any{float64(1), "a", nil}, ReadOnly: true}},
		{"run_sql", `{"database_id":"d1","sql":"drop table t","branch":"main","read_only":false,"confirm":true}`,
			guard.RunSQLInput{DatabaseID: "d1", SQL: "drop table t", Confirm: true}},
		{"apply_migration", `{"database_id":"d1","name":"0001_init","sql":"create table t (id int)","branch":"dev"}`,
			guard.ApplyMigrationInput{DatabaseID: "d1", Name: "0001_init", SQL: "create table t (id int)", Branch: "dev"}},
		{"list_migrations", `{"database_id":"d1","branch":"main"}`, guard.DatabaseBranchInput{DatabaseID: "d1"}},
		{"undo_migration", `{"database_id":"d1","version":3,"confirm":true}`, guard.UndoMigrationInput{DatabaseID: "d1", Version: 3, Confirm: true}},
		{"describe_schema", `{"database_id":"d1","schema":"app"}`, guard.DescribeSchemaInput{DatabaseID: "d1", Schema: "app"}},
		{"apply_migration", `{"database_id":"d1","name":"0002_x","sql":"drop table t","dry_run":true}`,
			guard.ApplyMigrationInput{DatabaseID: "d1", Name: "0002_x", SQL: "drop table t", DryRun: true}},
		{"compare_schema", `{"database_id":"d1","branch":"feat"}`, guard.CompareSchemaInput{DatabaseID: "d1", Branch: "feat"}},
		{"compare_schema", `{"database_id":"d1","branch":"feat","base":"main","schema":"app"}`,
			guard.CompareSchemaInput{DatabaseID: "d1", Branch: "feat", Schema: "app"}},
	}
	for _, tt := range tests {
		t.Run(tt.tool+tt.args, func(t *testing.T) {
			fg := &fakeGuard{}
			res := callJSON(t, toolByName(t, Deps{Guard: fg}, tt.tool), tt.args)
			if res.IsError {
				t.Fatalf("unexpected error: %+v", res.Content)
			}
			if got := fg.last(t).in; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("guard got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestArgumentsFromMap covers in-process callers that set Arguments without RawArguments.
func TestArgumentsFromMap(t *testing.T) {
	fg := &fakeGuard{}
	var req mcp.CallToolRequest
	req.Params.Arguments = map[string]any{"database_id": "d1", "name": "v1", "replace": true}
	res := callReq(t, toolByName(t, Deps{Guard: fg}, "checkpoint"), req)
	if res.IsError {
		t.Fatalf("unexpected error: %+v", res.Content)
	}
	if got := fg.last(t).in; got != (guard.CheckpointInput{DatabaseID: "d1", Name: "v1", Replace: true}) {
		t.Fatalf("got %#v", got)
	}

	req.Params.Arguments = map[string]any{"database_id": "d1", "name": math.NaN()}
	if e := errorOf(t, callReq(t, toolByName(t, Deps{Guard: fg}, "checkpoint"), req)); e.Code != "INVALID_ARGUMENT" {
		t.Fatalf("NaN: %+v", e)
	}
	req.Params.Arguments = []any{"x"}
	if e := errorOf(t, callReq(t, toolByName(t, Deps{Guard: fg}, "checkpoint"), req)); e.Code != "INVALID_ARGUMENT" {
		t.Fatalf("array: %+v", e)
	}
}

func TestInvalidArguments(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct {
		tool, args string
		msg        string // substring of the message
		hint       string // substring of the hint
	}{
		{"create_database", `{}`, "name: required", ""},
		{"create_database", `{"name":""}`, "name: required", ""},
		{"create_database", `{"name":"shop","colour":"red"}`, `unknown argument "colour"`, "allowed arguments: name, pg_version, region"},
		{"create_database", `{"Name":"shop"}`, `unknown argument "Name"`, "allowed arguments"},
		{"create_database", `{"name":"shop","b":1,"a":2}`, `unknown arguments "a", "b"`, ""},
		{"create_database", `{"name":"` + long + `"}`, "name: at most 64 characters", ""},
		{"create_database", `{"name":"has space"}`, "name: letters, digits", ""},
		{"create_database", `{"name":"shop","pg_version":13}`, "pg_version: at least 14", ""},
		{"create_database", `{"name":"shop","pg_version":"17"}`, "pg_version: must be an integer", ""},
		{"create_database", `{"name":"shop","pg_version":16.5}`, "pg_version: must be an integer", ""},
		{"create_database", `{"name":"shop","pg_version":1e300}`, "pg_version: must be an integer", ""},
		{"create_database", `{"name":42}`, "name: must be a string", ""},
		{"create_database", `{"name":{"x":1}}`, "name: must be a string", ""},
		{"create_database", `[]`, "arguments must be a JSON object", ""},
		{"create_database", `"shop"`, "arguments must be a JSON object", ""},
		{"checkpoint", `{"database_id":"d1"}`, "name: required", ""},
		{"checkpoint", `{"database_id":"d1","name":"x","replace":"yes"}`, "replace: must be a boolean", ""},
		{"undo_to_time", `{"database_id":"d1"}`, "exactly one of timestamp or ago", `"ago":"15m"`},
		{"undo_to_time", `{"database_id":"d1","ago":"15m","timestamp":"2025-01-02T15:04:05Z"}`, "exactly one of timestamp or ago", ""},
		{"undo_to_time", `{"database_id":"d1","ago":"15 minutes"}`, "ago: must be a duration like 24h", ""},
		{"undo_to_time", `{"database_id":"d1","ago":"-15m"}`, "ago: must be a duration", ""},
		{"undo_to_time", `{"database_id":"d1","ago":"0s"}`, "ago: must be a duration", ""},
		{"undo_to_time", `{"database_id":"d1","timestamp":"yesterday"}`, "timestamp: must be an RFC 3339 time", ""},
		{"undo_to_time", `{"database_id":"d1","timestamp":"2025-01-02 15:04:05"}`, "timestamp: must be an RFC 3339 time", ""},
		{"create_dev_branch", `{"database_id":"d1","name":"feat","ttl":"forever"}`, "ttl: must be a duration like 24h", ""},
		{"create_dev_branch", `{"database_id":"d1","name":"feat","ttl":"0d"}`, "ttl: must be a duration", ""},
		{"create_dev_branch", `{"database_id":"d1","name":"main"}`, "name: must not be main", ""},
		{"create_dev_branch", `{"database_id":"d1","name":"feat","from":"last tuesday"}`, "from: must be main, a checkpoint name, or an RFC 3339 time", ""},
		{"create_dev_branch", `{}`, "database_id: required; name: required", ""},
		{"list_checkpoints", `{}`, "database_id: required", ""},
		{"restore_checkpoint", `{"database_id":"d1"}`, "checkpoint: required", ""},
		{"delete_dev_branch", `{"database_id":"d1","branch":null}`, "branch: required", ""},
		{"get_connection_string", `{"database_id":"d1","pooled":"no"}`, "pooled: must be a boolean", ""},
		{"list_databases", `{"database_id":"d1"}`, `unknown argument "database_id"`, "this tool takes no arguments"},
		{"describe_limits", `{"x":null}`, `unknown argument "x"`, ""},
		{"get_usage", `{"database_id":"` + long + `"}`, "database_id: at most 64 characters", ""},
		{"list_branches", `{"database_id":"` + strings.Repeat("x", maxArgsBytes) + `"}`, "arguments too large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.tool+tt.args[:min(len(tt.args), 60)], func(t *testing.T) {
			fg := &fakeGuard{}
			e := errorOf(t, callJSON(t, toolByName(t, Deps{Guard: fg}, tt.tool), tt.args))
			if e.Code != "INVALID_ARGUMENT" {
				t.Errorf("code = %s", e.Code)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("message %q lacks %q", e.Message, tt.msg)
			}
			if !strings.Contains(e.Hint, tt.hint) {
				t.Errorf("hint %q lacks %q", e.Hint, tt.hint)
			}
			if len(e.Message) > 300 {
				t.Errorf("message too long (%d): echoes input?", len(e.Message))
			}
			if n := fg.count(); n != 0 {
				t.Errorf("guard called %d times on invalid arguments", n)
			}
		})
	}
}

func TestGuardErrors(t *testing.T) {
	secret := errors.New("POST https://console.neon.tech: key napi_SECRET rejected")
	tests := []struct {
		name     string
		err      error
		code     string
		msg      string
		hint     string
		logLevel string
	}{
		{"policy denial", &errcode.Error{Code: "SNAPSHOT_LIMIT", Message: "free tier keeps 1 checkpoint", Hint: "call checkpoint with replace=true"},
			"SNAPSHOT_LIMIT", "free tier keeps 1 checkpoint", "call checkpoint with replace=true", ""},
		{"wrapped denial with cause", fmt.Errorf("checkpoint: %w", &errcode.Error{Code: "UPSTREAM", Message: "Neon failed after retries", Err: secret}),
			"UPSTREAM", "Neon failed after retries", "", "WARN"},
		{"deadline", fmt.Errorf("neon: %w", context.DeadlineExceeded), "UPSTREAM", "timed out", "list_branches", "WARN"},
		{"unknown", secret, "INTERNAL", "internal error; the operation may not have completed", "", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			fg := &fakeGuard{err: tt.err}
			d := Deps{Guard: fg, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			for _, st := range All(d) {
				res := callJSON(t, st, validArgs[st.Tool.Name])
				e := errorOf(t, res)
				if e.Code != tt.code || !strings.Contains(e.Message, tt.msg) || !strings.Contains(e.Hint, tt.hint) {
					t.Errorf("%s: got %+v", st.Tool.Name, e)
				}
				if txt := res.Content[0].(mcp.TextContent).Text; strings.Contains(txt, "napi_SECRET") {
					t.Errorf("%s: internal error text reached the agent: %s", st.Tool.Name, txt)
				}
			}
			if tt.logLevel != "" && !strings.Contains(logs.String(), "level="+tt.logLevel) {
				t.Errorf("want a %s log, got:\n%s", tt.logLevel, logs.String())
			}
			if tt.logLevel != "" && tt.err == secret && !strings.Contains(logs.String(), "napi_SECRET") {
				t.Errorf("the real error belongs in the log:\n%s", logs.String())
			}
		})
	}
}

func TestGuardBugs(t *testing.T) {
	// (nil, nil) from the guard and a panic below the handler both become INTERNAL results.
	for _, st := range All(Deps{Guard: &fakeGuard{nilResult: true}}) {
		if e := errorOf(t, callJSON(t, st, validArgs[st.Tool.Name])); e.Code != "INTERNAL" {
			t.Errorf("%s: nil result: %+v", st.Tool.Name, e)
		}
	}
	for _, st := range All(Deps{Guard: nil}) { // nil interface: the call panics
		if e := errorOf(t, callJSON(t, st, validArgs[st.Tool.Name])); e.Code != "INTERNAL" {
			t.Errorf("%s: panic: %+v", st.Tool.Name, e)
		}
	}
}

// TestSuccessMatchesOutputSchema validates each tool's structuredContent against its own
// outputSchema with a real JSON Schema validator, as a validating client would.
func TestSuccessMatchesOutputSchema(t *testing.T) {
	for _, nilSlices := range []bool{false, true} {
		fg := &fakeGuard{nilSlices: nilSlices}
		for _, st := range All(Deps{Guard: fg}) {
			name := fmt.Sprintf("%s/nilSlices=%v", st.Tool.Name, nilSlices)
			res := callJSON(t, st, validArgs[st.Tool.Name])
			if res.IsError {
				t.Fatalf("%s: unexpected error %+v", name, res.Content)
			}
			if res.StructuredContent == nil {
				t.Fatalf("%s: no structuredContent", name)
			}
			s := compileSchema(t, st.Tool.Name, st.Tool.RawOutputSchema)
			if err := validateJSON(t, s, res.StructuredContent); err != nil {
				t.Errorf("%s: structuredContent does not match outputSchema: %v", name, err)
			}
			// The text content is the same JSON, compact.
			if len(res.Content) != 1 {
				t.Fatalf("%s: want one text content", name)
			}
			text := res.Content[0].(mcp.TextContent).Text
			want, _ := json.Marshal(res.StructuredContent)
			var a, b any
			_ = json.Unmarshal([]byte(text), &a)
			_ = json.Unmarshal(want, &b)
			if !reflect.DeepEqual(a, b) || strings.Contains(text, "\n") {
				t.Errorf("%s: text %s is not the structured JSON %s", name, text, want)
			}
		}
	}
	// The schemas are strict enough to catch a wrong shape.
	s := compileSchema(t, "checkpoint", toolByName(t, Deps{}, "checkpoint").Tool.RawOutputSchema)
	if err := validateJSON(t, s, map[string]any{"database_id": "d1", "replaced": nil}); err == nil {
		t.Error("checkpoint outputSchema accepted a result missing required fields")
	}
}

func TestParseDuration(t *testing.T) {
	ok := map[string]time.Duration{
		"15m": 15 * time.Minute, "2h": 2 * time.Hour, "1h30m": 90 * time.Minute, "90s": 90 * time.Second,
		"1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5h": 90 * time.Minute,
	}
	for in, want := range ok {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "0d", "-1h", "-1d", "d", "1", "1x", "15 m", "1h2d", "1d-5h", "1.5d",
		"99999d", "9999999999h", "100000000000000000000000h", strings.Repeat("1", 40) + "h"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v; want an error", in, got)
		}
	}
}
