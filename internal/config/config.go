// Package config holds every neonguard setting in one struct.
//
// Each setting is one YAML key, one environment variable and, where the
// command adds it, one flag. The mapping lives in struct tags only:
//
//	yaml:"data_dir"            the key (nested sections join with ".": "neon.api_host")
//	env:"NEONGUARD_DATA_DIR"   the environment variable ("-" on a section that is YAML only)
//	default:"60s"              the default, parsed like any other value
//	doc_default:"..."          the default as documented, when it is computed (data_dir)
//	usage:"..."                one line of help
//	secret:"true"              replaced by Redacted
//
// A small reflection walker turns the tags into Settings, Set, Load and
// Default, so adding a setting is adding a field.
//
// Precedence, lowest first: defaults, the YAML file, the environment, then
// flags (the caller applies them with Set). Load does not validate, because
// flags come after it; call Validate once everything is applied.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/neonguard/neonguard/internal/policy"
)

// Backends, as resolved by Config.Backend.
const (
	BackendAuto  = "auto"
	BackendLocal = "local"
	BackendNeon  = "neon"
)

// minDiskBudget is the smallest local.disk_budget Validate accepts (besides 0).
const minDiskBudget = ByteSize(256 << 20)

// NeonDefaultPGVersion is the major Neon gives a project that names none: the default of
// defaults.pg_version on the neon backend.
const NeonDefaultPGVersion = 17

// Redaction replaces secrets in Config.Redacted.
const Redaction = "[redacted]"

// Access modes (access).
const (
	AccessReadWrite = "read-write"
	AccessReadOnly  = "read-only"
)

// KnownToolGroups are the tool groups the tools setting may name: tools.Groups, which this
// package cannot import (a test in cmd/neonguard keeps the two equal).
var KnownToolGroups = []string{"databases", "versioning", "branches", "sql", "usage"}

// ErrUnknownSetting is wrapped by Set for a key that names no setting.
var ErrUnknownSetting = errors.New("unknown setting")

// Config is every neonguard setting. The zero value is not useful: start
// from Default or Load.
type Config struct {
	DataDir string `yaml:"data_dir" env:"NEONGUARD_DATA_DIR" doc_default:"/var/lib/neonguard as root, else $XDG_DATA_HOME/neonguard or ~/.local/share/neonguard" usage:"directory for the state database and the local backend's Postgres data"`
	Log     Log    `yaml:"log"`
	Tenant  string `yaml:"tenant" env:"NEONGUARD_TENANT" default:"local" usage:"tenant id of the stdio client"`
	Tier    string `yaml:"tier" env:"NEONGUARD_TIER" default:"free" usage:"tier of the stdio tenant (a key of policy.tiers)"`
	// Access and Tools shape what the server offers, on either transport.
	Access string     `yaml:"access" env:"NEONGUARD_ACCESS" default:"read-write" usage:"read-write, or read-only: every caller (the stdio tenant, every token, admin included) may only read, as with a token of the read scope (serve --read-only)"`
	Tools  ToolGroups `yaml:"tools" env:"NEONGUARD_TOOLS" default:"all" usage:"tool groups served, a list (comma-separated in the environment and --tools) of databases, versioning, branches, sql, usage; all (or empty) serves every group"`
	// BackendMode is the configured backend; Backend() resolves "auto".
	BackendMode string        `yaml:"backend" env:"NEONGUARD_BACKEND" default:"auto" usage:"auto (neon when Neon credentials are set, local otherwise), local or neon"`
	Neon        Neon          `yaml:"neon"`
	Local       Local         `yaml:"local"`
	Store       string        `yaml:"store" env:"NEONGUARD_STORE" usage:"metadata store: empty for DATA_DIR/neonguard.db, sqlite:PATH, or postgres://… (shared by several replicas)"`
	Defaults    Defaults      `yaml:"defaults"`
	CallTimeout time.Duration `yaml:"call_timeout" env:"NEONGUARD_CALL_TIMEOUT" default:"60s" usage:"maximum duration of one tool call"`
	HTTP        HTTP          `yaml:"http"`
	Auth        Auth          `yaml:"auth"`
	Monitor     Monitor       `yaml:"monitor"`
	Janitor     Janitor       `yaml:"janitor"`
	// Policy is YAML only: plans and tiers are maps, merged over policy.Default() by key and,
	// within a plan or tier of a known name, field by field (a new name starts from zero).
	Policy policy.Config `yaml:"policy" env:"-"`

	// sources says where each setting that is not a default came from, by key ("flag
	// --log-level", "environment NEONGUARD_LOG_LEVEL", "config file x.yaml, line 3"), so
	// Validate names it; nil while every value is a default. Copied on write (Config is passed
	// by value).
	sources map[string]string
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" env:"NEONGUARD_LOG_LEVEL" default:"info" usage:"debug, info, warn or error"`
	Format string `yaml:"format" env:"NEONGUARD_LOG_FORMAT" default:"auto" usage:"auto (text on a terminal, JSON otherwise), text or json"`
}

