package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/neonguard/neonguard/internal/policy"
)

// env returns a getenv backed by a map, so tests never see the real
// environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var neonCreds = []string{
	"NEON_FREE_ORG_ID", "org-free", "NEON_FREE_ORG_API_KEY", "key-free-secret",
	"NEON_PAID_ORG_ID", "org-paid", "NEON_PAID_ORG_API_KEY", "key-paid-secret",
	"NEON_PERSONAL_API_KEY", "key-personal-secret",
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, yamlText string, getenv func(string) string) Config {
	t.Helper()
	path := ""
	if yamlText != "" {
		path = writeFile(t, yamlText)
	}
	c, err := Load(path, getenv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := load(t, "", env("HOME", "/home/u"))
	dataDir := "/home/u/.local/share/neonguard"
	if os.Geteuid() == 0 {
		dataDir = "/var/lib/neonguard"
	}
	want := Config{
		DataDir:     dataDir,
		Log:         Log{Level: "info", Format: "auto"},
		Tenant:      "local",
		Tier:        "free",
		Access:      "read-write",
		BackendMode: "auto",
		Neon:        Neon{APIHost: "https://console.neon.tech/api/v2", RequestsPerMinute: 700, RequestBurst: 40},
		Local: Local{Listen: "127.0.0.1:0", OperationDelay: 50 * time.Millisecond, Postgres: "auto", PGUser: "postgres",
			DiskBudget: 10 << 30, DiskMinFree: 1 << 30},
		Defaults:    Defaults{Region: "aws-us-east-2"}, // pg_version: the backend decides (app)
		CallTimeout: 60 * time.Second,
		HTTP: HTTP{Listen: "127.0.0.1:8080", MaxBodyBytes: 4 << 20, SessionIdleTTL: 15 * time.Minute,
			SSEKeepAlive: 25 * time.Second, ShutdownGrace: time.Minute, MaxConcurrentCalls: 64,
			TenantMaxConcurrentCalls: 16, TenantMaxRequests: 32, TenantMaxStreams: 32, TenantMaxSessions: 128,
			RequestRateFactor: 4, BodyReadTimeout: 10 * time.Second, StreamRecheck: 30 * time.Second},
		Auth:    Auth{JWT: JWT{TenantClaim: "tenant", ScopeClaim: "scope"}},
		Monitor: Monitor{Interval: 15 * time.Minute},
		Janitor: Janitor{Interval: 10 * time.Minute},
		Policy:  policy.Default(),
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Backend() != BackendLocal {
		t.Errorf("Backend() = %q, want local", c.Backend())
	}
	if got := c.SQLitePath(); got != dataDir+"/neonguard.db" {
		t.Errorf("SQLitePath() = %q", got)
	}
	if Default().Tier != "free" {
		t.Error("Default() differs from Load defaults")
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"XDG_DATA_HOME", "/xdg", "HOME", "/home/u"}, "/xdg/neonguard"},
		{[]string{"XDG_DATA_HOME", "relative/ignored", "HOME", "/home/u"}, "/home/u/.local/share/neonguard"},
		{[]string{"HOME", "/root"}, "/root/.local/share/neonguard"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := defaultDataDir(env(tt.env...), 1000); got != tt.want {
			t.Errorf("defaultDataDir(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
	if got := defaultDataDir(env("HOME", "/root"), 0); got != "/var/lib/neonguard" {
		t.Errorf("defaultDataDir as root = %q, want /var/lib/neonguard", got)
	}
	if os.Geteuid() == 0 {
		return // root always has a default data dir
	}
	c := load(t, "", env())
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "data_dir (NEONGUARD_DATA_DIR): is empty") {
		t.Errorf("Validate without HOME: %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	file := `
data_dir: /from/file
tenant: file-tenant
log:
  level: debug
neon:
  api_host: http://file:1/api/v2
local:
  operation_delay: 1s
  disk_budget: 20GiB
  disk_min_free: 2147483648
defaults:
  pg_version: 16
call_timeout: 2m
`
	c := load(t, file, env("HOME", "/h",
		"NEONGUARD_TENANT", "env-tenant",
		"NEON_API_HOST", "http://env:2/api/v2",
		"NEONGUARD_DEFAULTS_PG_VERSION", "15",
		"NEONGUARD_LOG_FORMAT", "json",
		"NEONGUARD_CALL_TIMEOUT", "", // empty counts as unset
		"NEONGUARD_LOCAL_DISK_MIN_FREE", "512MiB",
	))
	checks := []struct{ got, want any }{
		{c.DataDir, "/from/file"},                          // file over default
		{c.Tenant, "env-tenant"},                           // env over file
		{c.Log.Level, "debug"},                             // file
		{c.Log.Format, "json"},                             // env over default
		{c.Neon.APIHost, "http://env:2/api/v2"},            // Neon's own variable name
		{c.Local.OperationDelay, time.Second},              // file duration
		{c.Local.Listen, "127.0.0.1:0"},                    // untouched section field keeps its default
		{c.Local.DiskBudget, ByteSize(20 << 30)},           // file size with a unit
		{c.Local.DiskMinFree, ByteSize(512 << 20)},         // env size over the file's bytes
		{c.Defaults.PGVersion, 15},                         // env int over file
		{c.Defaults.Region, "aws-us-east-2"},               // default
		{c.CallTimeout, 2 * time.Minute},                   // file, empty env ignored
		{c.Policy.Tiers["free"].Checkpoints, 1},            // policy defaults survive
		{len(c.Policy.Tiers), len(policy.Default().Tiers)}, // no tier lost
	}
	for i, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("check %d: got %v, want %v", i, ch.got, ch.want)
		}
	}
	// Flags come last, through Set.
	if err := c.Set("tenant", "flag-tenant"); err != nil || c.Tenant != "flag-tenant" {
		t.Errorf("Set over env: %v %q", err, c.Tenant)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // "" with missing=true: a path that does not exist
		env  []string
		want []string
	}{
		{"unknown top-level key", "data_dir: /x\nlog_level: debug\n", nil,
			[]string{`line 2: unknown key "log_level"`, "known keys in the top level: data_dir, log, tenant"}},
		{"unknown nested key", "log:\n  levle: debug\n", nil,
			[]string{`line 2: unknown key "log.levle" (known keys in log: level, format)`}},
		{"unknown tier field", "policy:\n  tiers:\n    gold:\n      org: paid\n      checkpionts: 3\n", nil,
			[]string{`unknown key "policy.tiers.gold.checkpionts"`, "checkpoints"}},
		{"name is not a key", "policy:\n  plans:\n    free:\n      name: x\n", nil,
			[]string{`unknown key "policy.plans.free.name"`}},
		{"several unknown keys", "a: 1\nneon:\n  b: 2\n", nil, []string{`"a"`, `"neon.b"`}},
		{"bad yaml", "log: [\n", nil, []string{"config file"}},
		{"bad type", "defaults:\n  pg_version: seventeen\n", nil, []string{"seventeen"}},
		{"duration as integer", "call_timeout: 60\n", nil, []string{"time.Duration"}},
		{"bad env duration", "", []string{"NEONGUARD_CALL_TIMEOUT", "soon"},
			[]string{`NEONGUARD_CALL_TIMEOUT (call_timeout): "soon" is not a duration`}},
		{"bad env int", "", []string{"NEONGUARD_DEFAULTS_PG_VERSION", "x"},
			[]string{"NEONGUARD_DEFAULTS_PG_VERSION (defaults.pg_version)", "not an integer"}},
		{"bad size unit", "local:\n  disk_budget: 10 parsecs\n", nil, []string{`"10 parsecs" is not a size`}},
		{"negative size", "local:\n  disk_budget: -1GiB\n", nil, []string{`"-1GiB" is not a size`}},
		{"bad env size", "", []string{"NEONGUARD_LOCAL_DISK_BUDGET", "lots"},
			[]string{`NEONGUARD_LOCAL_DISK_BUDGET (local.disk_budget): "lots" is not a size`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Load(path, env(tt.env...))
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), env())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadEmptyAndNilGetenv(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n"} {
		p := writeFile(t, content)
		c, err := Load(p, env("HOME", "/h"))
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if c.Tier != "free" || len(c.Policy.Tiers) != 2 {
			t.Errorf("%q changed defaults: %+v", content, c)
		}
	}
	t.Setenv("NEONGUARD_TENANT", "from-process-env")
	c, err := Load("", nil)
	if err != nil || c.Tenant != "from-process-env" {
		t.Errorf("Load with nil getenv: %v %q", err, c.Tenant)
	}
}

func TestPolicyMerge(t *testing.T) {
	file := `
tier: team
policy:
  plans:
    paid:
      branches_per_project: 5000
      snapshots_per_project: 10
      min_compute_cu: 0.25
      max_compute_cu: 16
      max_restore_window: 720h
      min_suspend_timeout: 1m
  tiers:
    team:
      org: paid
      quota: {active_time_seconds: 5000000, logical_size_bytes: 21474836480}
      min_compute_cu: 0.5
      max_compute_cu: 4
      suspend_timeout: 10m
      branches: 2000
      checkpoints: 10
      restore_window: 336h
      dev_branch_ttl: 24h
      max_dev_branch_ttl: 720h
      undo_backup_ttl: 48h
      max_databases: 50
`
	c := load(t, file, env("HOME", "/h"))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	team, err := c.Policy.Tier("team")
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Tier{Name: "team", Org: "paid",
		Quota:        policy.Quota{ActiveTimeSeconds: 5000000, LogicalSizeBytes: 20 << 30},
		MinComputeCU: 0.5, MaxComputeCU: 4, SuspendTimeout: 10 * time.Minute, Branches: 2000, Checkpoints: 10,
		RestoreWindow: 336 * time.Hour, DevBranchTTL: 24 * time.Hour, MaxDevBranchTTL: 720 * time.Hour,
		UndoBackupTTL: 48 * time.Hour, MaxDatabases: 50}
	if team != want {
		t.Errorf("team = %+v\nwant  %+v", team, want)
	}
	// Added tier, replaced plan, untouched defaults kept.
	if len(c.Policy.Tiers) != 3 || c.Policy.Tiers["free"] != policy.Default().Tiers["free"] {
		t.Errorf("tiers = %v", c.Policy.Tiers)
	}
	if p := c.Policy.Plans["paid"]; p.BranchesPerProject != 5000 || p.Name != "paid" {
		t.Errorf("paid plan = %+v", p)
	}
	if c.Policy.Plans["free"] != policy.Default().Plans["free"] {
		t.Errorf("free plan changed: %+v", c.Policy.Plans["free"])
	}
}

func TestPolicyTierExceedingPlanRefused(t *testing.T) {
	// A tier given in YAML replaces the default one as a whole.
	file := `
policy:
  tiers:
    free:
      org: free
      quota: {active_time_seconds: 360000}
      min_compute_cu: 0.25
      max_compute_cu: 2
      suspend_timeout: 5m
      branches: 10
      checkpoints: 2
      restore_window: 24h
      dev_branch_ttl: 24h
      max_dev_branch_ttl: 168h
      undo_backup_ttl: 24h
`
	c := load(t, file, env("HOME", "/h"))
	err := c.Validate()
	want := "policy.tiers.free.checkpoints: 2 exceeds the free org plan's snapshots_per_project (1)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate = %v, want it to contain %q", err, want)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
		t.Errorf("want exactly one problem, got %d:\n%v", n, err)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		key, value string
		get        func(Config) any
		want       any
		err        string
	}{
		{"data_dir", "/srv/ng", func(c Config) any { return c.DataDir }, "/srv/ng", ""},
		{"neon.api_host", "http://127.0.0.1:9/api/v2", func(c Config) any { return c.Neon.APIHost }, "http://127.0.0.1:9/api/v2", ""},
		{"local.operation_delay", "0s", func(c Config) any { return c.Local.OperationDelay }, time.Duration(0), ""},
		{"neon.requests_per_minute", "350", func(c Config) any { return c.Neon.RequestsPerMinute }, 350, ""},
		{"neon.request_burst", "20", func(c Config) any { return c.Neon.RequestBurst }, 20, ""},
		{"defaults.pg_version", "16", func(c Config) any { return c.Defaults.PGVersion }, 16, ""},
		{"call_timeout", "90s", func(c Config) any { return c.CallTimeout }, 90 * time.Second, ""},
		{"call_timeout", "ninety", nil, nil, `call_timeout: "ninety" is not a duration`},
		{"local.disk_budget", "1.5GiB", func(c Config) any { return c.Local.DiskBudget }, ByteSize(3 << 29), ""},
		{"local.disk_budget", "0", func(c Config) any { return c.Local.DiskBudget }, ByteSize(0), ""},
		{"local.disk_min_free", "1 GB", func(c Config) any { return c.Local.DiskMinFree }, ByteSize(1e9), ""},
		{"local.disk_min_free", "1GiBs", nil, nil, `local.disk_min_free: "1GiBs" is not a size`},
		{"defaults.pg_version", "1.5", nil, nil, "defaults.pg_version: \"1.5\" is not an integer"},
		{"nope", "x", nil, nil, `unknown setting "nope"`},
		{"neon", "x", nil, nil, `unknown setting "neon"`},     // a section, not a setting
		{"policy", "x", nil, nil, `unknown setting "policy"`}, // YAML only
		{"policy.tiers", "x", nil, nil, `unknown setting "policy.tiers"`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			c := Default()
			err := c.Set(tt.key, tt.value)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	c := Default()
	if err := c.Set("x", "y"); !errors.Is(err, ErrUnknownSetting) {
		t.Errorf("err = %v, want ErrUnknownSetting", err)
	}
}

func TestSetValueKinds(t *testing.T) {
	var s struct {
		F  float64
		B  bool
		U  uint
		I8 int8
	}
	v := reflect.ValueOf(&s).Elem()
	if err := setValue(v.Field(0), "0.5"); err != nil || s.F != 0.5 {
		t.Errorf("float: %v %v", err, s.F)
	}
	if err := setValue(v.Field(0), "x"); err == nil {
		t.Error("float: want error")
	}
	if err := setValue(v.Field(1), "true"); err != nil || !s.B {
		t.Errorf("bool: %v %v", err, s.B)
	}
	if err := setValue(v.Field(1), "maybe"); err == nil {
		t.Error("bool: want error")
	}
	if err := setValue(v.Field(2), "1"); err == nil {
		t.Error("uint: want unsupported")
	}
	if err := setValue(v.Field(3), "300"); err == nil {
		t.Error("int8 overflow: want error")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "10GiB": 10 << 30, "10gib": 10 << 30, "1.5GiB": 3 << 29,
		"2Gi": 2 << 30, "4 KiB": 4 << 10, "1TiB": 1 << 40, "20GB": 20e9, "1kB": 1000, "3MB": 3e6, "7B": 7, " 8 ": 8,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "-1GiB", "1.2.3MiB", "10 parsecs", "1e3", "99999999999TiB", "9223372036854775808"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	// String picks the largest exact binary unit, and reads back.
	for b, want := range map[ByteSize]string{0: "0", 1000: "1000", 1 << 10: "1KiB", 3 << 29: "1536MiB", 10 << 30: "10GiB", 2 << 40: "2TiB"} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
		if back, err := ParseByteSize(b.String()); err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", b.String(), back, err, int64(b))
		}
	}
	// A printed config shows sizes with their unit.
	out, err := yaml.Marshal(Local{DiskBudget: 10 << 30})
	if err != nil || !strings.Contains(string(out), "disk_budget: 10GiB") {
		t.Errorf("yaml: %v\n%s", err, out)
	}
}

func valid(t *testing.T) Config {
	t.Helper()
	return load(t, "", env("HOME", "/h"))
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // nil: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"log level", func(c *Config) { c.Log.Level = "loud" },
			[]string{`log.level (NEONGUARD_LOG_LEVEL): "loud" is not one of debug, info, warn, error`}},
		{"log format", func(c *Config) { c.Log.Format = "xml" },
			[]string{`log.format (NEONGUARD_LOG_FORMAT): "xml" is not one of auto, text, json`}},
		{"tenant empty", func(c *Config) { c.Tenant = "" }, []string{"tenant (NEONGUARD_TENANT)"}},
		{"tenant spaces", func(c *Config) { c.Tenant = "a b" }, []string{`tenant (NEONGUARD_TENANT): "a b"`}},
		{"unknown tier", func(c *Config) { c.Tier = "gold" },
			[]string{`tier (NEONGUARD_TIER): unknown tier "gold" (known: free, pro)`}},
		{"backend", func(c *Config) { c.BackendMode = "cloud" },
			[]string{`backend (NEONGUARD_BACKEND): "cloud" is not one of auto, local, neon`}},
		{"backend neon without credentials", func(c *Config) { c.BackendMode = "neon" },
			[]string{"backend (NEONGUARD_BACKEND): neon needs Neon credentials; missing: " +
				"neon.free_org_id (NEON_FREE_ORG_ID), neon.free_org_api_key (NEON_FREE_ORG_API_KEY), " +
				"neon.paid_org_id (NEON_PAID_ORG_ID), neon.paid_org_api_key (NEON_PAID_ORG_API_KEY)"}},
		{"backend neon missing one (the personal key is optional)", func(c *Config) {
			c.BackendMode = "neon"
			c.Neon = Neon{APIHost: c.Neon.APIHost, FreeOrgID: "a", FreeOrgAPIKey: "b", PaidOrgID: "c"}
		}, []string{"missing: neon.paid_org_api_key (NEON_PAID_ORG_API_KEY)"}},
		{"backend neon complete", func(c *Config) {
			c.BackendMode = "neon"
			c.Neon = Neon{APIHost: c.Neon.APIHost, FreeOrgID: "a", FreeOrgAPIKey: "b", PaidOrgID: "c", PaidOrgAPIKey: "d", PersonalAPIKey: "e",
				RequestsPerMinute: c.Neon.RequestsPerMinute, RequestBurst: c.Neon.RequestBurst}
		}, nil},
		{"neon request burst", func(c *Config) { c.Neon.RequestBurst = 0 }, []string{
			"neon.request_burst (NEON_REQUEST_BURST): 0 must be at least 1"}},
		{"neon request rate", func(c *Config) { c.Neon.RequestsPerMinute, c.Neon.RequestBurst = 40, 40 }, []string{
			"neon.requests_per_minute (NEON_REQUESTS_PER_MINUTE): 40 must be more than neon.request_burst (40)"}},
		{"neon request limits per replica", func(c *Config) { c.Neon.RequestsPerMinute, c.Neon.RequestBurst = 350, 20 }, nil},
		{"auto with partial credentials", func(c *Config) { c.Neon.PersonalAPIKey = "k" },
			[]string{"backend (NEONGUARD_BACKEND): auto chose neon because neon.personal_api_key (NEON_PERSONAL_API_KEY) is set",
				"missing: neon.free_org_id (NEON_FREE_ORG_ID)", "set backend to local"}},
		{"local ignores partial credentials", func(c *Config) { c.BackendMode = "local"; c.Neon.PersonalAPIKey = "k" }, nil},
		{"api host", func(c *Config) { c.Neon.APIHost = "console.neon.tech" },
			[]string{`neon.api_host (NEON_API_HOST): "console.neon.tech" is not an http(s) URL`}},
		{"api host bad url", func(c *Config) { c.Neon.APIHost = "http://[::1" }, []string{"neon.api_host (NEON_API_HOST)"}},
		{"listen", func(c *Config) { c.Local.Listen = "8080" },
			[]string{`local.listen (NEONGUARD_LOCAL_LISTEN): "8080" is not host:port`}},
		{"operation delay negative", func(c *Config) { c.Local.OperationDelay = -time.Second },
			[]string{"local.operation_delay (NEONGUARD_LOCAL_OPERATION_DELAY): -1s must not be negative"}},
		{"operation delay zero", func(c *Config) { c.Local.OperationDelay = 0 }, nil},
		{"disk budget negative", func(c *Config) { c.Local.DiskBudget, c.Local.DiskMinFree = -1, -2 }, []string{
			"local.disk_budget (NEONGUARD_LOCAL_DISK_BUDGET): -1 must not be negative",
			"local.disk_min_free (NEONGUARD_LOCAL_DISK_MIN_FREE): -2 must not be negative",
		}},
		{"disk budget without a unit", func(c *Config) { c.Local.DiskBudget = 10 },
			[]string{"local.disk_budget (NEONGUARD_LOCAL_DISK_BUDGET): 10 is below 256MiB", "give a unit (e.g. 20GiB)"}},
		{"disk budget just below the minimum", func(c *Config) { c.Local.DiskBudget = 256<<20 - 1 }, []string{"local.disk_budget"}},
		{"disk budget at the minimum", func(c *Config) { c.Local.DiskBudget = 256 << 20 }, nil},
		{"disk budget and margin off", func(c *Config) { c.Local.DiskBudget, c.Local.DiskMinFree = 0, 0 }, nil},
		{"sqlite store", func(c *Config) { c.Store = "sqlite:/tmp/x.db" }, nil},
		{"sqlite without path", func(c *Config) { c.Store = "sqlite:" }, []string{"store (NEONGUARD_STORE): sqlite: needs a path"}},
		{"postgres store", func(c *Config) { c.Store = "postgres://u:pw@db/ng" }, nil},
		{"postgres store without host", func(c *Config) { c.Store = "postgres:///ng?password=hunter2" },
			[]string{"store (NEONGUARD_STORE): is not a PostgreSQL URL with a host"}},
		{"http", func(c *Config) {
			c.HTTP.Listen, c.HTTP.PublicURL, c.HTTP.MaxBodyBytes = "8080", "mcp.example.com", 10
			c.HTTP.SessionIdleTTL, c.HTTP.MaxConcurrentCalls = 0, 0
		}, []string{
			`http.listen (NEONGUARD_HTTP_LISTEN): "8080" is not host:port`,
			`http.public_url (NEONGUARD_HTTP_PUBLIC_URL): "mcp.example.com" is not an http(s) URL`,
			"http.max_body_bytes (NEONGUARD_HTTP_MAX_BODY_BYTES): 10 is too small",
			"http.session_idle_ttl (NEONGUARD_HTTP_SESSION_IDLE_TTL): 0s must be positive",
			"http.max_concurrent_calls (NEONGUARD_HTTP_MAX_CONCURRENT_CALLS): 0 must be at least 1",
		}},
		{"http tenant limits", func(c *Config) {
			c.HTTP.TenantMaxConcurrentCalls, c.HTTP.TenantMaxRequests, c.HTTP.TenantMaxStreams, c.HTTP.TenantMaxSessions = 0, 0, -1, 0
			c.HTTP.RequestRateFactor, c.HTTP.BodyReadTimeout, c.HTTP.StreamRecheck = -1, 0, 0
		}, []string{
			"http.tenant_max_concurrent_calls (NEONGUARD_HTTP_TENANT_MAX_CONCURRENT_CALLS): 0 must be at least 1",
			"http.tenant_max_requests (NEONGUARD_HTTP_TENANT_MAX_REQUESTS): 0 must be at least 1",
			"http.tenant_max_streams (NEONGUARD_HTTP_TENANT_MAX_STREAMS): -1 must be at least 1",
			"http.tenant_max_sessions (NEONGUARD_HTTP_TENANT_MAX_SESSIONS): 0 must be at least 1",
			"http.request_rate_factor (NEONGUARD_HTTP_REQUEST_RATE_FACTOR): -1 must not be negative",
			"http.body_read_timeout (NEONGUARD_HTTP_BODY_READ_TIMEOUT): 0s must be positive",
			"http.stream_recheck (NEONGUARD_HTTP_STREAM_RECHECK): 0s must be positive",
		}},
		{"http request budget off", func(c *Config) { c.HTTP.RequestRateFactor = 0 }, nil},
		{"jwt both", func(c *Config) {
			c.Auth.JWT.HS256Secret, c.Auth.JWT.JWKSURL = strings.Repeat("k", 32), "https://idp/jwks"
		},
			[]string{"auth.jwt.hs256_secret (NEONGUARD_AUTH_JWT_HS256_SECRET): set either it or auth.jwt.jwks_url"}},
		{"jwt short secret", func(c *Config) { c.Auth.JWT.HS256Secret = "short" },
			[]string{"auth.jwt.hs256_secret (NEONGUARD_AUTH_JWT_HS256_SECRET): is 5 bytes"}},
		{"jwt bad jwks url", func(c *Config) { c.Auth.JWT.JWKSURL, c.Auth.JWT.TenantClaim = "idp/jwks", "" }, []string{
			`auth.jwt.jwks_url (NEONGUARD_AUTH_JWT_JWKS_URL): "idp/jwks" is not an http(s) URL`,
			"auth.jwt.audience (NEONGUARD_AUTH_JWT_AUDIENCE): is required with auth.jwt.jwks_url",
			"auth.jwt.tenant_claim (NEONGUARD_AUTH_JWT_TENANT_CLAIM): must name a claim",
		}},
		{"jwt jwks with audience", func(c *Config) { c.Auth.JWT.JWKSURL, c.Auth.JWT.Audience = "https://idp/jwks", "neonguard" }, nil},
		{"unknown store", func(c *Config) { c.Store = "mysql://u:hunter2@db/x" },
			[]string{`store (NEONGUARD_STORE): "mysql://u:xxxxx@db/x" is not empty, sqlite:PATH or postgres://…`}},
		{"region", func(c *Config) { c.Defaults.Region = "" }, []string{"defaults.region (NEONGUARD_DEFAULTS_REGION)"}},
		{"pg version", func(c *Config) { c.Defaults.PGVersion = 13 },
			[]string{"defaults.pg_version (NEONGUARD_DEFAULTS_PG_VERSION): 13 is not a Postgres version Neon offers (14 to 18)"}},
		{"pg version unset: the backend decides", func(c *Config) { c.Defaults.PGVersion = 0 }, nil},
		{"call timeout", func(c *Config) { c.CallTimeout = 0 },
			[]string{"call_timeout (NEONGUARD_CALL_TIMEOUT): 0s must be positive"}},
		{"policy problems prefixed", func(c *Config) {
			c.Policy.Tiers["free"] = policy.Tier{Org: "nope"}
		}, []string{`policy.tiers.free.org: unknown org plan "nope"`, "policy.tiers.free.branches: 0"}},
		{"policy without tiers", func(c *Config) { c.Policy = policy.Config{} },
			[]string{"policy.plans: no org plans defined", "policy.tiers: no tiers defined", `unknown tier "free" (known: )`}},
		{"all problems at once", func(c *Config) { c.Log.Level = "x"; c.CallTimeout = -1; c.Defaults.PGVersion = 99 },
			[]string{"log.level", "call_timeout", "defaults.pg_version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{"pw@", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestBackend(t *testing.T) {
	tests := []struct {
		name string
		mode string
		env  []string
		want string
	}{
		{"auto, nothing set", "auto", nil, BackendLocal},
		{"auto, all credentials", "auto", neonCreds, BackendNeon},
		{"auto, one credential", "auto", []string{"NEON_FREE_ORG_ID", "org"}, BackendNeon},
		{"auto, only api host", "auto", []string{"NEON_API_HOST", "http://x/api/v2"}, BackendLocal},
		{"local with credentials", "local", neonCreds, BackendLocal},
		{"neon without credentials", "neon", nil, BackendNeon},
		{"invalid", "cloud", nil, BackendLocal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := load(t, "", env(append([]string{"HOME", "/h", "NEONGUARD_BACKEND", tt.mode}, tt.env...)...))
			if got := c.Backend(); got != tt.want {
				t.Errorf("Backend() = %q, want %q", got, tt.want)
			}
		})
	}
	c := load(t, "", env(append([]string{"HOME", "/h"}, neonCreds...)...))
	if err := c.Validate(); err != nil {
		t.Errorf("auto with all credentials: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	c := load(t, "", env(append([]string{"HOME", "/h",
		"NEONGUARD_LOCAL_PERSONAL_API_KEY", "lp-secret", "NEONGUARD_LOCAL_FREE_ORG_API_KEY", "lf-secret",
		"NEONGUARD_LOCAL_PAID_ORG_API_KEY", "lpd-secret", "NEONGUARD_STORE", "postgres://ng:pg-secret@db:5432/ng",
		"NEONGUARD_AUTH_JWT_HS256_SECRET", "jwt-secret-0123456789abcdef0123456789",
		"NEONGUARD_MONITOR_WEBHOOK_SECRET", "hook-secret",
	}, neonCreds...)...))
	r := c.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, s := range []string{"key-free-secret", "key-paid-secret", "key-personal-secret", "lp-secret", "lf-secret", "lpd-secret", "pg-secret", "jwt-secret", "hook-secret"} {
		if strings.Contains(text, s) {
			t.Errorf("redacted output contains %q:\n%s", s, text)
		}
	}
	for _, s := range []string{"free_org_api_key: '[redacted]'", "org-free", "org-paid", "call_timeout: 1m0s", "postgres://ng:xxxxx@db:5432/ng"} {
		if !strings.Contains(text, s) {
			t.Errorf("redacted output lacks %q:\n%s", s, text)
		}
	}
	// Every secret setting is redacted, and the original is untouched.
	for _, f := range walk(&r) {
		if f.secret && f.val.String() != Redaction {
			t.Errorf("%s not redacted: %q", f.key, f.val.String())
		}
	}
	if c.Neon.PersonalAPIKey != "key-personal-secret" {
		t.Error("Redacted modified the original")
	}
	r.Policy.Tiers["free"] = policy.Tier{}
	if c.Policy.Tiers["free"].Branches == 0 {
		t.Error("Redacted shares policy maps with the original")
	}
	// Unset secrets stay empty, so the printout shows they are unset.
	if Default().Redacted().Neon.FreeOrgAPIKey != "" {
		t.Error("empty secret shown as redacted")
	}
	for in, want := range map[string]string{
		"":                       "",
		"sqlite:/x.db":           "sqlite:/x.db",
		"postgres://u@h/db":      "postgres://u@h/db",
		"postgres://u:p@h/db":    "postgres://u:xxxxx@h/db",
		"postgres://u:p@[::1/db": "postgres://u:p@[::1/db", // unparseable: returned as is
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSettings checks, independently of walk, that every leaf field of
// Config is a documented setting with a YAML key and an env variable, and
// that the documented defaults are the real ones.
func TestSettings(t *testing.T) {
	settings := Settings()
	byKey := map[string]Setting{}
	envs := map[string]bool{}
	for _, s := range settings {
		if _, dup := byKey[s.Key]; dup {
			t.Errorf("duplicate key %s", s.Key)
		}
		if envs[s.Env] {
			t.Errorf("duplicate env %s", s.Env)
		}
		byKey[s.Key], envs[s.Env] = s, true
		if s.Usage == "" {
			t.Errorf("%s has no usage", s.Key)
		}
		// One naming rule: NEONGUARD_ + the key, except Neon's own variables.
		want := "NEONGUARD_" + strings.ToUpper(strings.ReplaceAll(s.Key, ".", "_"))
		if strings.HasPrefix(s.Key, "neon.") {
			want = "NEON_" + strings.ToUpper(strings.TrimPrefix(s.Key, "neon."))
		}
		if s.Env != want {
			t.Errorf("%s: env %s, want %s", s.Key, s.Env, want)
		}
	}

	var leaves []string
	var rec func(t reflect.Type, prefix string)
	rec = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			sf := typ.Field(i)
			if !sf.IsExported() {
				continue // bookkeeping (Config.sources), not a setting
			}
			name := yamlName(sf)
			if name == "" || name == "-" {
				t.Errorf("field %s has no yaml key", sf.Name)
				continue
			}
			if sf.Tag.Get("env") == "-" {
				continue
			}
			if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
				rec(sf.Type, prefix+name+".")
				continue
			}
			leaves = append(leaves, prefix+name)
		}
	}
	rec(reflect.TypeFor[Config](), "")
	if len(leaves) != len(settings) {
		t.Errorf("%d leaf fields, %d settings", len(leaves), len(settings))
	}
	for _, k := range leaves {
		if _, ok := byKey[k]; !ok {
			t.Errorf("field %s is not a setting", k)
		}
	}
	for _, k := range []string{"data_dir", "log.level", "log.format", "tenant", "tier", "backend", "neon.api_host",
		"neon.free_org_id", "neon.free_org_api_key", "neon.paid_org_id", "neon.paid_org_api_key", "neon.personal_api_key",
		"local.personal_api_key", "local.free_org_api_key", "local.paid_org_api_key", "local.listen",
		"local.operation_delay", "local.disk_budget", "local.disk_min_free", "store", "defaults.region", "defaults.pg_version", "call_timeout"} {
		if _, ok := byKey[k]; !ok {
			t.Errorf("missing setting %s", k)
		}
	}

	// Documented defaults round-trip through Set to the values of Default().
	def := valid(t)
	for _, s := range settings {
		if s.Key == "data_dir" {
			if !strings.Contains(s.Default, "XDG_DATA_HOME") {
				t.Errorf("data_dir default doc = %q", s.Default)
			}
			continue
		}
		var c Config
		c.Policy = def.Policy
		c.DataDir = def.DataDir
		if s.Default != "" {
			if err := c.Set(s.Key, s.Default); err != nil {
				t.Errorf("%s: default %q: %v", s.Key, s.Default, err)
			}
		}
		got, want := settingValue(t, c, s.Key), settingValue(t, def, s.Key)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: documented default %q gives %v, Default() has %v", s.Key, s.Default, got, want)
		}
		if s.Secret && s.Default != "" {
			t.Errorf("secret %s has a default", s.Key)
		}
	}
	if !byKey["neon.personal_api_key"].Secret || byKey["neon.free_org_id"].Secret {
		t.Error("secret flags wrong")
	}
}

func settingValue(t *testing.T, c Config, key string) any {
	t.Helper()
	for _, f := range walk(&c) {
		if f.key == key {
			return f.val.Interface()
		}
	}
	t.Fatalf("no setting %s", key)
	return nil
}

func TestSlogLevel(t *testing.T) {
	for in, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "bogus": "INFO"} {
		if got := (Log{Level: in}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	for store, want := range map[string]string{"": "/d/neonguard.db", "sqlite:/x/y.db": "/x/y.db", "postgres://h/db": ""} {
		if got := (Config{DataDir: "/d", Store: store}).SQLitePath(); got != want {
			t.Errorf("SQLitePath(%q) = %q, want %q", store, got, want)
		}
	}
}

func TestPolicyPartialTierKeepsTheRest(t *testing.T) {
	c := load(t, "policy:\n  tiers:\n    free:\n      max_databases: 3\n      quota: {active_time_seconds: 1000}\n", env("HOME", "/h"))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	got, err := c.Policy.Tier("free")
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Default().Tiers["free"]
	want.MaxDatabases = 3
	want.Quota.ActiveTimeSeconds = 1000
	if got != want {
		t.Fatalf("free tier = %+v\nwant %+v", got, want)
	}
}

// access and tools: a key, a variable and a flag (Set) each, a list in YAML, comma-separated
// elsewhere, "all" or nothing for every group; unknown values fail validation naming the
// valid ones.
func TestAccessAndToolGroups(t *testing.T) {
	home := env("HOME", "/home/u")
	c := load(t, "", home)
	if c.ReadOnly() || c.Tools != nil {
		t.Fatalf("defaults: access %q, tools %v", c.Access, c.Tools)
	}

	c = load(t, "access: read-only\ntools: [databases, sql]\n", home)
	if !c.ReadOnly() || !reflect.DeepEqual(c.Tools, ToolGroups{"databases", "sql"}) {
		t.Fatalf("from YAML: access %q, tools %v", c.Access, c.Tools)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid access and tools: %v", err)
	}
	if c = load(t, "tools: usage, versioning\n", home); !reflect.DeepEqual(c.Tools, ToolGroups{"usage", "versioning"}) {
		t.Fatalf("a comma-separated string in YAML: %v", c.Tools)
	}
	if c = load(t, "tools: [all]\n", home); c.Tools != nil {
		t.Fatalf("all: %v", c.Tools)
	}
	c = load(t, "tools: [sql]\n", env("HOME", "/home/u", "NEONGUARD_TOOLS", " branches , usage,", "NEONGUARD_ACCESS", "read-only"))
	if !c.ReadOnly() || !reflect.DeepEqual(c.Tools, ToolGroups{"branches", "usage"}) {
		t.Fatalf("the environment over YAML: access %q, tools %v", c.Access, c.Tools)
	}
	if err := c.Set("tools", "versioning"); err != nil || !reflect.DeepEqual(c.Tools, ToolGroups{"versioning"}) {
		t.Fatalf("Set tools: %v, %v", err, c.Tools)
	}
	if err := c.Set("access", "read-write"); err != nil || c.ReadOnly() {
		t.Fatalf("Set access: %v, %q", err, c.Access)
	}
	if _, err := Load(writeFile(t, "tools: {sql: true}\n"), home); err == nil {
		t.Fatal("a mapping as tools was accepted")
	}

	bad := valid(t)
	bad.Access = "readonly"
	bad.Tools = ToolGroups{"sql", "schemas", "admin"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("unknown access and tool groups validated")
	}
	for _, want := range []string{
		`access (NEONGUARD_ACCESS): "readonly" is not one of read-write, read-only`,
		`tools (NEONGUARD_TOOLS): unknown tool group "schemas" (the groups: databases, versioning, branches, sql, usage)`,
		`tools (NEONGUARD_TOOLS): unknown tool group "admin"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"sql"`) {
		t.Errorf("a known group was reported: %v", err)
	}
	if b, err := (ToolGroups{"sql", "usage"}).MarshalText(); err != nil || string(b) != "sql,usage" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
}

// TestNeonRate: the client's bucket holds the burst and refills with the rest of the minute's
// budget, so no minute passes requests_per_minute.
func TestNeonRate(t *testing.T) {
	for _, n := range []Neon{{RequestsPerMinute: 700, RequestBurst: 40}, {RequestsPerMinute: 350, RequestBurst: 20}} {
		rps, burst := n.NeonRate()
		if burst != n.RequestBurst || float64(burst)+60*rps != float64(n.RequestsPerMinute) {
			t.Errorf("%+v: %v/s, burst %d: a minute may see %v", n, rps, burst, float64(burst)+60*rps)
		}
	}
	if rps, burst := Default().Neon.NeonRate(); rps != 11 || burst != 40 {
		t.Errorf("default = %v/s, burst %d; want 11/s and 40 (Neon: 700/min, bursts of 40)", rps, burst)
	}
}

// TestErrorsNameTheSourceOfTheValue: a bad value is reported with where it came from — the
// flag, the environment variable, or the config file and line — not always the variable.
func TestErrorsNameTheSourceOfTheValue(t *testing.T) {
	check := func(name string, c Config, want string) {
		t.Helper()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, want)
		}
	}
	home := env("HOME", "/home/u")
	if err := load(t, "", home).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := load(t, "", env("HOME", "/home/u", "NEONGUARD_LOG_LEVEL", "loud"))
	check("environment", c, `log.level (environment NEONGUARD_LOG_LEVEL): "loud" is not one of`)

	c = load(t, "tenant: local\nlog:\n  level: loud\n", home)
	check("file", c, `log.level (config file `)
	check("file line", c, `, line 3): "loud" is not one of`)

	// The environment overrides the file, and then it is the environment that is named.
	c = load(t, "log:\n  level: info\n", env("HOME", "/home/u", "NEONGUARD_LOG_LEVEL", "loud"))
	check("env over file", c, `log.level (environment NEONGUARD_LOG_LEVEL)`)

	c = load(t, "log:\n  level: info\n", home)
	if err := c.SetFrom("log.level", "loud", "flag --log-level"); err != nil {
		t.Fatal(err)
	}
	check("flag", c, `log.level (flag --log-level): "loud" is not one of`)
	if err := c.SetFrom("call_timeout", "soon", "flag --call-timeout"); err == nil ||
		!strings.Contains(err.Error(), "call_timeout (flag --call-timeout): ") {
		t.Errorf("SetFrom parse error = %v, want it to name the flag", err)
	}

	// A value left at its default names the variable that would change it, as before.
	c = load(t, "", home)
	c.Tenant = ""
	check("unset", c, "tenant (NEONGUARD_TENANT)")

	// Sources are copied on write: a copy's flag does not show in the original.
	orig := load(t, "", env("HOME", "/home/u", "NEONGUARD_TENANT", "a"))
	cp := orig
	_ = cp.SetFrom("tenant", "b", "flag --tenant")
	if orig.Source("tenant") != "environment NEONGUARD_TENANT" || cp.Source("tenant") != "flag --tenant" {
		t.Errorf("sources: original %q, copy %q", orig.Source("tenant"), cp.Source("tenant"))
	}
}
