package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// duplicateKey returns the first key that appears twice in one JSON object of line.
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() (string, error)
	walk = func() (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				key := fmt.Sprint(k)
				if seen[key] {
					return key, nil
				}
				seen[key] = true
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token()
			return "", err
		case json.Delim('['):
			for dec.More() {
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token()
			return "", err
		}
		return "", nil
	}
	return walk()
}

// TestDataPlaneLogLinesHaveNoRepeatedKeys: the emulator's data plane and the PostgreSQL
// toolkit under it log through loggers derived from the app's; no JSON line may carry a key
// twice (it did: "component" was set by the app and again by the data plane).
func TestDataPlaneLogLinesHaveNoRepeatedKeys(t *testing.T) {
	pgtest.Require(t)
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config.Default()
	cfg.DataDir = pgtest.ReachableDir(t)
	cfg.Local.Postgres = "on"
	_, closeEmu, err := app.NewEmulator(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// The data plane makes its template in the background: wait for initdb's line.
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(buf.String(), `"initdb done"`); {
		if time.Now().After(deadline) {
			break // the check below reports it
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := closeEmu(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	toolkit := 0
	for _, line := range lines {
		dup, err := duplicateKey(line)
		if err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		if dup != "" {
			t.Errorf("key %q twice: %s", dup, line)
		}
		if strings.Contains(line, `"initdb done"`) {
			toolkit++
		}
	}
	if toolkit == 0 {
		t.Fatalf("no line from the PostgreSQL toolkit among %d lines", len(lines))
	}
}
