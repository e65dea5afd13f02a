package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func roundTrip(t *testing.T, h http.Handler, req *http.Request) (*http.Response, error) {
	t.Helper()
	var logged bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log: %s", logged.String())
		}
	})
	tr := &inProcessTransport{handler: h, log: slog.New(slog.NewTextHandler(&logged, nil))}
	c := &http.Client{Transport: tr}
	resp, err := c.Do(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if werr := tr.Wait(ctx); werr != nil {
		t.Errorf("handler still running: %v", werr)
	}
	return resp, err
}

func TestInProcessTransportKeepsTheExchange(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError) // ignored, as net/http ignores it
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Host+" "+
			r.Header.Get("Authorization")+" "+string(body))
	})
	req, _ := http.NewRequest(http.MethodPost, "http://emulator.local/api/v2/projects?limit=5", strings.NewReader(`{"a":1}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := roundTrip(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Request-Id") != "req-1" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if want := `POST /api/v2/projects?limit=5 emulator.local Bearer k {"a":1}`; string(got) != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	if resp.ContentLength != int64(len(got)) {
		t.Fatalf("ContentLength %d, body %d bytes", resp.ContentLength, len(got))
	}

	// No write at all: 200 with an empty body, as net/http answers.
	resp, err = roundTrip(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		mustRequest(t, http.MethodGet, "http://emulator.local/x"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("empty handler: %v, %v", resp, err)
	}
}

func TestInProcessTransportEndsWithTheRequestContext(t *testing.T) {
	handlerSawCancel := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(handlerSawCancel)
	})
	ctx, cancel := context.WithCancel(context.Background())
	req := mustRequest(t, http.MethodGet, "http://emulator.local/slow").WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := roundTrip(t, h, req)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the round trip outlived its context")
	}
	select {
	case <-handlerSawCancel:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's request context was not cancelled")
	}
}

// A handler that hangs up (the emulator's "drop the response" fault hijacks and closes, or
// panics with http.ErrAbortHandler where it cannot; any other panic closes the connection in
// net/http's server) gives the client a transport error, never an answer.
func TestInProcessTransportDroppedAnswerIsATransportError(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"hijack": func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			_ = conn.Close()
		},
		"abort": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X", "y")
			panic(http.ErrAbortHandler)
		},
		"panic": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"partial":`)
			panic("boom")
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := roundTrip(t, h, mustRequest(t, http.MethodPost, "http://emulator.local/api/v2/projects"))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer (%d), want a transport error", resp.StatusCode)
			}
			if !errors.Is(err, errConnectionDropped) {
				t.Fatalf("err = %v, want %v", err, errConnectionDropped)
			}
		})
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The handler's context ends when the handler returns, as net/http's server ends it: work the
// handler left behind on that context stops, even when the caller's context lives on.
func TestInProcessHandlerContextEndsWithTheHandler(t *testing.T) {
	ended := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			<-r.Context().Done()
			close(ended)
		}()
	})
	resp, err := roundTrip(t, h, mustRequest(t, http.MethodGet, "http://emulator.local/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context outlived the handler")
	}
}

// A handler whose caller gave up still runs; Wait (the emulator's close) waits for it.
func TestInProcessWaitCoversHandlersWhoseCallerLeft(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	tr := &inProcessTransport{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	}), log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	req := mustRequest(t, http.MethodGet, "http://emulator.local/x").WithContext(ctx)
	if _, err := (&http.Client{Transport: tr}).Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := tr.Wait(short); err == nil {
		t.Fatal("Wait returned while a handler was still running")
	}
	close(release)
	long, cancelLong := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelLong()
	if err := tr.Wait(long); err != nil {
		t.Fatalf("Wait after the handler returned: %v", err)
	}
}