// Neon configures the Neon backend. The variables are Neon's own names
// (DESIGN.md §8), so an existing Neon setup needs no renaming.
type Neon struct {
	APIHost        string `yaml:"api_host" env:"NEON_API_HOST" default:"https://console.neon.tech/api/v2" usage:"Neon API base URL"`
	FreeOrgID      string `yaml:"free_org_id" env:"NEON_FREE_ORG_ID" usage:"id of the Neon org holding free-tier projects"`
	FreeOrgAPIKey  string `yaml:"free_org_api_key" env:"NEON_FREE_ORG_API_KEY" secret:"true" usage:"org API key of the free org"`
	PaidOrgID      string `yaml:"paid_org_id" env:"NEON_PAID_ORG_ID" usage:"id of the Neon org holding paid-tier projects"`
	PaidOrgAPIKey  string `yaml:"paid_org_api_key" env:"NEON_PAID_ORG_API_KEY" secret:"true" usage:"org API key of the paid org"`
	PersonalAPIKey string `yaml:"personal_api_key" env:"NEON_PERSONAL_API_KEY" secret:"true" usage:"personal API key of a member of both orgs (moves projects on tier changes)"`
	// The client's limiter, per API key and per replica: Neon's documented limits are 700
	// requests a minute per account and bursts up to 40 a second per route.
	RequestsPerMinute int `yaml:"requests_per_minute" env:"NEON_REQUESTS_PER_MINUTE" default:"700" usage:"most Neon API requests one replica sends per minute with each API key (Neon allows 700 per account: with N replicas, give each 700/N)"`
	RequestBurst      int `yaml:"request_burst" env:"NEON_REQUEST_BURST" default:"40" usage:"Neon API requests one replica may send at once with each API key before the per-minute rate paces them (Neon allows bursts of 40 per second; with N replicas, give each 40/N); below requests_per_minute"`
}

// Local configures the in-process Neon emulator of the local backend.
type Local struct {
	PersonalAPIKey string        `yaml:"personal_api_key" env:"NEONGUARD_LOCAL_PERSONAL_API_KEY" secret:"true" usage:"personal API key the emulator accepts (empty: generated)"`
	FreeOrgAPIKey  string        `yaml:"free_org_api_key" env:"NEONGUARD_LOCAL_FREE_ORG_API_KEY" secret:"true" usage:"free org API key the emulator accepts (empty: generated)"`
	PaidOrgAPIKey  string        `yaml:"paid_org_api_key" env:"NEONGUARD_LOCAL_PAID_ORG_API_KEY" secret:"true" usage:"paid org API key the emulator accepts (empty: generated)"`
	Listen         string        `yaml:"listen" env:"NEONGUARD_LOCAL_LISTEN" default:"127.0.0.1:0" usage:"address of the emulator's HTTP API (port 0: any free port)"`
	OperationDelay time.Duration `yaml:"operation_delay" env:"NEONGUARD_LOCAL_OPERATION_DELAY" default:"50ms" usage:"how long emulated operations stay running (0: finish at once)"`
	Postgres       string        `yaml:"postgres" env:"NEONGUARD_LOCAL_POSTGRES" default:"auto" usage:"real databases behind the emulator: auto (when PostgreSQL is installed), on, or off (API only)"`
	PGBinDir       string        `yaml:"pg_bin_dir" env:"NEONGUARD_LOCAL_PG_BIN_DIR" usage:"PostgreSQL server binaries, the only major served (empty: every major on PATH, via pg_config, in /usr/lib/postgresql/*/bin)"`
	PGUser         string        `yaml:"pg_user" env:"NEONGUARD_LOCAL_PG_USER" default:"postgres" usage:"unprivileged user PostgreSQL runs as when neonguard runs as root"`
	// A local database takes ~150 MB of PostgreSQL data: these two refuse new databases and
	// branches (QUOTA_EXCEEDED) before the data dir's disk fills up.
	DiskBudget  ByteSize `yaml:"disk_budget" env:"NEONGUARD_LOCAL_DISK_BUDGET" default:"10GiB" usage:"most disk the local databases may use under data_dir (e.g. 512MiB, 20GiB); new databases and branches beyond it are refused (0: no budget)"`
	DiskMinFree ByteSize `yaml:"disk_min_free" env:"NEONGUARD_LOCAL_DISK_MIN_FREE" default:"1GiB" usage:"new databases and branches are refused when they would leave less free space than this on data_dir's filesystem (0: not checked)"`
}

// ByteSize is a number of bytes, written as an integer or with a unit: 512MiB, 10GiB, 1.5GB.
// Units are B, KiB, MiB, GiB, TiB (also Ki, Mi, Gi, Ti) and the decimal kB, MB, GB, TB, in
// any case.
type ByteSize int64

var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"kib": 1 << 10, "ki": 1 << 10, "mib": 1 << 20, "mi": 1 << 20, "gib": 1 << 30, "gi": 1 << 30, "tib": 1 << 40, "ti": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// ParseByteSize parses a size as ByteSize documents it. Negative sizes are refused.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%q is not a size (e.g. 512MiB, 10GiB, or a number of bytes)", s)
	}
	if !strings.Contains(num, ".") && mult == 1 {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a size: %w", s, err)
		}
		return ByteSize(n), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", s, err)
	}
	if f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(math.Round(f * mult)), nil
}

// String is the size with the largest binary unit that divides it exactly: "10GiB", "1536MiB",
// "1000" (bytes); ParseByteSize reads it back.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText writes String, so a printed config shows "10GiB".
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText reads what ParseByteSize reads: YAML, the environment and flags all use it.
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// ToolGroups is a list of tool group names: a YAML list, or a comma-separated string (the
// environment, flags, and YAML too). Empty (nil) means every group; so does the name "all".
type ToolGroups []string

