package server_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/server"
)

// cancellableGuard's describe_limits runs until its context ends, and says so.
type cancellableGuard struct {
	guard.UseCases
	started   chan struct{}
	cancelled chan struct{}
}

func (g *cancellableGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) {
	close(g.started)
	<-ctx.Done()
	close(g.cancelled)
	return nil, ctx.Err()
}

// Over stdio, notifications/cancelled cancels the running call's context, and the call's answer
// is not written (the specification: a cancelled request gets no response); the session goes
// on answering.
func TestStdioCancelledCallIsStoppedAndNotAnswered(t *testing.T) {
	g := &cancellableGuard{started: make(chan struct{}), cancelled: make(chan struct{})}
	l, err := server.NewLocal(server.Options{Guard: g, DefaultPrincipal: &identity.Principal{TenantID: "solo"}})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- l.ServeStdio(context.Background(), inR, outW) }()
	answers := make(chan map[string]any, 16)
	go func() {
		dec := json.NewDecoder(outR)
		for {
			var m map[string]any
			if dec.Decode(&m) != nil {
				close(answers)
				return
			}
			answers <- m
		}
	}()
	send := func(lines ...string) {
		t.Helper()
		if _, err := io.WriteString(inW, strings.Join(lines, "\n")+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	next := func() map[string]any {
		t.Helper()
		select {
		case m := <-answers:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
		return nil
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if m := next(); m["id"] != float64(1) {
		t.Fatalf("initialize answered %v", m)
	}
	send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"describe_limits","arguments":{}}}`)
	<-g.started
	send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user aborted"}}`)
	select {
	case <-g.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("notifications/cancelled did not cancel the call's context")
	}
	// The call has returned; give its answer time to be written, then ask something else.
	time.Sleep(200 * time.Millisecond)
	send(`{"jsonrpc":"2.0","id":8,"method":"ping"}`)
	for {
		m := next()
		if m["id"] == float64(7) {
			t.Fatalf("the cancelled call was answered: %v", m)
		}
		if m["id"] == float64(8) {
			break
		}
	}
	inW.Close()
	go func() {
		for range answers {
		}
	}()
	if err := <-done; err != nil {
		t.Fatalf("ServeStdio: %v", err)
	}
}
