package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"sync"
)

// mcp-go cancels a call's context on notifications/cancelled, but still writes the call's
// answer when the handler returns. The specification says a receiver SHOULD NOT answer a
// cancelled request, and a client has forgotten the id by then (the TypeScript SDK reports
// "unknown message ID"). neonguard drops that answer on every transport: per MCP session,
// cancelNotes follows the requests in flight as they come in, marks those the client cancels,
// and the answer to a marked one is left out as it goes out. On stdio the session is the
// process's streams (cancelFilter); over HTTP it is the Mcp-Session-Id of Streamable HTTP or
// the sessionId of the SSE transport (httpCancels), and the answer is left out of the POST's
// response or of the SSE stream (cancelWriter). Everything else passes through unchanged.
//
// Only a request in flight can be cancelled: a cancellation that arrives after the answer was
// written (or before its request arrived, which mcp-go ignores too) notes nothing, so it can
// never take the answer of a later request that reuses the id.

// maxCancelled bounds the requests followed per session (their answers normally end them; an
// answer mcp-go never writes would stay); when full, the oldest half is forgotten.
const maxCancelled = 1024

// cancelNotes are one session's requests in flight, by id (its raw JSON), each true once
// cancelled.
type cancelNotes struct {
	mu    sync.Mutex
	calls map[string]bool
	order []string // the ids of calls, oldest first
}

func newCancelNotes() *cancelNotes { return &cancelNotes{calls: map[string]bool{}} }

// start follows request id.
func (n *cancelNotes) start(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.calls[id]; ok {
		return
	}
	if len(n.order) >= maxCancelled {
		for _, old := range n.order[:maxCancelled/2] {
			delete(n.calls, old)
		}
		n.order = append(n.order[:0], n.order[maxCancelled/2:]...)
	}
	n.calls[id] = false
	n.order = append(n.order, id)
}

// cancel marks request id, if it is in flight.
func (n *cancelNotes) cancel(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.calls[id]; ok {
		n.calls[id] = true
	}
}

// answer ends request id and reports whether its answer must be left out (it was cancelled).
func (n *cancelNotes) answer(id string) (drop bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cancelled, ok := n.calls[id]
	if !ok {
		return false
	}
	delete(n.calls, id)
	if i := slices.Index(n.order, id); i >= 0 {
		n.order = slices.Delete(n.order, i, i+1)
	}
	return cancelled
}

func (n *cancelNotes) empty() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.calls) == 0
}

// msgKind is what a JSON-RPC message is, as far as cancellation goes.
type msgKind int

const (
	otherMessage   msgKind = iota
	requestMessage         // a request (method and id): id is its id
	cancelMessage          // notifications/cancelled: id is the cancelled request's
	answerMessage          // a result or an error (id, no method): id is the request's
)

const methodCancelled = "notifications/cancelled"

// classify says what the JSON-RPC message p is and gives the id that matters (raw JSON).
func classify(p []byte) (msgKind, string) {
	// A message that matters has an "id" key or is notifications/cancelled, both written
	// literally by every client and by mcp-go, so most notifications are not decoded at all.
	if !bytes.Contains(p, []byte(`"id"`)) && !bytes.Contains(p, []byte(`"`+methodCancelled+`"`)) {
		return otherMessage, ""
	}
	if kind, id, ok := classifyMCPGo(p); ok {
		return kind, id
	}
	var m rpcFields
	if err := json.Unmarshal(p, &m); err != nil {
		// A value of another type (params not an object) leaves the rest decoded.
		if _, ok := err.(*json.UnmarshalTypeError); !ok {
			return otherMessage, ""
		}
	}
	return m.kind()
}

// rpcFields are the keys of a JSON-RPC message that classify and parseHead (http.go) read.
type rpcFields struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
	Params struct {
		RequestID json.RawMessage `json:"requestId"`
		Meta      json.RawMessage `json:"_meta"` // parseHead's; kept raw, not decoded here
	} `json:"params"`
	Result present `json:"result"`
	Error  present `json:"error"`
}