// AllToolGroups is the name of every tool group together.
const AllToolGroups = "all"

// UnmarshalText reads a comma-separated list; spaces around names and empty items are dropped.
func (g *ToolGroups) UnmarshalText(text []byte) error {
	*g = toolGroups(strings.Split(string(text), ","))
	return nil
}

// MarshalText writes the comma-separated form UnmarshalText reads.
func (g ToolGroups) MarshalText() ([]byte, error) {
	if len(g) == 0 {
		return []byte(AllToolGroups), nil
	}
	return []byte(strings.Join(g, ",")), nil
}

// UnmarshalYAML accepts a list of names or one comma-separated string.
func (g *ToolGroups) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return g.UnmarshalText([]byte(n.Value))
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("want a list of tool groups: %w", err)
	}
	*g = toolGroups(list)
	return nil
}

// toolGroups trims the names and drops empty ones; "all" anywhere means every group (nil).
func toolGroups(items []string) ToolGroups {
	var out ToolGroups
	for _, item := range items {
		switch item = strings.TrimSpace(item); item {
		case "":
		case AllToolGroups:
			return nil
		default:
			out = append(out, item)
		}
	}
	return out
}

// HTTP configures the hosted endpoint (serve --transport http).
type HTTP struct {
	Listen             string        `yaml:"listen" env:"NEONGUARD_HTTP_LISTEN" default:"127.0.0.1:8080" usage:"address of the HTTP endpoint (/mcp, /sse, /message, /healthz, /readyz, /metrics)"`
	PublicURL          string        `yaml:"public_url" env:"NEONGUARD_HTTP_PUBLIC_URL" usage:"external base URL behind a proxy, e.g. https://mcp.example.com (empty: from each request's Host)"`
	MaxBodyBytes       int64         `yaml:"max_body_bytes" env:"NEONGUARD_HTTP_MAX_BODY_BYTES" default:"4194304" usage:"largest request body accepted"`
	SessionIdleTTL     time.Duration `yaml:"session_idle_ttl" env:"NEONGUARD_HTTP_SESSION_IDLE_TTL" default:"15m" usage:"Streamable HTTP session state is dropped after this long without requests"`
	SSEKeepAlive       time.Duration `yaml:"sse_keep_alive" env:"NEONGUARD_HTTP_SSE_KEEP_ALIVE" default:"25s" usage:"ping interval on SSE streams (keeps proxies from closing idle streams)"`
	UnreadyDelay       time.Duration `yaml:"unready_delay" env:"NEONGUARD_HTTP_UNREADY_DELAY" default:"0s" usage:"on SIGTERM, how long /readyz fails while requests are still served, before the listener closes (your load balancer's probe interval)"`
	ShutdownGrace      time.Duration `yaml:"shutdown_grace" env:"NEONGUARD_HTTP_SHUTDOWN_GRACE" default:"60s" usage:"on SIGTERM, how long calls in flight may take to finish"`
	MaxConcurrentCalls int           `yaml:"max_concurrent_calls" env:"NEONGUARD_HTTP_MAX_CONCURRENT_CALLS" default:"64" usage:"tool calls running at once, all tenants together; more wait, then get RATE_LIMITED"`
	// Limits per tenant, so one tenant (a buggy or hostile client) cannot take the endpoint from
	// the others. Each is per replica.
	TenantMaxConcurrentCalls int           `yaml:"tenant_max_concurrent_calls" env:"NEONGUARD_HTTP_TENANT_MAX_CONCURRENT_CALLS" default:"16" usage:"tool calls of one tenant running at once; more wait for one of them to end (within call_timeout), then get RATE_LIMITED"`
	TenantMaxRequests        int           `yaml:"tenant_max_requests" env:"NEONGUARD_HTTP_TENANT_MAX_REQUESTS" default:"32" usage:"POST requests of one tenant open at once (bodies being received, answers being sent); more get 429"`
	TenantMaxStreams         int           `yaml:"tenant_max_streams" env:"NEONGUARD_HTTP_TENANT_MAX_STREAMS" default:"32" usage:"open event streams of one tenant (GET /mcp and GET /sse); more get 429"`
	TenantMaxSessions        int           `yaml:"tenant_max_sessions" env:"NEONGUARD_HTTP_TENANT_MAX_SESSIONS" default:"128" usage:"live Streamable HTTP sessions of one tenant (a session without requests for session_idle_ttl ends); an initialize beyond it gets 429"`
	RequestRateFactor        int           `yaml:"request_rate_factor" env:"NEONGUARD_HTTP_REQUEST_RATE_FACTOR" default:"4" usage:"every HTTP request of a tenant (initialize, tools/list, streams, tool calls…) takes a token from a bucket this many times its tier's calls_per_minute and call_burst; beyond it: 429 with Retry-After (0: only tool calls are limited)"`
	BodyReadTimeout          time.Duration `yaml:"body_read_timeout" env:"NEONGUARD_HTTP_BODY_READ_TIMEOUT" default:"10s" usage:"longest a request body may take to arrive; a slower one gets 408 and its connection is closed"`
	StreamRecheck            time.Duration `yaml:"stream_recheck" env:"NEONGUARD_HTTP_STREAM_RECHECK" default:"30s" usage:"how often an open stream's credential is checked again: streams of a revoked token or an expired JWT close within this"`
}

