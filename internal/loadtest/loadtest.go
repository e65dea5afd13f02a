// Package loadtest drives the hosted endpoint with N concurrent MCP sessions (Streamable HTTP or
// SSE) calling read-only tools, and reports latency percentiles, calls per second, errors and
// the server process's peak RSS. `neonguard load` is its command line; by default it starts the
// server as a child process of the same binary, so the RSS measured is the server's alone.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.yaml.in/yaml/v3"

	"github.com/neonguard/neonguard/internal/policy"
)

const (
	loadTier     = "load"           // the unlimited-rate tier of the generated config
	loadDatabase = "neonguard-load" // the database each tenant reads (create_database is idempotent per name)
	// TokensEnv holds comma-separated bearer tokens for a server given by URL.
	TokensEnv = "NEONGUARD_LOAD_TOKENS"
)

// loadTool is a read-only tool a session calls.
type loadTool struct {
	name  string
	needs bool // takes database_id: the session's tenant's database
}

// readOnlyTools are the tools --tools may name.
func readOnlyTools() []loadTool {
	return []loadTool{{"describe_limits", false}, {"list_databases", false}, {"get_usage", true},
		{"list_checkpoints", true}, {"list_branches", true}}
}

// DefaultTools is the rotation the issue asks for.
const DefaultTools = "describe_limits,list_databases,get_usage,list_checkpoints"

// parseLoadTools resolves --tools.
func parseLoadTools(list string) ([]loadTool, error) {
	known := readOnlyTools()
	var out []loadTool
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(known, func(t loadTool) bool { return t.name == name })
		if i < 0 {
			names := make([]string, len(known))
			for j, t := range known {
				names[j] = t.name
			}
			return nil, fmt.Errorf("--tools: %q is not one of the read-only tools %s", name, strings.Join(names, ", "))
		}
		if !slices.Contains(out, known[i]) {
			out = append(out, known[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--tools: name at least one tool")
	}
	return out, nil
}

// Options describe one load test (the load command's flags).
type Options struct {
	Sessions     int
	ToolList     string     // comma-separated read-only tools, called in turn
	tools        []loadTool // parsed ToolList (Validate)
	Duration     time.Duration
	Warmup       time.Duration
	Tenants      int
	Rate         float64 // total calls per second; 0 = closed loop
	Transport    string  // streamable or sse
	URL          string  // a running server instead of a child
	TokenFile    string
	ServerBinary string // the binary started as the server (default: this one)
	ServerPID    int    // with URL: a local server process whose RSS to report
}

// interval is each session's time between calls under --rate; 0 when unpaced.
func (o *Options) interval() time.Duration {
	if o.Rate <= 0 {
		return 0
	}
	return time.Duration(float64(o.Sessions) / o.Rate * float64(time.Second))
}

func (o *Options) Validate() error {
	var errs []error
	if o.Sessions < 1 {
		errs = append(errs, fmt.Errorf("--sessions %d: must be at least 1", o.Sessions))
	}
	if o.Duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %s: must be positive", o.Duration))
	}
	if o.Warmup < 0 {
		errs = append(errs, fmt.Errorf("--warmup %s: must not be negative", o.Warmup))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		errs = append(errs, fmt.Errorf("--rate %v: must be 0 (as fast as possible) or a positive number of calls per second", o.Rate))
	}
	if o.Tenants < 1 {
		errs = append(errs, fmt.Errorf("--tenants %d: must be at least 1", o.Tenants))
	}
	tools, err := parseLoadTools(o.ToolList)
	if err != nil {
		errs = append(errs, err)
	}
	o.tools = tools
	if o.Transport != "streamable" && o.Transport != "sse" {
		errs = append(errs, fmt.Errorf("--transport %q: use streamable or sse", o.Transport))
	}
	if o.URL == "" {
		if o.TokenFile != "" {
			errs = append(errs, errors.New("--token-file needs --url (without --url the command makes its own tenants and tokens)"))
		}
		if o.ServerPID != 0 {
			errs = append(errs, errors.New("--server-pid needs --url (without --url the server is the command's own child)"))
		}
	} else {
		if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
			errs = append(errs, fmt.Errorf("--url %q: want an http:// or https:// base URL", o.URL))
		}
		if o.ServerBinary != "" {
			errs = append(errs, errors.New("--server-binary cannot be used with --url"))
		}
		if o.ServerPID < 0 {
			errs = append(errs, fmt.Errorf("--server-pid %d: must be positive", o.ServerPID))
		}
	}
	return errors.Join(errs...)
}

