package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
)

// inProcessTransport serves the embedded emulator's API to neonguard's own Neon clients
// without a socket: the request goes straight to the emulator's handler (the one its listener
// serves, test wrappers included). Over loopback TCP, each call's round trip to the emulator
// was about a fifth of the server's CPU under load (connections, syscalls, two HTTP parsers);
// the listener stays for everything else (neonctl, Neon's MCP server, the SQL-over-HTTP path).
//
// It keeps net/http's client semantics where the client depends on them: the answer's status,
// headers and body; the request's context ends the wait at once (the handler sees it cancelled
// and finishes on its own); a handler that drops the connection (the emulator's "drop the
// response" fault, or a panic, which net/http's server also turns into a closed connection)
// is a transport error, not an answer.
type inProcessTransport struct {
	handler  http.Handler
	log      *slog.Logger
	inflight sync.WaitGroup // handlers still running, some after their caller gave up (Wait)
}

// errConnectionDropped is what the client sees when the handler hung up without an answer.
var errConnectionDropped = errors.New("in-process emulator: connection closed before the answer")

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The handler's context ends when it returns or its caller's does, as net/http's server's
	// does; it keeps the caller's values (a trace goes on into the emulator's log lines).
	ctx, cancel := context.WithCancel(req.Context())
	sreq := req.Clone(ctx)
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "in-process:0"
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1
	body := req.Body
	if body == nil {
		sreq.Body = http.NoBody
	}
	rec := &inProcessResponse{header: make(http.Header)}
	done := make(chan error, 1)
	t.inflight.Add(1)
	go func() {
		defer t.inflight.Done()
		err := t.serve(rec, sreq)
		cancel()
		if body != nil {
			_ = body.Close() // a RoundTripper closes the body, as net/http's does
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return rec.response(req), nil
}

// Wait waits until every handler has returned (those whose callers gave up included), or ctx
// ends: the emulator closes after its handlers, as it does after its listener's.
func (t *inProcessTransport) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("local emulator: in-process requests still running: %w", ctx.Err())
	}
}

// serve runs the handler and reports a dropped connection as an error.
func (t *inProcessTransport) serve(rec *inProcessResponse, req *http.Request) (err error) {
	defer func() {
		switch v := recover(); {
		case v == nil:
		case v == http.ErrAbortHandler:
			err = errConnectionDropped
		default:
			// net/http's server logs a handler's panic and closes the connection; so does this.
			t.log.ErrorContext(req.Context(), "local emulator: handler panic", "method", req.Method,
				"path", req.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = errConnectionDropped
		}
	}()
	t.handler.ServeHTTP(rec, req)
	if rec.hijacked {
		return errConnectionDropped
	}
	return nil
}

// inProcessResponse is the handler's http.ResponseWriter: it keeps the whole answer (the
// emulator's answers are small JSON documents).
type inProcessResponse struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *inProcessResponse) Header() http.Header { return w.header }

func (w *inProcessResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *inProcessResponse) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush commits the status, as net/http's does; the client reads the answer when the handler
// is done.
func (w *inProcessResponse) Flush() { w.WriteHeader(http.StatusOK) }

// Hijack gives the handler a connection whose closing is the dropped answer.
func (w *inProcessResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	server, client := net.Pipe()
	_ = client.Close()
	return server, bufio.NewReadWriter(bufio.NewReader(server), bufio.NewWriter(server)), nil
}

func (w *inProcessResponse) response(req *http.Request) *http.Response {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	body := w.body.Bytes()
	if req.Method == http.MethodHead {
		body = nil
	}
	h := w.header.Clone()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// Compile-time checks: the emulator's handlers use these through http.ResponseController.
var (
	_ http.Flusher  = (*inProcessResponse)(nil)
	_ http.Hijacker = (*inProcessResponse)(nil)
)