// Monitor configures the usage monitor that serve runs: it samples every database's
// consumption and raises alerts at 80 %, 95 % and 100 % of a quota.
type Monitor struct {
	Interval      time.Duration `yaml:"interval" env:"NEONGUARD_MONITOR_INTERVAL" default:"15m" usage:"how often serve reads every database's consumption (0: monitor off)"`
	WebhookURL    string        `yaml:"webhook_url" env:"NEONGUARD_MONITOR_WEBHOOK_URL" usage:"alerts are POSTed here as JSON (empty: alerts are logged and shown by get_usage only)"`
	WebhookSecret string        `yaml:"webhook_secret" env:"NEONGUARD_MONITOR_WEBHOOK_SECRET" secret:"true" usage:"key of the HMAC-SHA256 signature of each webhook body"`
}

// Janitor configures the cleanup of expired branches that serve runs.
type Janitor struct {
	Interval time.Duration `yaml:"interval" env:"NEONGUARD_JANITOR_INTERVAL" default:"10m" usage:"how often serve deletes expired dev and backup branches Neon left behind (0: off)"`
}

// Auth configures how HTTP callers prove who they are. Bearer tokens from `neonguard tenant
// token create` always work; JWTs are accepted when one of the JWT keys is set.
type Auth struct {
	JWT JWT `yaml:"jwt"`
}

// JWT configures JWT bearer credentials.
type JWT struct {
	HS256Secret string `yaml:"hs256_secret" env:"NEONGUARD_AUTH_JWT_HS256_SECRET" secret:"true" usage:"accept HS256 JWTs signed with this secret (at least 32 bytes)"`
	JWKSURL     string `yaml:"jwks_url" env:"NEONGUARD_AUTH_JWT_JWKS_URL" usage:"accept RS256/ES256/EdDSA JWTs signed by a key of this JWK Set"`
	TenantClaim string `yaml:"tenant_claim" env:"NEONGUARD_AUTH_JWT_TENANT_CLAIM" default:"tenant" usage:"JWT claim holding the tenant id (the tenant must exist)"`
	ScopeClaim  string `yaml:"scope_claim" env:"NEONGUARD_AUTH_JWT_SCOPE_CLAIM" default:"scope" usage:"JWT claim holding scopes (space-separated string or array)"`
	Issuer      string `yaml:"issuer" env:"NEONGUARD_AUTH_JWT_ISSUER" usage:"required iss of JWTs (empty: not checked)"`
	Audience    string `yaml:"audience" env:"NEONGUARD_AUTH_JWT_AUDIENCE" usage:"required aud of JWTs (required with jwks_url; empty with hs256_secret: not checked)"`
}

// Enabled reports whether JWTs are accepted.
func (j JWT) Enabled() bool { return j.HS256Secret != "" || j.JWKSURL != "" }

// Defaults are used when a tool call leaves an argument out.
type Defaults struct {
	Region    string `yaml:"region" env:"NEONGUARD_DEFAULTS_REGION" default:"aws-us-east-2" usage:"region of new databases"`
	PGVersion int    `yaml:"pg_version" env:"NEONGUARD_DEFAULTS_PG_VERSION" usage:"Postgres major version of new databases, 14 to 18 (empty: 17 on neon; on local the newest PostgreSQL installed)"`
}

// Setting describes one setting for documentation and --help.
type Setting struct {
	Key     string // YAML key path, e.g. "neon.api_host"; also the argument of Set
	Env     string // environment variable
	Default string // as text; empty when there is none
	Usage   string
	Secret  bool // never print its value
}

// Default returns the defaults, with data_dir derived from the process
// environment.
func Default() Config { return defaults(os.Getenv) }

func defaults(getenv func(string) string) Config {
	var c Config
	for _, f := range walk(&c) {
		if f.def == "" {
			continue
		}
		if err := setValue(f.val, f.def); err != nil {
			// Tags are constants checked by the tests; a bad one is a bug.
			panic(fmt.Sprintf("config: bad default for %s: %v", f.key, err))
		}
	}
	c.DataDir = defaultDataDir(getenv, os.Geteuid())
	c.Policy = policy.Default()
	return c
}

// defaultDataDir follows the XDG base directory spec, which ignores a
// relative XDG_DATA_HOME. Without HOME it returns "" and Validate asks for
// data_dir.
func defaultDataDir(getenv func(string) string, euid int) string {
	// As root, PostgreSQL runs as an unprivileged user that cannot enter /root (0700), so
	// root gets the system-wide location daemons use.
	if euid == 0 {
		return "/var/lib/neonguard"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "neonguard")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "neonguard")
	}
	return ""
}

// Load returns the defaults, overlaid by the YAML file at path (skipped when
// path is empty), overlaid by the environment as read by getenv (os.Getenv
// when nil). Empty variables count as unset. Unknown YAML keys are an error
// naming the key. Load does not validate: apply flags with Set, then call
// Validate.
func Load(path string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := defaults(getenv)
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := c.decodeYAML(data); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
		c.noteFileSources(data, path)
	}
	for _, f := range walk(&c) {
		s := getenv(f.env)
		if s == "" {
			continue
		}
		if err := setValue(f.val, s); err != nil {
			return Config{}, fmt.Errorf("%s (%s): %w", f.env, f.key, err)
		}
		c.setSource(f.key, SourceEnv+" "+f.env)
	}
	return c, nil
}

