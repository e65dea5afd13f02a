package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/server"
)

// The cancelled call's answer is not sent over HTTP either (cancelled.go): over Streamable HTTP,
// whether the answer would be the POST's JSON body or the last event of the stream a progress
// notification opened on it, and over the legacy SSE transport's stream. Calls are named by
// their checkpoint's name ("a7": session a, request id 7).

// slowCheckpoints' checkpoint reports a step (a progress notification when the call asked for
// them), then runs until its context ends or release is closed.
type slowCheckpoints struct {
	guard.UseCases
	started chan string
	release chan struct{}

	mu        sync.Mutex
	cancelled map[string]chan struct{} // closed when that call's context ends
}

func newSlowCheckpoints() *slowCheckpoints {
	return &slowCheckpoints{started: make(chan string, 16), release: make(chan struct{}), cancelled: map[string]chan struct{}{}}
}

func (g *slowCheckpoints) ended(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancelled[name] == nil {
		g.cancelled[name] = make(chan struct{})
	}
	return g.cancelled[name]
}

func (g *slowCheckpoints) Checkpoint(ctx context.Context, in guard.CheckpointInput) (*guard.CheckpointResult, error) {
	progress.Step(ctx, "working on "+in.Name)
	g.started <- in.Name
	select {
	case <-ctx.Done():
		close(g.ended(in.Name))
		return nil, ctx.Err()
	case <-g.release:
		return &guard.CheckpointResult{DatabaseID: "db", Checkpoint: guard.Checkpoint{CheckpointID: "c-" + in.Name, Name: in.Name, CreatedAt: time.Now()}}, nil
	}
}

func (g *slowCheckpoints) waitStarted(t *testing.T, names ...string) {
	t.Helper()
	for range names {
		select {
		case <-g.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("the calls %v did not all start", names)
		}
	}
}

func (g *slowCheckpoints) wasCancelled(name string) bool {
	select {
	case <-g.ended(name):
		return true
	default:
		return false
	}
}

func (g *slowCheckpoints) waitCancelled(t *testing.T, name string) {
	t.Helper()
	select {
	case <-g.ended(name):
	case <-time.After(10 * time.Second):
		t.Fatalf("notifications/cancelled did not cancel %s's context", name)
	}
}

// checkpointCall is a tools/call of checkpoint named name; with a progress token when progress.
func checkpointCall(id int, name string, withProgress bool) string {
	meta := ""
	if withProgress {
		meta = fmt.Sprintf(`,"_meta":{"progressToken":"p-%s"}`, name)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"checkpoint","arguments":{"database_id":"db","name":%q}%s}}`, id, name, meta)
}

func cancelOf(id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"the user gave up"}}`, id)
}

// sessionPost is a Streamable HTTP POST /mcp of body on session, as harness.send makes it.
func (h *harness) sessionPost(ctx context.Context, token, session, body string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	return req
}

// postAsync sends a Streamable HTTP POST in the background and reads its whole answer (a
// stream's events included).
func (h *harness) postAsync(token, session, body string) <-chan answer {
	return answerAsync(func() (*http.Response, error) {
		return http.DefaultClient.Do(h.sessionPost(context.Background(), token, session, body))
	})
}

// answerAsync sends a request in the background and reads its whole answer.
func answerAsync(send func() (*http.Response, error)) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		resp, err := send()
		if err != nil {
			ch <- answer{status: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- answer{resp.StatusCode, resp.Header, string(b)}
	}()
	return ch
}

func wait(t *testing.T, what string, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
	return answer{}
}

// rpcMessages reads the JSON-RPC messages of a body: one JSON object, or SSE events.
func rpcMessages(t *testing.T, body string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if data, ok := strings.CutPrefix(line, "data:"); ok {
			line = strings.TrimSpace(data)
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// wantAnswered checks that a is a call's successful answer (not a tool error) for request id.
func wantAnswered(t *testing.T, what string, a answer, id int) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, a.status, a.body)
	}
	for _, m := range rpcMessages(t, a.body) {
		if m["id"] == float64(id) && m["result"] != nil {
			if res, _ := m["result"].(map[string]any); res["isError"] == true {
				t.Errorf("%s: a tool error: %v", what, res)
			}
			return
		}
	}
	t.Errorf("%s: no answer with id %d in %q", what, id, a.body)
}

// wantNoAnswer checks that no message of a answers request id.
func wantNoAnswer(t *testing.T, what string, a answer, id int) {
	t.Helper()
	for _, m := range rpcMessages(t, a.body) {
		if m["id"] == float64(id) && m["method"] == nil {
			t.Errorf("%s: the cancelled call was answered: %v", what, m)
		}
	}
}