// Report is the command's result.
type Report struct {
	Mode      string  `json:"mode"` // "child": the command started the server; "url": an existing one
	URL       string  `json:"url"`
	Transport string  `json:"transport"`
	Backend   string  `json:"backend"`
	Sessions  int     `json:"sessions"`
	Tenants   int     `json:"tenants"`
	Warmup    float64 `json:"warmup_seconds"`
	// OfferedRate is --rate: 0 when each session calls as fast as it can (a closed loop).
	OfferedRate float64 `json:"offered_rate"`
	Duration    float64 `json:"duration_seconds"` // measured: from the end of the warm-up until the last call ended
	Calls       int     `json:"calls"`            // successful calls started in the measuring window
	Errors      int     `json:"errors"`           // failed calls (transport error or isError result)
	CallsPerS   float64 `json:"calls_per_second"` // successful calls per second

	Latency      latencyStats         `json:"latency_ms"`       // successful calls
	ErrorLatency *latencyStats        `json:"error_latency_ms"` // failed calls, when any
	ErrorCodes   map[string]int       `json:"error_codes,omitempty"`
	ErrorSamples map[string]string    `json:"error_samples,omitempty"` // one message per code
	Rotation     []string             `json:"tool_rotation"`           // the tools each session calls in turn
	Tools        map[string]toolStats `json:"tools"`

	Server serverStats `json:"server"`
	Client clientStats `json:"client"`
	Notes  []string    `json:"notes"`
}

type latencyStats struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type toolStats struct {
	Calls  int          `json:"calls"`
	Errors int          `json:"errors"`
	Stats  latencyStats `json:"latency_ms"`
}

type serverStats struct {
	PID          int     `json:"pid,omitempty"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`        // VmHWM: the process's peak over its life
	EndRSSBytes  int64   `json:"end_rss_bytes"`         // VmRSS after the last call
	CPUSeconds   float64 `json:"cpu_seconds,omitempty"` // user+system during the measuring window
	// CPUPerCallMS is CPUSeconds over the calls of the window (failed ones included), and
	// AloneCallsPerS what that allows with every CPU to the server: on one machine the load
	// generator takes its share, so a closed loop's calls/s stays below it.
	CPUPerCallMS   float64 `json:"cpu_ms_per_call,omitempty"`
	AloneCallsPerS float64 `json:"alone_calls_per_second,omitempty"`
	RSSError       string  `json:"rss_error,omitempty"` // why RSS is missing
	DataDir        string  `json:"data_dir,omitempty"`  // child mode: removed at the end
}

type clientStats struct {
	GOMAXPROCS   int     `json:"gomaxprocs"`
	NumCPU       int     `json:"num_cpu"`
	CPUSeconds   float64 `json:"cpu_seconds,omitempty"` // the load generator's user+system during the window
	CPUPerCallMS float64 `json:"cpu_ms_per_call,omitempty"`
}

// loadTarget is a server to drive: its URL, one token per tenant, and the server's pid when known.
type loadTarget struct {
	url    string
	tokens []string
	pid    int
}