// Where a setting's value came from, as Validate's messages name it.
const (
	SourceFlag = "flag"
	SourceEnv  = "environment"
	SourceFile = "config file"
)

func (c *Config) setSource(key, source string) {
	m := maps.Clone(c.sources)
	if m == nil {
		m = map[string]string{}
	}
	m[key] = source
	c.sources = m
}

// Source says where key's value came from: "flag --log-level", "environment
// NEONGUARD_LOG_LEVEL", "config file neonguard.yaml, line 3", or "" for a default.
func (c Config) Source(key string) string { return c.sources[key] }

// ErrFlagValue matches (errors.Is, also within Validate's joined errors) a SettingError whose
// value came from a command-line flag: the command was used wrongly, which the CLI reports as
// a usage error.
var ErrFlagValue = errors.New("bad flag value")

// SettingError is a setting whose value is wrong, from SetFrom or Validate.
type SettingError struct {
	Key    string
	Source string // where the value came from (Config.Source); "" for a default
	origin string // what the message names: Source, or the environment variable of a default
	msg    string
	err    error
}

func (e *SettingError) Error() string { return fmt.Sprintf("%s (%s): %s", e.Key, e.origin, e.msg) }
func (e *SettingError) Unwrap() error { return e.err }

func (e *SettingError) Is(target error) bool {
	return target == ErrFlagValue && (e.Source == SourceFlag || strings.HasPrefix(e.Source, SourceFlag+" "))
}

// noteFileSources records the settings the YAML file at path sets, with their lines.
func (c *Config) noteFileSources(data []byte, path string) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return
	}
	keys := map[string]bool{}
	for _, f := range walk(c) {
		keys[f.key] = true
	}
	var rec func(n *yaml.Node, prefix string)
	rec = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, d := range n.Content {
				rec(d, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := prefix + n.Content[i].Value
				if keys[key] {
					c.setSource(key, fmt.Sprintf("%s %s, line %d", SourceFile, path, n.Content[i].Line))
					continue
				}
				rec(n.Content[i+1], key+".")
			}
		}
	}
	rec(&root, "")
}

// decodeYAML overlays data on c. Plans and tiers are merged by key over the
// ones already in c, so a file naming one tier keeps the others.
func (c *Config) decodeYAML(data []byte) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if len(root.Content) == 0 { // empty file
		return nil
	}
	if err := checkKeys(&root, reflect.TypeFor[Config](), ""); err != nil {
		return err
	}
	base := c.Policy
	c.Policy = policy.Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // belt and braces: checkKeys has already named any unknown key
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	merged := policy.Config{Plans: maps.Clone(base.Plans), Tiers: maps.Clone(base.Tiers)}
	if merged.Plans == nil {
		merged.Plans = map[string]policy.OrgPlan{}
	}
	if merged.Tiers == nil {
		merged.Tiers = map[string]policy.Tier{}
	}
	// A plan or tier given in the file is decoded over the one of the same name, field by
	// field: `tiers: {free: {checkpoints: 0}}` changes one limit and keeps the rest.
	for name, node := range policyNodes(&root, "plans") {
		p := merged.Plans[name]
		if err := node.Decode(&p); err != nil {
			return err
		}
		p.Name = name
		merged.Plans[name] = p
	}
	for name, node := range policyNodes(&root, "tiers") {
		t := merged.Tiers[name]
		if err := node.Decode(&t); err != nil {
			return err
		}
		t.Name = name
		merged.Tiers[name] = t
	}
	c.Policy = merged
	return nil
}

// policyNodes returns the entries of policy.<section> in a YAML document, by name.
func policyNodes(root *yaml.Node, section string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	child := func(m *yaml.Node, key string) *yaml.Node {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	sec := child(child(doc, "policy"), section)
	if sec == nil || sec.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		out[sec.Content[i].Value] = sec.Content[i+1]
	}
	return out
}

// checkKeys reports every mapping key in n that the type t has no field for,
// by full key path and line, listing the keys that would be accepted.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		var errs []error
		for _, c := range n.Content {
			errs = append(errs, checkKeys(c, t, path))
		}
		return errors.Join(errs...)
	case yaml.AliasNode:
		return checkKeys(n.Alias, t, path)
	case yaml.MappingNode:
	default:
		return nil // scalars and sequences: the decoder checks their types
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // merge key: its mapping is checked where it is defined
			continue
		}
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		switch t.Kind() {
		case reflect.Map:
			errs = append(errs, checkKeys(v, t.Elem(), key))
		case reflect.Struct:
			ft, ok := yamlField(t, k.Value)
			if !ok {
				section := path
				if section == "" {
					section = "the top level"
				}
				errs = append(errs, fmt.Errorf("line %d: unknown key %q (known keys in %s: %s)",
					k.Line, key, section, strings.Join(yamlKeys(t), ", ")))
				continue
			}
			errs = append(errs, checkKeys(v, ft, key))
		}
	}
	return errors.Join(errs...)
}

func yamlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	return name
}

