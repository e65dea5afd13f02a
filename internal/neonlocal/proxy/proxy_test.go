package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend starts an in-process TCP echo server per run and checks the
// proxy's contract: Start and Stop never overlap, Start only when stopped,
// Stop only when started.
type fakeBackend struct {
	startDelay time.Duration
	stopDelay  time.Duration
	startErr   error
	// stopping, if set, receives a value when Stop begins.
	stopping chan struct{}

	starts, stops atomic.Int64
	inCall        atomic.Int32
	violations    atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (b *fakeBackend) Start(ctx context.Context) (string, error) {
	if b.inCall.Add(1) != 1 {
		b.violations.Add(1)
	}
	defer b.inCall.Add(-1)
	if b.startDelay > 0 {
		select {
		case <-time.After(b.startDelay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if b.startErr != nil {
		return "", b.startErr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.violations.Add(1)
		return b.ln.Addr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	b.ln = ln
	b.conns = make(map[net.Conn]struct{})
	b.wg.Add(1)
	go b.serve(ln)
	b.starts.Add(1)
	return ln.Addr().String(), nil
}

func (b *fakeBackend) serve(ln net.Listener) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go func() {
			defer b.wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
		}()
	}
}

func (b *fakeBackend) Stop(ctx context.Context) error {
	if b.inCall.Add(1) != 1 {
		b.violations.Add(1)
	}
	defer b.inCall.Add(-1)
	if b.stopping != nil {
		b.stopping <- struct{}{}
	}
	if b.stopDelay > 0 {
		time.Sleep(b.stopDelay)
	}
	b.mu.Lock()
	if b.ln == nil {
		b.mu.Unlock()
		b.violations.Add(1)
		return nil
	}
	b.ln.Close()
	for c := range b.conns {
		c.Close()
	}
	b.ln = nil
	b.mu.Unlock()
	b.wg.Wait()
	b.stops.Add(1)
	return nil
}

// checkGoroutines fails the test if goroutines started during it outlive it.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before+1 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func newProxy(t *testing.T, o Options) *Proxy {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	p, err := Listen(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// echo writes msg and reads the same number of bytes back.
func echo(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBytesFlowBothWaysAndAreCounted(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p := newProxy(t, Options{Backend: b})

	c := dial(t, p.Addr())
	// An SSLRequest-looking prefix must pass through untouched.
	msg := append([]byte{0, 0, 0, 8, 4, 210, 22, 47}, "hello, compute"...)
	if err := echo(c, msg); err != nil {
		t.Fatal(err)
	}
	// Half-close: the compute sees EOF, closes, and we see EOF in turn.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	c.Close()

	waitFor(t, "connection to end", func() bool { return p.Stats().Active == 0 })
	s := p.Stats()
	if s.BytesIn != int64(len(msg)) || s.BytesOut != int64(len(msg)) {
		t.Errorf("bytes in/out = %d/%d, want %d/%d", s.BytesIn, s.BytesOut, len(msg), len(msg))
	}
	if s.Connections != 1 || s.Starts != 1 || s.LastActivity.IsZero() || s.ActiveTime <= 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestColdStartOnFirstConnection(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{startDelay: 20 * time.Millisecond}
	p := newProxy(t, Options{Backend: b})
	if p.Running() || b.starts.Load() != 0 {
		t.Fatal("compute started before any connection")
	}
	c := dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("wake up")); err != nil {
		t.Fatal(err)
	}
	if !p.Running() || b.starts.Load() != 1 || p.Stats().Starts != 1 || p.Stats().Active != 1 {
		t.Fatalf("running=%v starts=%d stats=%+v", p.Running(), b.starts.Load(), p.Stats())
	}
}

func TestConcurrentColdStartIsSingleFlight(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{startDelay: 50 * time.Millisecond}
	p := newProxy(t, Options{Backend: b})

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			errs <- echo(c, fmt.Appendf(nil, "client %d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := b.starts.Load(); n != 1 {
		t.Errorf("Start called %d times, want 1", n)
	}
	if s := p.Stats(); s.Connections != 20 || s.Starts != 1 {
		t.Errorf("stats = %+v", s)
	}
	if b.violations.Load() != 0 {
		t.Error("backend contract violated")
	}
}

func TestIdleTimeoutStopsAndNextConnectionWakes(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p := newProxy(t, Options{Backend: b, IdleTimeout: 50 * time.Millisecond})

	c := dial(t, p.Addr())
	if err := echo(c, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// An open connection keeps the compute up past the idle timeout.
	time.Sleep(100 * time.Millisecond)
	if !p.Running() {
		t.Fatal("suspended with an active connection")
	}
	c.Close()
	waitFor(t, "idle suspend", func() bool { return !p.Running() && b.stops.Load() == 1 })

	at := p.Stats().ActiveTime
	if at < 100*time.Millisecond {
		t.Errorf("ActiveTime = %v, want >= 100ms", at)
	}
	time.Sleep(20 * time.Millisecond)
	if got := p.Stats().ActiveTime; got != at {
		t.Errorf("ActiveTime grew while suspended: %v -> %v", at, got)
	}

	c = dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Starts != 2 || b.starts.Load() != 2 {
		t.Errorf("starts = %d (backend %d), want 2", s.Starts, b.starts.Load())
	}
	if b.violations.Load() != 0 {
		t.Error("backend contract violated")
	}
}

func TestSuspendClosesConnectionsAndStops(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p := newProxy(t, Options{Backend: b})

	if err := p.Suspend(context.Background()); err != nil { // stopped: no-op
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.Suspend(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.Running() || b.stops.Load() != 1 {
		t.Fatalf("running=%v stops=%d", p.Running(), b.stops.Load())
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client connection survived Suspend")
	}
	waitFor(t, "active to drop", func() bool { return p.Stats().Active == 0 })

	c2 := dial(t, p.Addr())
	defer c2.Close()
	if err := echo(c2, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Starts != 2 {
		t.Errorf("Starts = %d, want 2", p.Stats().Starts)
	}
}

func TestConnectionDuringStopWaitsThenRestarts(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{stopDelay: 50 * time.Millisecond, stopping: make(chan struct{}, 1)}
	p := newProxy(t, Options{Backend: b})

	c := dial(t, p.Addr())
	if err := echo(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Close()

	suspended := make(chan error, 1)
	go func() { suspended <- p.Suspend(context.Background()) }()
	<-b.stopping
	c = dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("during stop")); err != nil {
		t.Fatal(err)
	}
	if err := <-suspended; err != nil {
		t.Fatal(err)
	}
	if b.starts.Load() != 2 || b.stops.Load() != 1 || b.violations.Load() != 0 {
		t.Errorf("starts=%d stops=%d violations=%d", b.starts.Load(), b.stops.Load(), b.violations.Load())
	}
}

func TestSuspendRacingConnections(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p := newProxy(t, Options{Backend: b, IdleTimeout: time.Millisecond})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.Suspend(context.Background()); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var ok atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					t.Error(err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				// A Suspend may cut a connection: that is fine, a hang is not.
				if echo(c, []byte("ping")) == nil {
					ok.Add(1)
				}
				c.Close()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if ok.Load() == 0 {
		t.Error("no connection got through")
	}
	if b.violations.Load() != 0 {
		t.Error("backend contract violated")
	}
}

// pgMessage is a decoded backend message.
type pgMessage struct {
	typ    byte
	fields map[byte]string
}

// readPGError reads what a PostgreSQL server sends a rejected client: after
// an SSLRequest a single 'N', then an ErrorResponse.
func readPGError(t *testing.T, c net.Conn) pgMessage {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading message header: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<16 {
		t.Fatalf("bad message length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("reading message body: %v", err)
	}
	m := pgMessage{typ: hdr[0], fields: map[byte]string{}}
	for len(body) > 0 && body[0] != 0 {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			t.Fatalf("unterminated field in %q", body)
		}
		m.fields[body[0]] = string(body[1:i])
		body = body[i+1:]
	}
	if len(body) != 1 {
		t.Fatalf("missing terminator or trailing bytes: %q", body)
	}
	// The server closes after a FATAL error.
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after ErrorResponse: %q, %v", rest, err)
	}
	return m
}

func sslRequest() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:4], 8)
	binary.BigEndian.PutUint32(b[4:8], sslRequestCode)
	return b
}

func startupMessage() []byte {
	body := binary.BigEndian.AppendUint32(nil, 3<<16)
	for _, s := range []string{"user", "neondb_owner", "database", "neondb", ""} {
		body = append(body, s...)
		body = append(body, 0)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// pgConnect plays a client's opening moves and returns the server's answer.
func pgConnect(t *testing.T, addr string, ssl bool) pgMessage {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if ssl {
		if _, err := c.Write(sslRequest()); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
		if b[0] != 'N' {
			t.Fatalf("SSLRequest answered %q, want 'N'", b[0])
		}
	}
	if _, err := c.Write(startupMessage()); err != nil {
		t.Fatal(err)
	}
	return readPGError(t, c)
}

func TestRefuseSendsPostgresError(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	var refuse atomic.Pointer[error]
	p := newProxy(t, Options{Backend: b, Refuse: func() error {
		if e := refuse.Load(); e != nil {
			return *e
		}
		return nil
	}})
	set := func(err error) { refuse.Store(&err) }

	cases := []struct {
		err        error
		code, text string
	}{
		{errors.New("data transfer quota exceeded"), "53400", "data transfer quota exceeded"},
		{fmt.Errorf("wrapped: %w", RefuseError{Code: "XX000", Message: "endpoint is disabled"}), "XX000", "endpoint is disabled"},
		{&RefuseError{Message: "compute time quota exceeded"}, "53400", "compute time quota exceeded"},
	}
	for _, tc := range cases {
		set(tc.err)
		for _, ssl := range []bool{false, true} {
			m := pgConnect(t, p.Addr(), ssl)
			if m.typ != 'E' || m.fields['S'] != "FATAL" || m.fields['V'] != "FATAL" ||
				m.fields['C'] != tc.code || m.fields['M'] != tc.text {
				t.Errorf("ssl=%v: got %c %v, want E %s %q", ssl, m.typ, m.fields, tc.code, tc.text)
			}
		}
	}
	if b.starts.Load() != 0 || p.Running() {
		t.Error("a refused connection woke the compute")
	}
	if s := p.Stats(); s.Refused != 6 || s.Connections != 0 {
		t.Errorf("stats = %+v", s)
	}

	refuse.Store(nil)
	c := dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("allowed again")); err != nil {
		t.Fatal(err)
	}
}

func TestFailingStartSendsPostgresError(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{startErr: errors.New("initdb: disk full"), startDelay: 30 * time.Millisecond}
	p := newProxy(t, Options{Backend: b})

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := pgConnect(t, p.Addr(), i%2 == 0)
			if m.typ != 'E' || m.fields['S'] != "FATAL" || m.fields['C'] == "" ||
				!strings.Contains(m.fields['M'], "compute failed to start: initdb: disk full") {
				t.Errorf("got %c %v", m.typ, m.fields)
			}
		}()
	}
	wg.Wait()
	if p.Running() || p.Stats().Starts != 0 {
		t.Error("running after a failed start")
	}
	if s := p.Stats(); s.Active != 0 || s.Connections != 6 {
		t.Errorf("stats = %+v", s)
	}
}

func TestStartTimeout(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{startDelay: time.Minute}
	p := newProxy(t, Options{Backend: b, StartTimeout: 30 * time.Millisecond})
	m := pgConnect(t, p.Addr(), false)
	if !strings.Contains(m.fields['M'], "compute failed to start") ||
		!strings.Contains(m.fields['M'], context.DeadlineExceeded.Error()) {
		t.Errorf("got %v", m.fields)
	}
}

func TestListenOnTakenPort(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	_, err = Listen(context.Background(), Options{Listen: addr, Backend: &fakeBackend{}})
	if err == nil || !strings.Contains(err.Error(), port) {
		t.Fatalf("err = %v, want one naming port %s", err, port)
	}
}

func TestListenValidatesOptions(t *testing.T) {
	if _, err := Listen(context.Background(), Options{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("nil Backend accepted")
	}
	if _, err := Listen(context.Background(), Options{Backend: &fakeBackend{}}); err == nil {
		t.Error("empty Listen accepted")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p, err := Listen(context.Background(), Options{Listen: "127.0.0.1:0", Backend: b, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	idle := dial(t, p.Addr()) // connected, never sends: parked in the proxy
	defer idle.Close()
	waitFor(t, "second connection", func() bool { return p.Stats().Active == 2 })

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || b.stops.Load() != 1 {
		t.Errorf("running=%v stops=%d after Close", p.Running(), b.stops.Load())
	}
	for _, conn := range []net.Conn{c, idle} {
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Error("client connection survived Close")
		}
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Suspend(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Suspend after Close = %v", err)
	}
}

func TestCloseDuringColdStart(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{startDelay: time.Minute}
	p, err := Listen(context.Background(), Options{Listen: "127.0.0.1:0", Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	defer c.Close()
	if _, err := c.Write(startupMessage()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cold start", func() bool { return b.inCall.Load() == 1 })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung on a Start in flight")
	}
	if b.stops.Load() != 0 || p.Running() {
		t.Error("stopped a compute that never started")
	}
}

func TestErrorResponseEncoding(t *testing.T) {
	b := errorResponse("53400", "a\x00b")
	want := "E\x00\x00\x00\x1eSFATAL\x00VFATAL\x00C53400\x00Mab\x00\x00"
	if string(b) != want || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-1 {
		t.Errorf("got %q, want %q", b, want)
	}
}

// crash closes the backend's listener without the proxy knowing, as a compute that died.
func (b *fakeBackend) crash() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ln.Close()
	for c := range b.conns {
		c.Close()
	}
}

func TestDeadComputeIsRestartedOnTheNextConnection(t *testing.T) {
	checkGoroutines(t)
	b := &fakeBackend{}
	p := newProxy(t, Options{Backend: b})
	c := dial(t, p.Addr())
	if err := echo(c, []byte("first")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b.crash()
	c = dial(t, p.Addr())
	defer c.Close()
	if err := echo(c, []byte("after the crash")); err != nil {
		t.Fatalf("the connection after a crash: %v", err)
	}
	if got := b.starts.Load(); got != 2 {
		t.Fatalf("starts = %d, want 2 (restarted once)", got)
	}
}