func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	rep := &Report{Transport: o.Transport, Sessions: o.Sessions, Warmup: o.Warmup.Seconds(), OfferedRate: o.Rate}
	var tgt loadTarget
	if o.URL != "" {
		tokens, err := loadTokens(o.TokenFile)
		if err != nil {
			return nil, err
		}
		tgt = loadTarget{url: baseURL(o.URL), tokens: tokens, pid: o.ServerPID}
		rep.Mode, rep.Backend = "url", "as configured on the server"
	} else {
		srv, err := startLoadServer(ctx, o, log)
		if srv != nil {
			defer srv.stop(log)
		}
		if err != nil {
			return nil, err
		}
		tgt = srv.target
		rep.Mode = "child"
		rep.Backend = "local emulator in-process, API only (local.postgres=off: no real Postgres behind it)"
		rep.Server.DataDir = srv.dir
	}
	if len(tgt.tokens) > o.Sessions {
		tgt.tokens = tgt.tokens[:o.Sessions]
	}
	rep.URL, rep.Tenants, rep.Server.PID = tgt.url, len(tgt.tokens), tgt.pid

	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        4*o.Sessions + 16,
		MaxIdleConnsPerHost: 4*o.Sessions + 16, // the default 2 would reconnect on almost every call
		IdleConnTimeout:     90 * time.Second,
	}}
	defer hc.CloseIdleConnections()
	tlog := log.With("component", "mcp-client")

	dbs, err := setupTenants(ctx, ctx, o.Transport, tgt, hc, tlog, log)
	if err != nil {
		return nil, err
	}

	log.Info("connecting sessions", "sessions", o.Sessions, "tenants", len(tgt.tokens), "transport", o.Transport)
	sessions := make([]*client.Client, o.Sessions)
	defer closeAll(sessions)
	if err := forEach(ctx, o.Sessions, 32, func(cctx context.Context, i int) error {
		c, err := connect(cctx, ctx, o.Transport, tgt.url, tgt.tokens[i%len(tgt.tokens)], hc, tlog)
		sessions[i] = c
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	stopAt := measureFrom.Add(o.Duration)
	log.Info("calling", "warmup", o.Warmup, "duration", o.Duration)
	results := make([]sessionResult, o.Sessions)
	var serverCPU0, clientCPU0 float64
	var cpuOnce sync.Once
	var wg sync.WaitGroup
	for i, c := range sessions {
		wg.Go(func() {
			results[i] = runSession(ctx, c, o.tools, o.interval(), i, o.Sessions, dbs[i%len(dbs)], measureFrom, stopAt, func() {
				cpuOnce.Do(func() {
					serverCPU0, _ = procCPUSeconds(tgt.pid)
					clientCPU0, _ = procCPUSeconds(os.Getpid())
				})
			})
		})
	}
	wg.Wait()
	end := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	serverCPU1, serr := procCPUSeconds(tgt.pid)
	clientCPU1, cerr := procCPUSeconds(os.Getpid())
	if tgt.pid > 0 && serr == nil {
		rep.Server.CPUSeconds = round(serverCPU1-serverCPU0, 2)
	}
	if cerr == nil {
		rep.Client.CPUSeconds = round(clientCPU1-clientCPU0, 2)
	}
	if tgt.pid > 0 {
		hwm, rss, err := procRSS(tgt.pid)
		if err != nil {
			rep.Server.RSSError = err.Error()
		}
		rep.Server.PeakRSSBytes, rep.Server.EndRSSBytes = hwm, rss
	} else {
		rep.Server.RSSError = "server process unknown (give --server-pid)"
	}
	rep.Duration = round(end.Sub(measureFrom).Seconds(), 3)
	rep.Client.GOMAXPROCS, rep.Client.NumCPU = runtime.GOMAXPROCS(0), runtime.NumCPU()
	rep.aggregate(results, o.tools)
	rep.perCallCPU()
	rep.Notes = rep.notes()
	log.Info("done", "calls", rep.Calls, "errors", rep.Errors)
	return rep, nil
}

// setupTenants gives each tenant its database (create_database is idempotent per name) and
// returns the database ids, one per token.
func setupTenants(ctx, life context.Context, tr string, tgt loadTarget, hc *http.Client, tlog, log *slog.Logger) ([]string, error) {
	log.Info("creating one database per tenant", "tenants", len(tgt.tokens), "name", loadDatabase)
	dbs := make([]string, len(tgt.tokens))
	err := forEach(ctx, len(tgt.tokens), 8, func(ctx context.Context, i int) error {
		c, err := connect(ctx, life, tr, tgt.url, tgt.tokens[i], hc, tlog)
		if c != nil {
			defer c.Close()
		}
		if err != nil {
			return fmt.Errorf("tenant %d: %w", i, err)
		}
		var req mcp.CallToolRequest
		req.Params.Name = "create_database"
		req.Params.Arguments = map[string]any{"name": loadDatabase}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		res, err := c.CallTool(cctx, req)
		if err != nil {
			return fmt.Errorf("tenant %d: create_database: %w", i, err)
		}
		if res.IsError {
			_, msg := resultError(res)
			return fmt.Errorf("tenant %d: create_database: %s", i, msg)
		}
		b, _ := json.Marshal(res.StructuredContent)
		var db struct {
			DatabaseID string `json:"database_id"`
		}
		if err := json.Unmarshal(b, &db); err != nil || db.DatabaseID == "" {
			return fmt.Errorf("tenant %d: create_database returned no database_id: %s", i, b)
		}
		dbs[i] = db.DatabaseID
		return nil
	})
	return dbs, err
}

// connect opens one MCP session (Start and Initialize). The SSE stream lives until life ends
// or the client is closed; ctx bounds the handshake.
func connect(ctx, life context.Context, tr, base, token string, hc *http.Client, log *slog.Logger) (*client.Client, error) {
	auth := map[string]string{"Authorization": "Bearer " + token}
	var c *client.Client
	var err error
	if tr == "sse" {
		c, err = client.NewSSEMCPClient(base+"/sse", transport.WithHeaders(auth), transport.WithHTTPClient(hc), transport.WithSSELogger(log))
	} else {
		c, err = client.NewStreamableHttpClient(base+"/mcp", transport.WithHTTPHeaders(auth), transport.WithHTTPBasicClient(hc), transport.WithHTTPLogger(log))
	}
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The SSE transport's stream lives as long as the context given to Start.
	if err := c.Start(life); err != nil {
		return c, fmt.Errorf("start: %w", err)
	}
	var init mcp.InitializeRequest
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "neonguard-load", Version: "1"}
	if _, err := c.Initialize(cctx, init); err != nil {
		return c, fmt.Errorf("initialize: %w", err)
	}
	return c, nil
}