func yamlField(t reflect.Type, key string) (reflect.Type, bool) {
	for sf := range t.Fields() {
		if sf.IsExported() && yamlName(sf) == key && key != "-" && key != "" {
			return sf.Type, true
		}
	}
	return nil, false
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for sf := range t.Fields() {
		if n := yamlName(sf); sf.IsExported() && n != "" && n != "-" {
			keys = append(keys, n)
		}
	}
	return keys
}

// field is one leaf setting found by walk.
type field struct {
	key, env, def, docDef, usage string
	secret                       bool
	val                          reflect.Value // settable
}

var durationType = reflect.TypeFor[time.Duration]()

// walk lists the leaf settings of *c in declaration order. A struct field
// without an env tag is a section and is descended into; env:"-" skips a
// field.
func walk(c *Config) []field {
	var out []field
	var rec func(v reflect.Value, prefix string)
	rec = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name := yamlName(sf)
			env := sf.Tag.Get("env")
			if !sf.IsExported() || name == "" || name == "-" || env == "-" {
				continue
			}
			key := prefix + name
			if env == "" && sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
				rec(v.Field(i), key+".")
				continue
			}
			out = append(out, field{
				key: key, env: env, def: sf.Tag.Get("default"), docDef: sf.Tag.Get("doc_default"),
				usage: sf.Tag.Get("usage"), secret: sf.Tag.Get("secret") == "true", val: v.Field(i),
			})
		}
	}
	rec(reflect.ValueOf(c).Elem(), "")
	return out
}

// setValue parses s into v according to v's type.
func setValue(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 24h): %w", s, err)
		}
		v.SetInt(int64(d))
		return nil
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s)) // e.g. ByteSize, which names the value in its errors
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer: %w", s, err)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number: %w", s, err)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean: %w", s, err)
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}

// Set parses value into the setting named by its YAML key path, e.g.
// "data_dir" or "neon.api_host". Flags use it (through SetFrom), so they take precedence over
// the file and the environment.
func (c *Config) Set(key, value string) error { return c.SetFrom(key, value, "") }

// SetFrom is Set for a value from source (e.g. "flag --log-level"), which its errors and
// Validate's then name.
func (c *Config) SetFrom(key, value, source string) error {
	for _, f := range walk(c) {
		if f.key == key {
			if err := setValue(f.val, value); err != nil {
				if source != "" {
					return &SettingError{Key: key, Source: source, origin: source, msg: err.Error(), err: err}
				}
				return fmt.Errorf("%s: %w", key, err)
			}
			if source != "" {
				c.setSource(key, source)
			}
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownSetting, key)
}

// Settings describes every setting, in declaration order.
func Settings() []Setting {
	var c Config
	fields := walk(&c)
	out := make([]Setting, 0, len(fields))
	for _, f := range fields {
		def := f.def
		if def == "" {
			def = f.docDef
		}
		out = append(out, Setting{Key: f.key, Env: f.env, Default: def, Usage: f.usage, Secret: f.secret})
	}
	return out
}

// Backend resolves BackendMode: "auto" becomes "neon" as soon as any Neon
// credential is set (Validate then reports the missing ones, rather than
// silently falling back to local), "local" otherwise. Call Validate first:
// an invalid mode resolves to "local".
func (c Config) Backend() string {
	switch c.BackendMode {
	case BackendNeon:
		return BackendNeon
	case BackendAuto:
		if len(c.neonCredentials(true)) > 0 {
			return BackendNeon
		}
	}
	return BackendLocal
}

// neonCredentials returns the keys of the Neon credentials that are set
// (set=true) or missing (set=false). The personal key counts as set but is never reported
// missing: only tier changes (moving projects between orgs) need it.
func (c Config) neonCredentials(set bool) []string {
	var out []string
	for _, cred := range []struct {
		key, val string
		optional bool
	}{
		{"neon.free_org_id", c.Neon.FreeOrgID, false},
		{"neon.free_org_api_key", c.Neon.FreeOrgAPIKey, false},
		{"neon.paid_org_id", c.Neon.PaidOrgID, false},
		{"neon.paid_org_api_key", c.Neon.PaidOrgAPIKey, false},
		{"neon.personal_api_key", c.Neon.PersonalAPIKey, true},
	} {
		if !set && cred.optional {
			continue
		}
		if (cred.val != "") == set {
			out = append(out, cred.key)
		}
	}
	return out
}

// SQLitePath returns the SQLite file of the metadata store, or "" when the
// store is not SQLite.
func (c Config) SQLitePath() string {
	switch {
	case c.Store == "":
		return filepath.Join(c.DataDir, "neonguard.db")
	case strings.HasPrefix(c.Store, "sqlite:"):
		return strings.TrimPrefix(c.Store, "sqlite:")
	}
	return ""
}

// PostgresStore reports whether the metadata store is PostgreSQL (store: postgres://…).
func (c Config) PostgresStore() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// SlogLevel returns log.level as a slog.Level (info when invalid; Validate
// reports that).
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// Validate checks every setting and returns all problems at once
// (errors.Join). Each message starts with the YAML key and where its value came from: the
// flag, the environment variable or the config file and line, e.g. `log.level (flag
// --log-level): "loud" is not one of debug, info, warn, error`; a default names the
// environment variable that would change it (`log.level (NEONGUARD_LOG_LEVEL): …`). Policy
// problems start with "policy.".
func (c Config) Validate() error {
	v := newProblems()
	v.sources = c.sources
	c.validateIdentity(v)
	c.validateAccess(v)
	c.validateBackend(v)
	c.validateLocal(v)
	c.validateStore(v)
	c.validateDefaults(v)
	c.validateHTTP(v)
	c.validateAuth(v)
	if err := c.Policy.Validate(); err != nil {
		// Prefix each problem so it names the full YAML path.
		var list []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		} else {
			list = []error{err}
		}
		for _, e := range list {
			v.errs = append(v.errs, fmt.Errorf("policy.%w", e))
		}
	}
	return errors.Join(v.errs...)
}