// Over Streamable HTTP with the answer in application/json: the cancelled call's POST gets 202
// and no body (no request of it needs an answer any more); another call of the same session
// and the same id in another session are answered.
func TestStreamableCancelledCallIsNotAnswered(t *testing.T) {
	g := newSlowCheckpoints()
	h := newHarness(t, func(o *server.Options, _ *server.HTTPOptions) { o.Guard = g })
	sa, sb := h.initialize(t, "tok-a"), h.initialize(t, "tok-a")

	a7 := h.postAsync("tok-a", sa, checkpointCall(7, "a7", false))
	g.waitStarted(t, "a7")
	a8 := h.postAsync("tok-a", sa, checkpointCall(8, "a8", false))
	b7 := h.postAsync("tok-a", sb, checkpointCall(7, "b7", false))
	g.waitStarted(t, "a8", "b7")

	if a := h.send(t, "POST", "/mcp", "tok-a", sa, cancelOf(7)); a.status != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: %d %s", a.status, a.body)
	}
	g.waitCancelled(t, "a7")
	got := wait(t, "a7", a7)
	if got.status != http.StatusAccepted || got.body != "" || got.header.Get("Content-Type") != "" {
		t.Errorf("the cancelled call's POST: %d %q %q; want 202 with no body", got.status, got.header.Get("Content-Type"), got.body)
	}
	wantNoAnswer(t, "a7", got, 7)

	close(g.release)
	wantAnswered(t, "a8 (same session)", wait(t, "a8", a8), 8)
	wantAnswered(t, "b7 (same id, another session)", wait(t, "b7", b7), 7)
	if g.wasCancelled("a8") || g.wasCancelled("b7") {
		t.Error("the cancellation reached another call")
	}

	// A cancellation after the answer changes nothing, and the id's next use is answered.
	if a := h.send(t, "POST", "/mcp", "tok-a", sa, cancelOf(8)); a.status != http.StatusAccepted {
		t.Fatalf("late notifications/cancelled: %d %s", a.status, a.body)
	}
	wantAnswered(t, "tools/list after a late cancellation", h.send(t, "POST", "/mcp", "tok-a", sa,
		`{"jsonrpc":"2.0","id":8,"method":"tools/list"}`), 8)
}

// Over Streamable HTTP once a progress notification turned the POST's answer into an SSE
// stream: the stream ends without the cancelled call's answer.
func TestStreamableCancelledStreamEndsWithoutTheAnswer(t *testing.T) {
	g := newSlowCheckpoints()
	h := newHarness(t, func(o *server.Options, _ *server.HTTPOptions) { o.Guard = g })
	sa, sb := h.initialize(t, "tok-a"), h.initialize(t, "tok-a")

	resp, err := http.DefaultClient.Do(h.sessionPost(t.Context(), "tok-a", sa, checkpointCall(7, "a7", true)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	g.waitStarted(t, "a7")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("the call's answer: %d %q; want a stream", resp.StatusCode, ct)
	}
	rest := make(chan answer, 1)
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	for err == nil && !strings.HasPrefix(first, "data:") {
		first, err = br.ReadString('\n')
	}
	if err != nil || !strings.Contains(first, "notifications/progress") {
		t.Fatalf("the stream's first event: %q %v", first, err)
	}
	go func() {
		b, _ := io.ReadAll(br)
		rest <- answer{status: resp.StatusCode, body: string(b)}
	}()

	a8 := h.postAsync("tok-a", sa, checkpointCall(8, "a8", false))
	b7 := h.postAsync("tok-a", sb, checkpointCall(7, "b7", true))
	g.waitStarted(t, "a8", "b7")
	if a := h.send(t, "POST", "/mcp", "tok-a", sa, cancelOf(7)); a.status != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: %d %s", a.status, a.body)
	}
	g.waitCancelled(t, "a7")
	wantNoAnswer(t, "a7's stream", wait(t, "a7's stream to end", rest), 7)

	close(g.release)
	wantAnswered(t, "a8 (same session)", wait(t, "a8", a8), 8)
	b := wait(t, "b7", b7)
	wantAnswered(t, "b7 (same id, another session, streamed)", b, 7)
	if !strings.Contains(b.body, "event: message") {
		t.Errorf("b7 was not streamed: %q", b.body)
	}
}

// sseSession is a client of the legacy SSE transport, reading its stream's messages.
type sseSession struct {
	h        *harness
	endpoint string
	msgs     chan map[string]any
	seen     []map[string]any
}