func closeAll(cs []*client.Client) {
	_ = forEach(context.Background(), len(cs), 32, func(_ context.Context, i int) error {
		if cs[i] != nil {
			_ = cs[i].Close()
		}
		return nil
	})
}

// forEach runs fn for 0..n-1, at most par at once, and returns the first error; the others are
// then cancelled.
func forEach(ctx context.Context, n, par int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// sessionResult holds one session's measured calls.
type sessionResult struct {
	ok      map[string][]time.Duration // by tool
	failed  map[string][]time.Duration
	codes   map[string]int
	samples map[string]string
}

// runSession calls the read-only tools in turn until stopAt and records the calls that start
// at or after measureFrom; onMeasure runs before the first such call.
func runSession(ctx context.Context, c *client.Client, tools []loadTool, interval time.Duration, n, sessions int, db string, measureFrom, stopAt time.Time, onMeasure func()) sessionResult {
	r := sessionResult{ok: map[string][]time.Duration{}, failed: map[string][]time.Duration{},
		codes: map[string]int{}, samples: map[string]string{}}
	reqs := make([]mcp.CallToolRequest, len(tools))
	for i, t := range tools {
		reqs[i].Params.Name = t.name
		if t.needs {
			reqs[i].Params.Arguments = map[string]any{"database_id": db}
		}
	}
	// Paced sessions call every interval, their phases spread evenly over it.
	next := time.Now().Add(time.Duration(float64(interval) * float64(n) / float64(sessions)))
	for i := n; ctx.Err() == nil; i++ { // start each session at a different tool
		req := reqs[i%len(reqs)]
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return r
				case <-time.After(d):
				}
			}
			next = next.Add(interval) // a late call does not shift the schedule
		}
		start := time.Now()
		if !start.Before(stopAt) {
			break
		}
		measured := !start.Before(measureFrom)
		if measured {
			onMeasure()
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		res, err := c.CallTool(cctx, req)
		lat := time.Since(start)
		cancel()
		if !measured || ctx.Err() != nil {
			continue
		}
		code, msg := "", ""
		switch {
		case err != nil:
			code, msg = "TRANSPORT", err.Error()
		case res.IsError:
			code, msg = resultError(res)
		}
		if code == "" {
			r.ok[req.Params.Name] = append(r.ok[req.Params.Name], lat)
			continue
		}
		r.failed[req.Params.Name] = append(r.failed[req.Params.Name], lat)
		r.codes[code]++
		if _, ok := r.samples[code]; !ok {
			r.samples[code] = req.Params.Name + ": " + msg
		}
	}
	return r
}