// problems collects what Validate finds, each named by its key and environment variable.
type problems struct {
	envs    map[string]string
	sources map[string]string // Config.sources
	errs    []error
}

func newProblems() *problems {
	envs := map[string]string{}
	for _, s := range Settings() {
		envs[s.Key] = s.Env
	}
	return &problems{envs: envs}
}

func (v *problems) bad(key, format string, args ...any) {
	v.errs = append(v.errs, &SettingError{Key: key, Source: v.sources[key], origin: v.origin(key), msg: fmt.Sprintf(format, args...)})
}

// origin names where key's value came from, or its environment variable for a default.
func (v *problems) origin(key string) string {
	if s := v.sources[key]; s != "" {
		return s
	}
	return v.envs[key]
}

func (v *problems) oneOf(key, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.bad(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

func (v *problems) withEnv(keys []string) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s (%s)", k, v.origin(k)))
	}
	return strings.Join(parts, ", ")
}

func (v *problems) httpURL(key, val string) {
	if u, err := url.Parse(val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.bad(key, "%q is not an http(s) URL", val)
	}
}

func (c Config) validateIdentity(v *problems) {
	if c.DataDir == "" {
		v.bad("data_dir", "is empty and there is no HOME to derive it from; set it")
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "auto", "text", "json")
	if strings.TrimSpace(c.Tenant) == "" || strings.ContainsFunc(c.Tenant, isSpace) {
		v.bad("tenant", "%q must be a non-empty id without spaces", c.Tenant)
	}
	if _, ok := c.Policy.Tiers[c.Tier]; !ok {
		v.bad("tier", "unknown tier %q (known: %s)", c.Tier, strings.Join(slices.Sorted(maps.Keys(c.Policy.Tiers)), ", "))
	}
	if c.CallTimeout <= 0 {
		v.bad("call_timeout", "%s must be positive", c.CallTimeout)
	}
}

func (c Config) validateAccess(v *problems) {
	v.oneOf("access", c.Access, AccessReadWrite, AccessReadOnly)
	for _, g := range c.Tools {
		if !slices.Contains(KnownToolGroups, g) {
			v.bad("tools", "unknown tool group %q (the groups: %s)", g, strings.Join(KnownToolGroups, ", "))
		}
	}
}

// ReadOnly reports whether access is read-only: every caller may only read.
func (c Config) ReadOnly() bool { return c.Access == AccessReadOnly }

func (c Config) validateBackend(v *problems) {
	v.oneOf("backend", c.BackendMode, BackendAuto, BackendLocal, BackendNeon)
	if missing := c.neonCredentials(false); len(missing) > 0 {
		switch {
		case c.BackendMode == BackendNeon:
			v.bad("backend", "neon needs Neon credentials; missing: %s", v.withEnv(missing))
		case c.BackendMode == BackendAuto && c.Backend() == BackendNeon:
			v.bad("backend", "auto chose neon because %s is set, but these are missing: %s; set them too, or set backend to local",
				v.withEnv(c.neonCredentials(true)), v.withEnv(missing))
		}
	}
	v.httpURL("neon.api_host", c.Neon.APIHost)
	if c.Neon.RequestBurst < 1 {
		v.bad("neon.request_burst", "%d must be at least 1", c.Neon.RequestBurst)
	}
	if c.Neon.RequestsPerMinute <= c.Neon.RequestBurst {
		v.bad("neon.requests_per_minute", "%d must be more than neon.request_burst (%d): the burst is part of the minute's budget",
			c.Neon.RequestsPerMinute, c.Neon.RequestBurst)
	}
}

// NeonRate is the Neon client's token bucket for these settings: it holds RequestBurst and
// refills at (RequestsPerMinute-RequestBurst) a minute, so no minute sees more than
// RequestsPerMinute requests.
func (n Neon) NeonRate() (perSecond float64, burst int) {
	return float64(n.RequestsPerMinute-n.RequestBurst) / 60, n.RequestBurst
}

func (c Config) validateLocal(v *problems) {
	if _, _, err := net.SplitHostPort(c.Local.Listen); err != nil {
		v.bad("local.listen", "%q is not host:port (e.g. 127.0.0.1:0)", c.Local.Listen)
	}
	switch c.Local.Postgres {
	case "auto", "on", "off":
	default:
		v.bad("local.postgres", "%q must be auto, on or off", c.Local.Postgres)
	}
	if c.Local.OperationDelay < 0 {
		v.bad("local.operation_delay", "%s must not be negative", c.Local.OperationDelay)
	}
	// Below one database's ~150 MB nothing could ever be created: most likely a unit was left
	// out ("10" meaning 10 GiB).
	switch b := c.Local.DiskBudget; {
	case b < 0:
		v.bad("local.disk_budget", "%d must not be negative (0 means no budget)", b)
	case b > 0 && b < minDiskBudget:
		v.bad("local.disk_budget", "%s is below %s, less than one local database needs; give a unit (e.g. 20GiB), or 0 for no budget", b, minDiskBudget)
	}
	if c.Local.DiskMinFree < 0 {
		v.bad("local.disk_min_free", "%d must not be negative (0 means not checked)", c.Local.DiskMinFree)
	}
}