// kind is classify's answer for the decoded message m.
func (m *rpcFields) kind() (msgKind, string) {
	switch {
	case m.Method == nil && len(m.ID) > 0 && bool(m.Result || m.Error):
		return answerMessage, string(m.ID)
	case m.Method != nil && *m.Method == methodCancelled:
		if len(m.Params.RequestID) > 0 {
			return cancelMessage, string(m.Params.RequestID)
		}
	case m.Method != nil && len(m.ID) > 0:
		return requestMessage, string(m.ID)
	}
	return otherMessage, ""
}

// present notes that a key is there, without keeping its value (an answer's result can be
// large).
type present bool

func (p *present) UnmarshalJSON([]byte) error { *p = true; return nil }

// mcpGoPrefix starts every answer mcp-go writes, and every request its client sends: the id
// comes next, then the key that tells an answer from a request.
var mcpGoPrefix = []byte(`{"jsonrpc":"2.0","id":`)

// classifyMCPGo is classify for messages encoded as mcp-go encodes them, without a decoder
// (every answer goes through here); ok is false for any other message.
func classifyMCPGo(p []byte) (kind msgKind, id string, ok bool) {
	rest, ok := bytes.CutPrefix(p, mcpGoPrefix)
	if !ok {
		return otherMessage, "", false
	}
	n := 0
	if len(rest) > 0 && rest[0] == '"' {
		// A string id without escapes (an escape would make two spellings of one id).
		if end := bytes.IndexAny(rest[1:], `"\`); end >= 0 && rest[1+end] == '"' {
			n = end + 2
		}
	} else {
		for n < len(rest) && (rest[n] >= '0' && rest[n] <= '9' || n == 0 && rest[n] == '-') {
			n++
		}
	}
	if n == 0 || n >= len(rest) || rest[n] != ',' {
		return otherMessage, "", false
	}
	after := rest[n+1:]
	switch {
	case bytes.HasPrefix(after, []byte(`"result":`)), bytes.HasPrefix(after, []byte(`"error":`)):
		return answerMessage, string(rest[:n]), true
	case bytes.HasPrefix(after, []byte(`"method":`)) && !bytes.HasPrefix(after, []byte(`"method":"`+methodCancelled+`"`)):
		return requestMessage, string(rest[:n]), true
	}
	return otherMessage, "", false
}

// cancelFilter is stdio's: one session over the process's streams.
type cancelFilter struct{ notes *cancelNotes }

func newCancelFilter() *cancelFilter { return &cancelFilter{notes: newCancelNotes()} }

// input returns a reader of in's lines that follows the requests and their cancellations on
// the way.
func (f *cancelFilter) input(in io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		r := bufio.NewReader(in)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				f.noteIncoming(line)
				if _, werr := pw.Write(line); werr != nil {
					return
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// noteIncoming follows one message from the client. It runs before mcp-go sees the message,
// so a request is followed before it can be answered, and a cancellation marks its request
// before mcp-go cancels it.
func (f *cancelFilter) noteIncoming(msg []byte) {
	switch kind, id := classify(msg); kind {
	case requestMessage:
		f.notes.start(id)
	case cancelMessage:
		f.notes.cancel(id)
	}
}

// output returns a writer to out that leaves out the answers to cancelled requests. mcp-go
// writes each message whole, one line per Write.
func (f *cancelFilter) output(out io.Writer) io.Writer { return &filteredWriter{f: f, out: out} }

type filteredWriter struct {
	f   *cancelFilter
	out io.Writer
}

func (w *filteredWriter) Write(p []byte) (int, error) {
	if w.f.drop(p) {
		return len(p), nil
	}
	return w.out.Write(p)
}

// drop reports whether p is the answer to a cancelled request; an answer ends its request.
func (f *cancelFilter) drop(p []byte) bool {
	kind, id := classify(bytes.TrimSpace(p))
	return kind == answerMessage && f.notes.answer(id)
}

// httpCancels holds the cancelNotes of the HTTP sessions (Streamable HTTP and SSE ids never
// collide: "ngs-…" and bare hex) that have a request in flight; a session's notes go once
// empty, and an SSE session's when its stream ends.
type httpCancels struct {
	mu       sync.Mutex
	sessions map[string]*cancelNotes
}

func newHTTPCancels() *httpCancels { return &httpCancels{sessions: map[string]*cancelNotes{}} }

// incoming follows a message the client posted on session sid, classified as kind with id,
// before mcp-go sees it; it reports whether the message is a request, now followed.
func (c *httpCancels) incoming(sid string, kind msgKind, id string) (followed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch kind {
	case requestMessage:
		n := c.sessions[sid]
		if n == nil {
			n = newCancelNotes()
			c.sessions[sid] = n
		}
		n.start(id)
		return true
	case cancelMessage:
		if n := c.sessions[sid]; n != nil {
			n.cancel(id)
		}
	}
	return false
}

// answer ends request id of session sid and reports whether its answer must be left out.
func (c *httpCancels) answer(sid, id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.sessions[sid]
	if n == nil {
		return false
	}
	drop := n.answer(id)
	if n.empty() {
		delete(c.sessions, sid)
	}
	return drop
}

// forget drops a session's notes (its SSE stream ended).
func (c *httpCancels) forget(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, sid)
}

// cancelWriter is the ResponseWriter of a response that carries answers of session sid: a
// Streamable HTTP POST's (one JSON answer, or an SSE stream once notifications went first) or
// the SSE transport's GET stream. It leaves out the answer to a cancelled request; a JSON
// answer left out becomes 202 Accepted with no body, what a POST whose messages need no
// answer gets. mcp-go writes each JSON answer and each SSE event in one Write.
type cancelWriter struct {
	http.ResponseWriter
	c   *httpCancels
	sid string // set before the first answer is written

	wroteHeader bool
	held        int  // the status of a JSON answer, held until its body shows whose it is
	dropped     bool // the JSON answer was left out: nothing more goes out
}

func (w *cancelWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *cancelWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt == "application/json" && code == http.StatusOK {
		w.held = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.dropped {
		return len(p), nil
	}
	if w.held != 0 {
		if w.drops(p) {
			w.Header().Del("Content-Type")
			w.ResponseWriter.WriteHeader(http.StatusAccepted)
			w.held, w.dropped = 0, true
			return len(p), nil
		}
		w.ResponseWriter.WriteHeader(w.held)
		w.held = 0
		return w.ResponseWriter.Write(p)
	}
	if w.drops(sseData(p)) {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush keeps SSE streams flowing. A held JSON answer is not flushed: its Write comes next.
func (w *cancelWriter) Flush() {
	if w.held != 0 || w.dropped {
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// finish sends a status still held (a JSON answer without a body).
func (w *cancelWriter) finish() {
	if w.held != 0 {
		w.ResponseWriter.WriteHeader(w.held)
		w.held = 0
	}
}

func (w *cancelWriter) drops(msg []byte) bool {
	if w.sid == "" || len(msg) == 0 {
		return false
	}
	kind, id := classify(msg)
	return kind == answerMessage && w.c.answer(w.sid, id)
}

// sseData is the data of the SSE event p (an event of type message, or without a type), or
// nil when p is not such an event.
func sseData(p []byte) []byte {
	var data [][]byte
	for line := range bytes.Lines(p) {
		line = bytes.TrimRight(line, "\r\n")
		if ev, ok := bytes.CutPrefix(line, []byte("event:")); ok && string(bytes.TrimSpace(ev)) != "message" {
			return nil
		}
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(d, []byte(" ")))
		}
	}
	if len(data) == 1 {
		return data[0] // the usual one-line event, without a copy
	}
	return bytes.Join(data, []byte("\n"))
}