// resultError returns the code and message of an isError result (neonguard's JSON error body).
func resultError(res *mcp.CallToolResult) (code, msg string) {
	for _, c := range res.Content {
		tc, ok := c.(mcp.TextContent)
		if !ok {
			continue
		}
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal([]byte(tc.Text), &body) == nil && body.Error.Code != "" {
			return body.Error.Code, body.Error.Message
		}
		return "TOOL_ERROR", tc.Text
	}
	return "TOOL_ERROR", "isError result without text"
}

func (rep *Report) aggregate(results []sessionResult, tools []loadTool) {
	var all, allFailed []time.Duration
	byTool := map[string][]time.Duration{}
	failedByTool := map[string]int{}
	rep.ErrorCodes, rep.ErrorSamples = map[string]int{}, map[string]string{}
	for _, r := range results {
		for tool, ds := range r.ok {
			all = append(all, ds...)
			byTool[tool] = append(byTool[tool], ds...)
		}
		for tool, ds := range r.failed {
			allFailed = append(allFailed, ds...)
			failedByTool[tool] += len(ds)
		}
		for code, n := range r.codes {
			rep.ErrorCodes[code] += n
			if _, ok := rep.ErrorSamples[code]; !ok {
				rep.ErrorSamples[code] = r.samples[code]
			}
		}
	}
	rep.Calls, rep.Errors = len(all), len(allFailed)
	if rep.Duration > 0 {
		rep.CallsPerS = round(float64(rep.Calls)/rep.Duration, 1)
	}
	rep.Latency = stats(all)
	if len(allFailed) > 0 {
		s := stats(allFailed)
		rep.ErrorLatency = &s
	}
	rep.Tools = map[string]toolStats{}
	for _, t := range tools {
		rep.Rotation = append(rep.Rotation, t.name)
		rep.Tools[t.name] = toolStats{Calls: len(byTool[t.name]), Errors: failedByTool[t.name], Stats: stats(byTool[t.name])}
	}
}

