package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	rec := &inProcessResponse{ResponseRecorder: httptest.NewRecorder()}
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

// inProcessResponse is the handler's http.ResponseWriter: net/http/httptest's recorder (an
// in-memory ResponseWriter; the emulator's answers are small JSON documents), which can also
// be hijacked.
type inProcessResponse struct {
	*httptest.ResponseRecorder
	hijacked bool
}

// Hijack gives the handler a connection whose closing is the dropped answer.
func (w *inProcessResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	server, client := net.Pipe()
	_ = client.Close()
	return server, bufio.NewReadWriter(bufio.NewReader(server), bufio.NewWriter(server)), nil
}

// response is the recorded answer as the client receives it (its length known, as net/http's
// server sends it for a handler that wrote its whole answer).
func (w *inProcessResponse) response(req *http.Request) *http.Response {
	resp := w.Result()
	resp.Request = req
	resp.ContentLength = int64(w.Body.Len())
	resp.Header.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	return resp
}

// Compile-time checks: the emulator's handlers use these through http.ResponseController.
var (
	_ http.Flusher  = (*inProcessResponse)(nil)
	_ http.Hijacker = (*inProcessResponse)(nil)
)
