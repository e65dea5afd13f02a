package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/config"
)

// TestTextLogsToAPipeOrFileHaveNoColour: --log-format text to anything but a terminal (a
// buffer, a file) is plain text.
func TestTextLogsToAPipeOrFileHaveNoColour(t *testing.T) {
	cfg := config.Default()
	cfg.Log.Format = "text"
	var buf bytes.Buffer
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []interface{ Write([]byte) (int, error) }{&buf, f} {
		g := &globals{flags: map[string]*string{}, stderr: w}
		g.logger(cfg).Warn("slow call", "tool", "checkpoint", "elapsed", 1500*time.Millisecond, "err", "boom")
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"pipe": buf.String(), "file": string(data)} {
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%s: ANSI escape in %q", name, out)
		}
		if !strings.Contains(out, "slow call") || !strings.Contains(out, "elapsed=1.5s") {
			t.Errorf("%s: %q", name, out)
		}
	}
}

// TestJSONLogDurationsAreDurationStrings: a time.Duration is written "1.5s", not 1500000000.
func TestJSONLogDurationsAreDurationStrings(t *testing.T) {
	cfg := config.Default()
	cfg.Log.Format = "json"
	var buf bytes.Buffer
	g := &globals{flags: map[string]*string{}, stderr: &buf}
	g.logger(cfg).With("component", "neon").Info("neon retry", "delay", 1500*time.Millisecond,
		"attempt", 2, "group", map[string]any{"n": 1})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line["delay"] != "1.5s" {
		t.Errorf("delay = %#v, want \"1.5s\": %s", line["delay"], buf.String())
	}
	if line["attempt"] != float64(2) {
		t.Errorf("attempt = %#v: other values must stay as they are", line["attempt"])
	}
}