// stats sorts ds and returns its percentiles (nearest rank) in milliseconds.
func stats(ds []time.Duration) latencyStats {
	if len(ds) == 0 {
		return latencyStats{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return latencyStats{P50: ms(pct(0.50)), P90: ms(pct(0.90)), P99: ms(pct(0.99)), Max: ms(ds[len(ds)-1]),
		Mean: ms(sum / time.Duration(len(ds)))}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (rep *Report) notes() []string {
	var n []string
	if rep.Mode == "child" {
		n = append(n, "server: a child process of this binary on loopback; local emulator with its API only (local.postgres=off), so reads never reach a real Postgres")
		n = append(n, fmt.Sprintf("the load generator (GOMAXPROCS %d) and the server (default GOMAXPROCS = %d CPUs) run on the same %d CPUs and compete for them: latencies include the client's own scheduling",
			rep.Client.GOMAXPROCS, rep.Client.NumCPU, rep.Client.NumCPU))
		n = append(n, "the server logs every call at info (JSON to a file) and writes an audit row to SQLite, as in production")
	}
	n = append(n, "latency is measured client side, from the call until its result is decoded; calls that started during the warm-up are not counted")
	if rep.OfferedRate > 0 {
		n = append(n, "paced sessions keep their schedule: a call that starts late (the previous one was slow) is timed from its actual start")
	}
	if rep.Server.PeakRSSBytes > 0 {
		n = append(n, "peak RSS is the server's VmHWM over its whole life (start-up and setup included)")
	}
	return n
}

// perCallCPU derives the CPU a call of each process from the window's CPU time.
func (rep *Report) perCallCPU() {
	n := float64(rep.Calls + rep.Errors)
	if n == 0 {
		return
	}
	if rep.Server.CPUSeconds > 0 {
		perCall := rep.Server.CPUSeconds / n
		rep.Server.CPUPerCallMS = round(1000*perCall, 3)
		rep.Server.AloneCallsPerS = round(float64(rep.Client.NumCPU)/perCall, 0)
	}
	if rep.Client.CPUSeconds > 0 {
		rep.Client.CPUPerCallMS = round(1000*rep.Client.CPUSeconds/n, 3)
	}
}

func (rep *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	tr := map[string]string{"streamable": "Streamable HTTP (/mcp)", "sse": "SSE (/sse + /message)"}[rep.Transport]
	fmt.Fprintf(&b, "neonguard load: %d sessions over %d tenants, %s, %s\n", rep.Sessions, rep.Tenants, tr, rep.URL)
	fmt.Fprintf(&b, "backend: %s\n", rep.Backend)
	if rep.OfferedRate > 0 {
		fmt.Fprintf(&b, "offered load: %.1f calls/s in all, evenly paced\n", rep.OfferedRate)
	} else {
		fmt.Fprintf(&b, "offered load: each session calls as fast as it can (closed loop: latency ≈ sessions / throughput)\n")
	}
	fmt.Fprintf(&b, "measured %.1f s after a %.1f s warm-up; %d CPUs, load generator GOMAXPROCS %d\n\n",
		rep.Duration, rep.Warmup, rep.Client.NumCPU, rep.Client.GOMAXPROCS)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "calls\t%d\t(%.1f calls/s)\n", rep.Calls, rep.CallsPerS)
	fmt.Fprintf(tw, "errors\t%d\t%s\n", rep.Errors, errorSummary(rep.ErrorCodes))
	l := rep.Latency
	fmt.Fprintf(tw, "latency\tp50 %.2f ms\tp90 %.2f ms\tp99 %.2f ms\tmax %.2f ms\tmean %.2f ms\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	if e := rep.ErrorLatency; e != nil {
		fmt.Fprintf(tw, "failed calls\tp50 %.2f ms\tp90 %.2f ms\tp99 %.2f ms\tmax %.2f ms\tmean %.2f ms\n", e.P50, e.P90, e.P99, e.Max, e.Mean)
	}
	if rep.Server.PeakRSSBytes > 0 {
		fmt.Fprintf(tw, "server RSS\tpeak %s\tat end %s\t(pid %d)\n", fmtMB(rep.Server.PeakRSSBytes), fmtMB(rep.Server.EndRSSBytes), rep.Server.PID)
	} else {
		fmt.Fprintf(tw, "server RSS\tunknown\t%s\n", rep.Server.RSSError)
	}
	if rep.Server.CPUSeconds > 0 || rep.Client.CPUSeconds > 0 {
		fmt.Fprintf(tw, "CPU time\tserver %.1f s\tload generator %.1f s\t(of %.1f CPU-s available)\n",
			rep.Server.CPUSeconds, rep.Client.CPUSeconds, rep.Duration*float64(rep.Client.NumCPU))
	}
	if rep.Server.CPUPerCallMS > 0 {
		fmt.Fprintf(tw, "CPU a call\tserver %.3f ms\tload generator %.3f ms\t(the server alone on %d CPUs: about %.0f calls/s)\n",
			rep.Server.CPUPerCallMS, rep.Client.CPUPerCallMS, rep.Client.NumCPU, rep.Server.AloneCallsPerS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tcalls\terrors\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, name := range rep.Rotation {
		s := rep.Tools[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name, s.Calls, s.Errors, s.Stats.P50, s.Stats.P90, s.Stats.P99, s.Stats.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, code := range slices.Sorted(maps.Keys(rep.ErrorSamples)) {
		fmt.Fprintf(&b, "error %s, e.g. %s\n", code, rep.ErrorSamples[code])
	}
	b.WriteString("\n")
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func errorSummary(codes map[string]int) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		parts = append(parts, fmt.Sprintf("%s %d", c, codes[c]))
	}
	return strings.Join(parts, ", ")
}

func fmtMB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// procRSS returns a process's peak (VmHWM) and current (VmRSS) resident set size (Linux).
func procRSS(pid int) (hwm, rss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("pid %d: %s: %w", pid, line, err)
		}
		if key == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("pid %d: no VmHWM in /proc/%d/status", pid, pid)
	}
	return hwm, rss, nil
}

// ProcCPUSeconds returns a process's user+system CPU time in seconds (Linux; clock ticks of
// 1/100 s), for benchmarks that measure a child process (cmd/neonguard BenchmarkStdioServerCPU).
func ProcCPUSeconds(pid int) (float64, error) { return procCPUSeconds(pid) }

// procCPUSeconds returns a process's user+system CPU time (Linux; clock ticks of 1/100 s).
func procCPUSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its closing parenthesis start
	// at field 3 (state), so utime and stime (14 and 15) are at 11 and 12.
	_, rest, ok := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / 100, nil
}

// loadTokens reads the tokens of --url mode.
func loadTokens(file string) ([]string, error) {
	var raw string
	src := "env " + TokensEnv
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		raw, src = string(b), "--token-file "+file
	} else {
		raw = strings.ReplaceAll(os.Getenv(TokensEnv), ",", "\n")
	}
	var tokens []string
	for line := range strings.SplitSeq(raw, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("--url needs bearer tokens: none in %s (give --token-file FILE, one token per line, or %s=tok1,tok2)", src, TokensEnv)
	}
	return tokens, nil
}

// baseURL trims a trailing slash and a trailing endpoint path from u.
func baseURL(u string) string {
	u = strings.TrimRight(u, "/")
	for _, p := range []string{"/mcp", "/sse"} {
		u = strings.TrimSuffix(u, p)
	}
	return u
}

// loadServer is the child server process of the default mode.
type loadServer struct {
	cmd     *exec.Cmd
	dir     string
	logPath string
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
	target  loadTarget
}

// startLoadServer creates the temp dir, config, tenants and tokens, then starts the server and
// waits until it is ready. On error the returned server (when not nil) must still be stopped.
func startLoadServer(ctx context.Context, o Options, log *slog.Logger) (*loadServer, error) {
	bin := o.ServerBinary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this binary to start the server: %w", err)
		}
		bin = exe
	}
	dir, err := os.MkdirTemp("", "neonguard-load-")
	if err != nil {
		return nil, err
	}
	s := &loadServer{dir: dir, logPath: filepath.Join(dir, "server.log")}
	cfgPath := filepath.Join(dir, "neonguard.yaml")
	if err := writeLoadConfig(cfgPath); err != nil {
		return s, err
	}
	env := loadServerEnv(dir, cfgPath)

	tenants := min(o.Tenants, o.Sessions)
	log.Info("creating tenants and tokens", "tenants", tenants, "tier", loadTier, "data_dir", dir)
	for i := range tenants {
		name := fmt.Sprintf("load-%03d", i)
		if _, err := runChild(ctx, bin, env, "tenant", "create", name, "--tier", loadTier); err != nil {
			return s, err
		}
		out, err := runChild(ctx, bin, env, "tenant", "token", "create", name)
		if err != nil {
			return s, err
		}
		// It prints the secret alone on stdout.
		secret := strings.TrimSpace(out)
		if secret == "" || strings.ContainsAny(secret, " \n") {
			return s, fmt.Errorf("tenant token create %s: stdout is not a secret alone:\n%s", name, out)
		}
		s.target.tokens = append(s.target.tokens, secret)
	}

	logf, err := os.Create(s.logPath)
	if err != nil {
		return s, err
	}
	defer logf.Close()
	// Not CommandContext: on Ctrl-C the server is stopped by stop (SIGTERM, then a wait).
	s.cmd = exec.Command(bin, "serve", "--transport", "http", "--listen", "127.0.0.1:0")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return s, fmt.Errorf("start server %s: %w", bin, err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	s.target.pid = s.cmd.Process.Pid
	log.Info("started server", "pid", s.target.pid, "binary", bin, "log", s.logPath)

	addr, err := s.waitListening(ctx, 60*time.Second)
	if err != nil {
		return s, err
	}
	s.target.url = "http://" + addr
	if err := waitReady(ctx, s.target.url, s.exited); err != nil {
		return s, fmt.Errorf("server not ready: %w%s", err, s.logTail())
	}
	log.Info("server ready", "url", s.target.url)
	return s, nil
}