func (h *harness) openSSESession(t *testing.T, token string) *sseSession {
	t.Helper()
	resp := h.openGET(t, "/sse", token, "", "")
	br := bufio.NewReader(resp.Body)
	s := &sseSession{h: h, endpoint: readEndpointEvent(t, br), msgs: make(chan map[string]any, 64)}
	go func() {
		defer close(s.msgs)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
				var m map[string]any
				if json.Unmarshal([]byte(strings.TrimSpace(data)), &m) == nil {
					s.msgs <- m
				}
			}
		}
	}()
	s.post(t, token, initBody)
	s.next(t, 1)
	s.post(t, token, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s
}

func (s *sseSession) post(t *testing.T, token, body string) {
	t.Helper()
	if a := s.h.send(t, "POST", s.endpoint, token, "", body); a.status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", s.endpoint, a.status, a.body)
	}
}

// next waits for the answer to request id, keeping every message seen.
func (s *sseSession) next(t *testing.T, id int) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("the stream ended before the answer to %d", id)
			}
			s.seen = append(s.seen, m)
			if m["id"] == float64(id) && m["method"] == nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no answer to %d on the stream", id)
		}
	}
}

// Over the legacy SSE transport: the cancelled call's answer never reaches the stream; other
// calls of the session and the same id on another stream are answered.
func TestSSECancelledCallIsNotAnswered(t *testing.T) {
	g := newSlowCheckpoints()
	h := newHarness(t, func(o *server.Options, _ *server.HTTPOptions) { o.Guard = g })
	sa, sb := h.openSSESession(t, "tok-a"), h.openSSESession(t, "tok-a")

	sa.post(t, "tok-a", checkpointCall(7, "a7", true))
	g.waitStarted(t, "a7")
	sa.post(t, "tok-a", checkpointCall(8, "a8", false))
	sb.post(t, "tok-a", checkpointCall(7, "b7", false))
	g.waitStarted(t, "a8", "b7")
	sa.post(t, "tok-a", cancelOf(7))
	g.waitCancelled(t, "a7")
	// The cancelled call has returned; give its answer time to reach the stream.
	time.Sleep(200 * time.Millisecond)
	close(g.release)

	sa.next(t, 8)
	sa.post(t, "tok-a", `{"jsonrpc":"2.0","id":9,"method":"ping"}`)
	sa.next(t, 9)
	for _, m := range sa.seen {
		if m["id"] == float64(7) && m["method"] == nil {
			t.Errorf("the cancelled call was answered on its stream: %v", m)
		}
	}
	if m := sb.next(t, 7); m["result"] == nil {
		t.Errorf("b7 (same id, another session): %v", m)
	}
	if g.wasCancelled("a8") || g.wasCancelled("b7") {
		t.Error("the cancellation reached another call")
	}
}

// Protocol 2026-07-28 has no sessions, so mcp-go would match a notifications/cancelled with the
// calls of every client: one tenant could cancel another's call by guessing its id (ids count
// from 1). Such a cancellation is accepted and ignored; closing the call's POST cancels it.
func TestModernCancellationCannotReachAnotherClientsCall(t *testing.T) {
	g := newSlowCheckpoints()
	h := newHarness(t, func(o *server.Options, _ *server.HTTPOptions) { o.Guard = g })
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	modern := func(ctx context.Context, token, method, body string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", method)
		if method == "tools/call" {
			req.Header.Set("Mcp-Name", "checkpoint")
		}
		return http.DefaultClient.Do(req)
	}
	call := func(ctx context.Context, name string) <-chan answer {
		return answerAsync(func() (*http.Response, error) {
			return modern(ctx, "tok-a", "tools/call", fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"checkpoint","arguments":{"database_id":"db","name":%q},%s}}`, name, meta))
		})
	}
	victim := call(t.Context(), "victim")
	g.waitStarted(t, "victim")
	resp, err := modern(t.Context(), "tok-b", "notifications/cancelled",
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,`+meta+`}}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("notifications/cancelled: %d", resp.StatusCode)
	}
	select {
	case <-g.ended("victim"):
		t.Fatal("another tenant's notifications/cancelled cancelled the call")
	case <-time.After(300 * time.Millisecond):
	}

	// The call's own client cancels it by closing its POST.
	ctx, cancel := context.WithCancel(t.Context())
	closed := call(ctx, "closed")
	g.waitStarted(t, "closed")
	cancel()
	g.waitCancelled(t, "closed")
	<-closed

	close(g.release)
	wantAnswered(t, "the call", wait(t, "the call", victim), 1)
}
