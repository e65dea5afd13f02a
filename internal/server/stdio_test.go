package server_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/server"
)

// The local server answers as its one tenant, through Call and over stdio, and refuses to be
// built without one.
func TestLocalServerIsItsTenant(t *testing.T) {
	if _, err := server.NewLocal(server.Options{Guard: &echoGuard{}}); err == nil {
		t.Fatal("a local server without a principal was built")
	}
	l, err := server.NewLocal(server.Options{Guard: &echoGuard{}, DefaultPrincipal: &identity.Principal{TenantID: "solo"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Call(t.Context(), "describe_limits", nil)
	if err != nil || res.IsError {
		t.Fatalf("describe_limits: %+v, %v", res, err)
	}
	if tier := res.Structured.(map[string]any)["tier"]; tier != "solo" {
		t.Fatalf("the call reached the guard as %v, want solo", tier)
	}
	res, err = l.Call(t.Context(), "checkpoint", map[string]any{"database_id": "x"})
	if err != nil || !res.IsError || !strings.Contains(res.Text, `"code":"INVALID_ARGUMENT"`) {
		t.Fatalf("checkpoint without a name: %+v, %v", res, err)
	}

	// Over stdio: initialize, then a call; the client closing stdin is a normal stop.
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"describe_limits","arguments":{}}}`,
	}, "\n") + "\n"
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- l.ServeStdio(context.Background(), inR, outW) }()
	go func() { _, _ = io.WriteString(inW, in) }()
	dec := json.NewDecoder(outR)
	for {
		var answer map[string]any
		if err := dec.Decode(&answer); err != nil {
			t.Fatal(err)
		}
		if answer["id"] != float64(2) {
			continue
		}
		if b, _ := json.Marshal(answer); !strings.Contains(string(b), `\"tier\":\"solo\"`) && !strings.Contains(string(b), `"tier":"solo"`) {
			t.Fatalf("stdio answer %s", b)
		}
		break
	}
	inW.Close()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if err := <-done; err != nil {
		t.Fatalf("ServeStdio after stdin closed: %v", err)
	}
}