// writeLoadConfig writes a config with tier "load": the free tier with no rate limit.
func writeLoadConfig(path string) error {
	free, err := policy.Default().Tier("free")
	if err != nil {
		return err
	}
	free.CallsPerMinute, free.CallBurst = 0, 0
	free.Name = ""
	b, err := yaml.Marshal(map[string]any{"policy": map[string]any{"tiers": map[string]policy.Tier{loadTier: free}}})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// loadServerEnv is the child's environment: this one without neonguard's and Neon's settings
// (Neon credentials would select the neon backend), except the HTTP tuning knobs, the call
// timeout and the log level, plus what the load test needs.
func loadServerEnv(dir, cfgPath string) []string {
	var env []string
	level := "info"
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "NEONGUARD_LOG_LEVEL":
			level = v
		case strings.HasPrefix(k, "NEONGUARD_HTTP_"), k == "NEONGUARD_CALL_TIMEOUT":
			env = append(env, kv)
		case strings.HasPrefix(k, "NEONGUARD_"), strings.HasPrefix(k, "NEON_"):
		default:
			env = append(env, kv)
		}
	}
	env = append(env,
		"NEONGUARD_CONFIG="+cfgPath,
		"NEONGUARD_DATA_DIR="+dir,
		"NEONGUARD_BACKEND=local",
		"NEONGUARD_LOCAL_POSTGRES=off",
		"NEONGUARD_LOG_FORMAT=json",
		"NEONGUARD_LOG_LEVEL="+level,
	)
	if os.Getenv("NEONGUARD_HTTP_SHUTDOWN_GRACE") == "" {
		env = append(env, "NEONGUARD_HTTP_SHUTDOWN_GRACE=5s")
	}
	return env
}

// runChild runs the binary to completion and returns its stdout.
func runChild(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("neonguard %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// waitListening reads the server's log until it names its address.
func (s *loadServer) waitListening(ctx context.Context, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr := listenAddr(s.logPath); addr != "" {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-s.exited:
			return "", fmt.Errorf("server exited before listening: %v%s", s.waitErr, s.logTail())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("server did not listen within %s%s", limit, s.logTail())
		}
	}
}

// listenAddr finds the "serving MCP over HTTP" line of a JSON log.
func listenAddr(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving MCP over HTTP" && line.Addr != "" {
			return line.Addr
		}
	}
	return ""
}

func waitReady(ctx context.Context, base string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return last
}

func (s *loadServer) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "\nserver log (last lines):\n" + strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// stop ends the server with SIGTERM (SIGKILL after 15 s) and removes the temp dir.
func (s *loadServer) stop(log *slog.Logger) {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			log.Warn("server did not stop after SIGTERM; killing it", "pid", s.cmd.Process.Pid)
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		log.Info("server stopped", "pid", s.cmd.Process.Pid)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		log.Warn("remove temp dir", "dir", s.dir, "err", err)
	}
}
