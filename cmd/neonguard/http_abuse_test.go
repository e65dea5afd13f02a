package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// procStats are a process's memory and open file descriptors, from /proc.
type procStats struct {
	rssKiB, hwmKiB int // VmRSS, VmHWM
	fds            int
}

func readProcStats(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		switch k {
		case "VmRSS":
			st.rssKiB = n
		case "VmHWM":
			st.hwmKiB = n
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.fds = len(fds)
	return st, nil
}

// latencies summarises call durations.
type latencies []time.Duration

func (l latencies) String() string {
	if len(l) == 0 {
		return "no calls"
	}
	s := slices.Clone(l)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%d calls: p50 %s, p95 %s, max %s", len(s), q(0.5).Round(10*time.Microsecond),
		q(0.95).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// TestBinaryHTTPAbuseIsContained is the bounded abuse test of the hosted endpoint: one tenant
// opens streams, sessions and slow bodies up to and past its caps and floods requests, while a
// second tenant keeps calling a tool. It asserts outcomes: every call of the second tenant
// succeeds, the first gets 429 past each cap, slow bodies get 408 and their connections are
// closed, and the server's open file descriptors come back down once the abuse stops. It logs
// the second tenant's latency (before and during the abuse) and the server's RSS and file
// descriptors. NEONGUARD_ABUSE_SCALE=N multiplies the attempts past the caps and the flood.
func TestBinaryHTTPAbuseIsContained(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to measure the server")
	}
	scale := 1
	if s := os.Getenv("NEONGUARD_ABUSE_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("NEONGUARD_ABUSE_SCALE=%q: want a positive integer", s)
		}
		scale = n
	}
	const (
		maxStreams  = 8
		maxRequests = 8
		maxSessions = 16
	)
	extra := 8 * scale
	// The quiet tenant is on pro, made unlimited here so its own limit does not refuse the
	// steady calls this test makes; the noisy one is on free.
	cfg := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  tiers:\n    pro:\n      calls_per_minute: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &httpEnv{bin: buildBinary(t)}
	e.env = hermeticEnv(
		"NEONGUARD_CONFIG="+cfg,
		"NEONGUARD_DATA_DIR="+t.TempDir(),
		"NEONGUARD_BACKEND=local",
		"NEONGUARD_LOCAL_POSTGRES=off",
		"NEONGUARD_LOCAL_OPERATION_DELAY=0s",
		"NEONGUARD_LOG_LEVEL=info",
		"NEONGUARD_HTTP_TENANT_MAX_STREAMS="+strconv.Itoa(maxStreams),
		"NEONGUARD_HTTP_TENANT_MAX_REQUESTS="+strconv.Itoa(maxRequests),
		"NEONGUARD_HTTP_TENANT_MAX_SESSIONS="+strconv.Itoa(maxSessions),
		"NEONGUARD_HTTP_BODY_READ_TIMEOUT=2s",
		// Enough request budget for the whole attack's attempts to reach the caps under test;
		// the flood at the end then exhausts it.
		"NEONGUARD_HTTP_REQUEST_RATE_FACTOR="+strconv.Itoa(4*scale),
	)
	_, noisy := e.tenantWithToken(t, "noisy", "free")
	_, quiet := e.tenantWithToken(t, "quiet", "pro")
	e.start(t)
	pid := e.cmd.Process.Pid

	// The quiet tenant: an mcp-go client over Streamable HTTP calling describe_limits.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	c, err := client.NewStreamableHttpClient(e.base+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + quiet}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	call := func() (time.Duration, error) {
		var req mcp.CallToolRequest
		req.Params.Name = "describe_limits"
		start := time.Now()
		res, err := c.CallTool(ctx, req)
		d := time.Since(start)
		if err == nil && res.IsError {
			err = fmt.Errorf("error result: %v", res.Content)
		}
		return d, err
	}
	var before latencies
	for range 100 {
		d, err := call()
		if err != nil {
			t.Fatalf("quiet tenant before the abuse: %v", err)
		}
		before = append(before, d)
		time.Sleep(10 * time.Millisecond)
	}
	// The baseline includes the quiet client's connection.
	base, err := readProcStats(pid)
	if err != nil {
		t.Fatal(err)
	}

	// Sample the server while the abuse runs (measurements, not assertions on time).
	var peak procStats
	var sampleMu sync.Mutex
	stopSampling := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := readProcStats(pid); err == nil {
				sampleMu.Lock()
				peak.rssKiB, peak.hwmKiB, peak.fds = max(peak.rssKiB, st.rssKiB), max(peak.hwmKiB, st.hwmKiB), max(peak.fds, st.fds)
				sampleMu.Unlock()
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	// The quiet tenant keeps calling throughout.
	var during latencies
	var quietErrs []error
	stopQuiet := make(chan struct{})
	quietDone := make(chan struct{})
	go func() {
		defer close(quietDone)
		for {
			select {
			case <-stopQuiet:
				return
			default:
			}
			d, err := call()
			if err != nil {
				quietErrs = append(quietErrs, err)
			}
			during = append(during, d)
			time.Sleep(10 * time.Millisecond) // a steady client, not a second flood
		}
	}()

	// 1. Streams up to and past the cap (SSE and GET /mcp on the noisy tenant's sessions).
	sid := e.initSession(t, noisy)
	var streams []stream
	streamStatus := map[int]int{}
	for i := range maxStreams + extra {
		var s stream
		if i%2 == 0 {
			s = e.openStream(t, "/sse", noisy, "")
		} else {
			s = e.openStream(t, "/mcp", noisy, sid)
		}
		streamStatus[s.resp.StatusCode]++
		if s.resp.StatusCode == http.StatusOK {
			streams = append(streams, s)
		} else {
			s.Close()
		}
	}
	if streamStatus[http.StatusOK] != maxStreams || streamStatus[http.StatusTooManyRequests] != extra {
		t.Errorf("%d streams with a cap of %d: %v, want %d×200 and %d×429", maxStreams+extra, maxStreams, streamStatus, maxStreams, extra)
	}

	// 2. Sessions up to and past the cap (one is already open).
	sessionStatus := map[int]int{}
	for range maxSessions - 1 + extra {
		sessionStatus[e.raw(t, "POST", "/mcp", noisy, "", initializeBody).status]++
	}
	if sessionStatus[http.StatusOK] != maxSessions-1 || sessionStatus[http.StatusTooManyRequests] != extra {
		t.Errorf("sessions with a cap of %d: %v, want %d×200 and %d×429", maxSessions, sessionStatus, maxSessions-1, extra)
	}

	// 3. Slow bodies up to and past the cap on open requests: the ones read time out (408),
	// the others are refused (429); every connection is closed.
	slow := slowBodies(t, e.base, noisy, maxRequests+extra, time.Minute)
	slowStatus := map[int]int{}
	for _, s := range slow {
		slowStatus[s]++
	}
	if slowStatus[http.StatusRequestTimeout] != maxRequests || slowStatus[http.StatusTooManyRequests] != extra {
		t.Errorf("%d slow bodies with a cap of %d: %v, want %d×408 and %d×429, each connection closed (negative: left open)",
			maxRequests+extra, maxRequests, slowStatus, maxRequests, extra)
	}

	// 4. A request flood: the budget runs out and the rest get 429.
	flood := map[int]int{}
	for i := range 300 * scale {
		flood[e.raw(t, "POST", "/mcp", noisy, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i+2)).status]++
	}
	if flood[http.StatusTooManyRequests] == 0 {
		t.Errorf("a flood of %d tools/list: %v, want 429s once the budget is spent", 300*scale, flood)
	}

	close(stopQuiet)
	<-quietDone
	if len(quietErrs) > 0 {
		t.Errorf("the quiet tenant's calls failed during the abuse: %d of %d, first: %v", len(quietErrs), len(during), quietErrs[0])
	}
	if len(during) == 0 {
		t.Error("the quiet tenant made no call during the abuse")
	}

	// The abuse stops: the streams close, and the server's descriptors come back down.
	for _, s := range streams {
		s.Close()
	}
	var after procStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		if after, err = readProcStats(pid); err != nil {
			t.Fatal(err)
		}
		if after.fds <= base.fds+8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stopSampling)
	<-samplerDone

	t.Logf("quiet tenant before the abuse: %s", before)
	t.Logf("quiet tenant during the abuse: %s", during)
	t.Logf("noisy tenant: streams %v, sessions %v, slow bodies %v, flood %v", streamStatus, sessionStatus, slowStatus, flood)
	t.Logf("server RSS: %d KiB before the abuse, %d KiB peak, %d KiB after; VmHWM %d KiB", base.rssKiB, peak.rssKiB, after.rssKiB, after.hwmKiB)
	t.Logf("server open fds: %d before the abuse, %d peak, %d after", base.fds, peak.fds, after.fds)

	if after.fds > base.fds+8 { // the test's own clients may keep a few idle keep-alive connections
		t.Errorf("the server holds %d file descriptors after the abuse, %d before", after.fds, base.fds)
	}
	// At the peak: the capped streams and slow bodies, the quiet client's and this test's own
	// connections; nothing grows with the refused attempts.
	if limit := base.fds + maxStreams + maxRequests + 16; peak.fds > limit {
		t.Errorf("the server held %d file descriptors at the peak, more than %d (%d before + the caps + 16)", peak.fds, limit, base.fds)
	}
}
