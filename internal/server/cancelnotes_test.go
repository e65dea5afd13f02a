package server

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		kind msgKind
		id   string
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`, requestMessage, `7`},
		// The TypeScript SDK writes the id last.
		{`{"method":"tools/call","params":{"name":"x","arguments":{"id":1}},"jsonrpc":"2.0","id":"a-1"}`, requestMessage, `"a-1"`},
		{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"r"}}`, cancelMessage, `7`},
		{`{"params":{"reason":"r","requestId":"x"},"method":"notifications/cancelled","jsonrpc":"2.0"}`, cancelMessage, `"x"`},
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`, answerMessage, `7`},
		{`{"jsonrpc":"2.0","result":{"id":3},"id":7}`, answerMessage, `7`},
		{`{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"m"}}` + "\n", answerMessage, `7`},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`, answerMessage, `null`},
		// mcp-go's own encoding, read without a decoder, and its near misses, read with one.
		{`{"jsonrpc":"2.0","id":-3,"result":{}}`, answerMessage, `-3`},
		{`{"jsonrpc":"2.0","id":"a,b","result":{}}`, answerMessage, `"a,b"`},
		{`{"jsonrpc":"2.0","id":"a\"b","result":{}}`, answerMessage, `"a\"b"`},
		{`{"jsonrpc":"2.0","id":1.5,"result":{}}`, answerMessage, `1.5`},
		{`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`, requestMessage, `4`},
		{`{"jsonrpc":"2.0","id":4,"method":"notifications/cancelled","params":{"requestId":2}}`, cancelMessage, `2`},
		{`{"jsonrpc":"2.0","id":4,"params":{},"method":"ping"}`, requestMessage, `4`},
		{`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`, otherMessage, ``},
		{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":"no"}`, otherMessage, ``},
		{`{"jsonrpc":"2.0","id":2,"method":"ping","params":[1]}`, requestMessage, `2`},
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, otherMessage, ``},
		{`{"jsonrpc":"2.0","id":`, otherMessage, ``},
		{`not json "id"`, otherMessage, ``},
	} {
		if kind, id := classify([]byte(tc.msg)); kind != tc.kind || id != tc.id {
			t.Errorf("classify(%s) = %v %q, want %v %q", tc.msg, kind, id, tc.kind, tc.id)
		}
	}
}

func TestCancelNotes(t *testing.T) {
	n := newCancelNotes()
	n.cancel("1") // not in flight: nothing noted
	n.start("1")
	if n.answer("1") {
		t.Error("a call cancelled before it started was dropped")
	}
	n.start("2")
	n.cancel("2")
	if !n.answer("2") || !n.empty() {
		t.Error("a cancelled call's answer was not dropped, or its note stayed")
	}
	n.cancel("2") // after the answer: nothing noted, so the id's next use is answered
	n.start("2")
	if n.answer("2") {
		t.Error("a late cancellation took the answer of the id's next use")
	}
	for i := range maxCancelled + 10 {
		n.start(fmt.Sprint(i))
	}
	if len(n.calls) > maxCancelled || len(n.calls) != len(n.order) {
		t.Errorf("%d calls followed (%d in order), bound %d", len(n.calls), len(n.order), maxCancelled)
	}
	n.cancel(fmt.Sprint(maxCancelled + 9))
	if !n.answer(fmt.Sprint(maxCancelled + 9)) {
		t.Error("the newest call was forgotten")
	}
}

type oneTenant struct{}

func (oneTenant) Authenticate(context.Context, string) (identity.Principal, error) {
	return identity.Principal{TenantID: "t"}, nil
}

type stuckGuard struct {
	guard.UseCases
	started chan struct{}
}

func (g stuckGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) {
	g.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (h *HTTP) cancelSessions() int {
	h.cancels.mu.Lock()
	defer h.cancels.mu.Unlock()
	return len(h.cancels.sessions)
}

// An SSE session's notes are forgotten when its stream ends, even with calls unanswered; a
// Streamable HTTP session keeps notes only while a call is in flight.
func TestCancelNotesAreForgottenWithTheirSession(t *testing.T) {
	g := stuckGuard{started: make(chan struct{}, 4)}
	h := NewHTTP(New(Options{Guard: g, CallTimeout: 500 * time.Millisecond}), HTTPOptions{Auth: oneTenant{}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post := func(path, session, body string) (status int, sid string) {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Mcp-Session-Id")
	}
	call := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"describe_limits","arguments":{}}}`

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sse", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	endpoint := ""
	for endpoint == "" && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			endpoint = data
		}
	}
	if s, _ := post(endpoint, "", call); s != http.StatusAccepted {
		t.Fatalf("POST %s: %d", endpoint, s)
	}
	<-g.started
	if n := h.cancelSessions(); n != 1 {
		t.Fatalf("%d sessions with notes during the call, want 1", n)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.cancelSessions() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.cancelSessions(); n != 0 {
		t.Errorf("%d sessions with notes after the SSE stream ended", n)
	}

	// Streamable HTTP: the call times out (the guard never answers) and its notes go with it.
	_, sid := post("/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	status := make(chan int, 1)
	go func() { // not post: t.Fatal belongs to the test's goroutine
		req, _ := http.NewRequest("POST", srv.URL+"/mcp", strings.NewReader(call))
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	<-g.started
	if n := h.cancelSessions(); n != 1 {
		t.Errorf("%d sessions with notes during the Streamable HTTP call, want 1", n)
	}
	if s := <-status; s != http.StatusOK {
		t.Fatalf("the call: %d", s)
	}
	if n := h.cancelSessions(); n != 0 {
		t.Errorf("%d sessions with notes after the Streamable HTTP call ended", n)
	}
}