func (c Config) validateStore(v *problems) {
	switch s := c.Store; {
	case s == "":
	case strings.HasPrefix(s, "sqlite:"):
		if strings.TrimPrefix(s, "sqlite:") == "" {
			v.bad("store", "sqlite: needs a path, e.g. sqlite:/var/lib/neonguard/neonguard.db")
		}
	case c.PostgresStore():
		// The value is not echoed: a URL that does not parse may still hold a password.
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			v.bad("store", "is not a PostgreSQL URL with a host (postgres://user:password@host:5432/db?sslmode=require)")
		}
	default:
		v.bad("store", "%q is not empty, sqlite:PATH or postgres://…", redactURL(s))
	}
}

func (c Config) validateDefaults(v *problems) {
	if c.Defaults.Region == "" || strings.ContainsFunc(c.Defaults.Region, isSpace) {
		v.bad("defaults.region", "%q must be a region id such as aws-us-east-2", c.Defaults.Region)
	}
	if pg := c.Defaults.PGVersion; pg != 0 && (pg < 14 || pg > 18) {
		v.bad("defaults.pg_version", "%d is not a Postgres version Neon offers (14 to 18)", pg)
	}
}

func (c Config) validateHTTP(v *problems) {
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		v.bad("http.listen", "%q is not host:port (e.g. 0.0.0.0:8080)", c.HTTP.Listen)
	}
	if p := c.HTTP.PublicURL; p != "" {
		v.httpURL("http.public_url", p)
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		v.bad("http.max_body_bytes", "%d is too small (at least 1024)", c.HTTP.MaxBodyBytes)
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"http.session_idle_ttl", c.HTTP.SessionIdleTTL}, {"http.sse_keep_alive", c.HTTP.SSEKeepAlive}, {"http.shutdown_grace", c.HTTP.ShutdownGrace},
		{"http.body_read_timeout", c.HTTP.BodyReadTimeout}, {"http.stream_recheck", c.HTTP.StreamRecheck}} {
		if d.val <= 0 {
			v.bad(d.key, "%s must be positive", d.val)
		}
	}
	if c.HTTP.UnreadyDelay < 0 {
		v.bad("http.unready_delay", "%s must not be negative", c.HTTP.UnreadyDelay)
	}
	for _, n := range []struct {
		key string
		val int
	}{{"http.max_concurrent_calls", c.HTTP.MaxConcurrentCalls}, {"http.tenant_max_concurrent_calls", c.HTTP.TenantMaxConcurrentCalls},
		{"http.tenant_max_requests", c.HTTP.TenantMaxRequests}, {"http.tenant_max_streams", c.HTTP.TenantMaxStreams},
		{"http.tenant_max_sessions", c.HTTP.TenantMaxSessions}} {
		if n.val < 1 {
			v.bad(n.key, "%d must be at least 1", n.val)
		}
	}
	if c.HTTP.RequestRateFactor < 0 {
		v.bad("http.request_rate_factor", "%d must not be negative (0 turns the request budget off)", c.HTTP.RequestRateFactor)
	}
}

func (c Config) validateAuth(v *problems) {
	j := c.Auth.JWT
	switch {
	case j.HS256Secret != "" && j.JWKSURL != "":
		v.bad("auth.jwt.hs256_secret", "set either it or auth.jwt.jwks_url, not both")
	case j.HS256Secret != "" && len(j.HS256Secret) < 32:
		v.bad("auth.jwt.hs256_secret", "is %d bytes; use at least 32 random bytes", len(j.HS256Secret))
	case j.JWKSURL != "":
		v.httpURL("auth.jwt.jwks_url", j.JWKSURL)
		// An identity provider's keys sign tokens for many applications: without an audience
		// check, any of them naming an existing tenant (or carrying an "admin" scope) would do.
		if j.Audience == "" {
			v.bad("auth.jwt.audience", "is required with auth.jwt.jwks_url: set it to the audience your identity provider puts in neonguard's tokens")
		}
	}
	if j.Enabled() && j.TenantClaim == "" {
		v.bad("auth.jwt.tenant_claim", "must name a claim, e.g. tenant or sub")
	}
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// Redacted returns a copy safe to print: every secret setting that is set
// becomes "[redacted]" and a password in the store URL is masked. The policy
// maps are copied, so changing the result never changes c.
func (c Config) Redacted() Config {
	r := c
	for _, f := range walk(&r) {
		if f.secret && f.val.String() != "" {
			f.val.SetString(Redaction)
		}
	}
	r.Store = redactURL(r.Store)
	r.Policy = policy.Config{Plans: maps.Clone(c.Policy.Plans), Tiers: maps.Clone(c.Policy.Tiers)}
	return r
}

// redactURL masks the password of a URL-shaped value and returns anything
// else unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	return u.Redacted()
}
