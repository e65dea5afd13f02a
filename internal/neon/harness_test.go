package neon

// The harness of the client's tests: a clock whose sleeps are instant, a client pointed at a
// handler, and the suite-wide scan for leaked secrets. Tests in package neon_test (those that
// drive the client against neontest.Fake) reach it through export_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Secrets the whole suite hands to the client or has the server echo back. TestMain fails the
// run if any of them shows up in a log line or a noted error.
const (
	testKey      = "tk-Secret-0a1b2c3d4e5f" // deliberately not napi_-shaped: only Client.scrub can hide it
	testPassword = "pw-Sup3rS3cret-7781"
	npgPassword  = "npg_AbCdEf123456"
)

var testSecrets = []string{testKey, testPassword, npgPassword}

// lockedBuffer collects every log line and noted error of the run.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	suiteLogs   lockedBuffer
	suiteErrors lockedBuffer
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, where := range []struct {
		name string
		text string
	}{{"log", suiteLogs.String()}, {"error", suiteErrors.String()}} {
		for _, s := range testSecrets {
			if strings.Contains(where.text, s) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret leaked into a %s line\n", where.name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// noteErr records err for the suite-wide secrets scan and returns it.
func noteErr(err error) error {
	if err != nil {
		fmt.Fprintln(&suiteErrors, err.Error())
	}
	return err
}

// fakeClock replaces time for the retry logic: sleeping advances it at once.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
	onWait func(d time.Duration) // optional, runs inside sleep
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	hook := c.onWait
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newTestClient starts h and returns a client for it whose sleeps are instant.
func newTestClient(t testing.TB, h http.Handler, mods ...func(*Config)) (*Client, *fakeClock) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	clk := &fakeClock{t: time.Now()}
	cfg := Config{
		BaseURL: srv.URL + "/api/v2",
		APIKey:  testKey,
		// No keep-alive: Go's transport silently replays a GET on a reused connection that
		// dropped, which would blur the attempt counts the tests assert.
		HTTPClient:           &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		Logger:               slog.New(slog.NewTextHandler(&suiteLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RequestsPerSecond:    1e6,
		ConsumptionPerMinute: 1e6,
		sleep:                clk.sleep,
		now:                  clk.now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg, "request_id": "req-" + strconv.Itoa(status)})
}

// dropConnection closes the connection without an answer: a lost response.
func dropConnection(t testing.TB, w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("response writer cannot hijack")
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

func newTeeLogger(a, b *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(a, b), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
