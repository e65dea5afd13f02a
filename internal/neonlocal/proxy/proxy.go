// Package proxy owns an emulated endpoint's stable loopback port and gives it
// Neon's scale-to-zero behaviour: a plain L4 TCP forwarder in front of a
// compute (a PostgreSQL process) that is started by the first connection (a
// cold start) and stopped after IdleTimeout without connections.
//
// The proxy never looks inside a proxied connection: PostgreSQL's SSLRequest
// and TLS handshake pass through untouched, so sslmode=require works end to
// end with the compute's own certificate.
//
// The proxy only speaks the PostgreSQL protocol itself when it has to turn a
// client away (Options.Refuse, or a compute that fails to start): it reads
// the startup packet, answers an SSLRequest or GSSENCRequest with 'N', then
// sends a FATAL ErrorResponse and closes. Clients using sslmode=prefer,
// allow or disable (and pgx's prefer fallback) print that error. A client
// with sslmode=require (or stronger) gives up at the 'N' and reports "server
// does not support SSL" instead: producing the error inside TLS would need
// the compute's certificate. Answering the SSLRequest with the error
// directly is not better: patched libpq (CVE-2024-10977) no longer shows
// pre-TLS error text. Direct TLS (sslnegotiation=direct) gets a bare close.
package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is what the proxy wakes and dials. The data plane implements it.
type Backend interface {
	// Start makes the compute ready and returns the address to dial (e.g.
	// "127.0.0.1:54123"). Called when a connection arrives while the compute
	// is stopped; concurrent connections share one Start (single flight).
	// Start and Stop are never called concurrently with each other.
	Start(ctx context.Context) (addr string, err error)
	// Stop suspends the compute (called after IdleTimeout with no
	// connections, by Suspend, or by Close). After Stop returns, with or
	// without an error, the proxy considers the compute stopped, so the
	// next Start must cope with a compute whose Stop failed.
	Stop(ctx context.Context) error
}

// Options configures a Proxy.
type Options struct {
	// Listen is the endpoint's stable address, "127.0.0.1:PORT" (port 0
	// picks a free one, see Proxy.Addr).
	Listen  string
	Backend Backend
	// IdleTimeout suspends the compute after this long with zero client
	// connections; <= 0 never suspends it.
	IdleTimeout time.Duration
	// StartTimeout bounds Backend.Start, and also Backend.Stop when the
	// proxy stops the compute on its own (idle, Close). Default 30s.
	StartTimeout time.Duration
	Logger       *slog.Logger
	// Refuse, if set, is checked on every new connection; a non-nil error
	// refuses it (quota exceeded, endpoint disabled) with a PostgreSQL
	// ErrorResponse: SQLSTATE 53400 and the error's text, or the Code and
	// Message of a RefuseError in its chain. A refused connection neither
	// wakes the compute nor delays its suspension.
	Refuse func() error
	// TLS, if set, lets the proxy answer an SSLRequest itself when it turns a client away,
	// so a client with sslmode=require reads the reason instead of "server does not
	// support SSL". Accepted connections never use it: PostgreSQL does their TLS.
	TLS *tls.Config
}

// RefuseError lets Options.Refuse choose the SQLSTATE and message the client
// sees. An empty Code means 53400 (configuration_limit_exceeded).
type RefuseError struct {
	Code, Message string
}

func (e RefuseError) Error() string { return e.Message }

// Stats are the proxy's counters since Listen.
type Stats struct {
	BytesIn     int64 // client → compute
	BytesOut    int64 // compute → client
	Connections int64 // client connections proxied (or that tried to be), refused ones excluded
	Refused     int64 // client connections turned away by Options.Refuse
	Active      int   // client connections open now, refused ones excluded
	Starts      int64 // successful Backend.Start calls
	// ActiveTime is the total time the compute was running, the current run
	// included: from Start returning to Stop being called.
	ActiveTime   time.Duration
	LastActivity time.Time // last accepted connection or proxied byte; zero if none
}

const (
	defaultStartTimeout = 30 * time.Second
	// handshakeTimeout bounds reading the startup packet of a client being
	// turned away, so a silent client does not hold a goroutine.
	handshakeTimeout = 10 * time.Second
	maxStartupLen    = 10000 // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH

	codeRefused        = "53400" // configuration_limit_exceeded, as Neon uses for quota errors
	codeCannotConnect  = "57P03" // cannot_connect_now
	sslRequestCode     = 80877103
	gssencRequestCode  = 80877104
	cancelRequestCode  = 80877102
	copyBufferSize     = 32 << 10
	acceptRetryBackoff = 5 * time.Millisecond
)

var errClosed = fmt.Errorf("proxy: %w", net.ErrClosed)

type state int

const (
	stateStopped state = iota
	stateStarting
	stateRunning
	stateStopping
)

// flight is one Backend.Start shared by every connection that arrived while
// the compute was stopped.
type flight struct {
	done chan struct{}
	err  error
}

// pipe is a proxied connection pair, closed when the compute stops.
type pipe struct{ client, server net.Conn }

// Proxy forwards an endpoint's stable port to its compute, starting and
// stopping the compute on demand. Its methods are safe for concurrent use.
type Proxy struct {
	ln           net.Listener
	backend      Backend
	idleTimeout  time.Duration
	startTimeout time.Duration
	log          *slog.Logger
	refuse       func() error
	tls          *tls.Config

	// base is cancelled by Close to abort a Start in flight.
	base    context.Context
	cancel  context.CancelFunc
	closing chan struct{}
	wg      sync.WaitGroup // accept loop, connection handlers, idle stops
	bufs    sync.Pool

	bytesIn, bytesOut atomic.Int64
	connections       atomic.Int64
	refused           atomic.Int64
	lastActivity      atomic.Int64 // UnixNano

	mu         sync.Mutex
	closed     bool
	state      state
	flight     *flight       // while stateStarting
	stopDone   chan struct{} // while stateStopping
	addr       string        // while stateRunning
	gen        uint64        // incremented on every successful start
	runSince   time.Time
	activeTime time.Duration
	starts     int64
	active     int
	idleTimer  *time.Timer
	idleSeq    uint64 // invalidates an idle timer that fired but lost the race for mu
	clients    map[net.Conn]struct{}
	pipes      map[*pipe]struct{}
}

// Listen binds o.Listen now (so a taken port is reported to the caller) and
// starts accepting. ctx only bounds the bind: the proxy lives until Close.
// The compute is not started until the first connection.
func Listen(ctx context.Context, o Options) (*Proxy, error) {
	if o.Backend == nil {
		return nil, errors.New("proxy: Options.Backend is nil")
	}
	if o.Listen == "" {
		return nil, errors.New("proxy: Options.Listen is empty")
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultStartTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", o.Listen, err)
	}
	base, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:           ln,
		backend:      o.Backend,
		idleTimeout:  o.IdleTimeout,
		startTimeout: o.StartTimeout,
		log:          o.Logger.With("listen", ln.Addr().String()),
		refuse:       o.Refuse,
		tls:          o.TLS,
		base:         base,
		cancel:       cancel,
		closing:      make(chan struct{}),
		clients:      make(map[net.Conn]struct{}),
		pipes:        make(map[*pipe]struct{}),
	}
	p.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on, with the actual port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Running reports whether the compute is started and not stopped (or
// stopping).
func (p *Proxy) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == stateRunning
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Active:     p.active,
		Starts:     p.starts,
		ActiveTime: p.activeTime,
	}
	if p.state == stateRunning {
		s.ActiveTime += time.Since(p.runSince)
	}
	p.mu.Unlock()
	s.BytesIn = p.bytesIn.Load()
	s.BytesOut = p.bytesOut.Load()
	s.Connections = p.connections.Load()
	s.Refused = p.refused.Load()
	if n := p.lastActivity.Load(); n != 0 {
		s.LastActivity = time.Unix(0, n)
	}
	return s
}

// Suspend closes the proxied connections and stops the compute; the next
// connection wakes it again. A Start in flight is waited for first (ctx
// bounds the wait), then stopped. ctx is passed to Backend.Stop. Suspending
// a stopped compute does nothing.
func (p *Proxy) Suspend(ctx context.Context) error {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return errClosed
		}
		switch p.state {
		case stateStopped:
			p.mu.Unlock()
			return nil
		case stateStarting, stateStopping:
			wait := p.stopDone
			if p.state == stateStarting {
				wait = p.flight.done
			}
			p.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return fmt.Errorf("proxy: suspend: %w", ctx.Err())
			}
			p.mu.Lock()
		case stateRunning:
			err := p.stopLocked(ctx, "suspend")
			p.mu.Unlock()
			return err
		}
	}
}

// Close stops listening, closes every client connection, waits for the
// proxy's goroutines and stops the compute if it is running. A Start in
// flight is cancelled through its context. Close is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	p.cancel()
	p.disarmLocked()
	for c := range p.clients {
		c.Close()
	}
	for pp := range p.pipes {
		pp.server.Close()
	}
	p.mu.Unlock()

	lnErr := p.ln.Close()
	p.wg.Wait()

	// Only a Suspend caller can still be changing state: wait for it.
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.state == stateStopping {
		done := p.stopDone
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	var stopErr error
	if p.state == stateRunning {
		ctx, cancel := context.WithTimeout(context.Background(), p.startTimeout)
		defer cancel()
		stopErr = p.stopLocked(ctx, "close")
	}
	if lnErr != nil && !errors.Is(lnErr, net.ErrClosed) {
		lnErr = fmt.Errorf("proxy: close listener: %w", lnErr)
	} else {
		lnErr = nil
	}
	return errors.Join(lnErr, stopErr)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. EMFILE): back off rather than spin.
			p.log.Warn("proxy: accept failed", "err", err)
			select {
			case <-p.closing:
				return
			case <-time.After(acceptRetryBackoff):
			}
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.clients[c] = struct{}{}
		// Added under mu with closed checked, so never after Close's Wait.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.clients, c)
		p.mu.Unlock()
		c.Close()
	}()

	if p.refuse != nil {
		if err := p.refuse(); err != nil {
			p.refused.Add(1)
			code, msg := refuseDetails(err)
			p.log.Debug("proxy: connection refused", "remote", c.RemoteAddr().String(), "reason", msg)
			rejectPG(c, p.tls, code, msg)
			return
		}
	}

	p.connections.Add(1)
	p.touch()
	p.mu.Lock()
	p.active++
	p.disarmLocked()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.active--
		p.armLocked()
		p.mu.Unlock()
	}()

	pp, err := p.connect(c)
	if err != nil {
		if errors.Is(err, net.ErrClosed) && p.isClosed() {
			return
		}
		p.log.Warn("proxy: cannot serve connection", "remote", c.RemoteAddr().String(), "err", err)
		rejectPG(c, p.tls, codeCannotConnect, err.Error())
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.pipes, pp)
		p.mu.Unlock()
		pp.server.Close()
	}()
	p.forward(pp)
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// connect makes sure the compute runs, dials it and registers the pair so a
// stop closes it. The error text is what the client is shown.
func (p *Proxy) connect(client net.Conn) (*pipe, error) {
	restarted := false
	for {
		addr, gen, err := p.ensureRunning()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(p.base, p.startTimeout)
		var d net.Dialer
		server, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil {
			if p.isClosed() {
				return nil, errClosed
			}
			// The compute died under us (a crash, an OOM kill): stop what is left and
			// start it again, once, rather than failing every client until the idle timeout.
			if !restarted {
				restarted = true
				p.mu.Lock()
				if p.state == stateRunning && p.gen == gen {
					p.log.Warn("proxy: compute unreachable; restarting it", "addr", addr, "err", err)
					_ = p.stopLocked(p.base, "unreachable")
				}
				p.mu.Unlock()
				continue
			}
			return nil, fmt.Errorf("compute is not reachable: %w", err)
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			server.Close()
			return nil, errClosed
		}
		if p.state != stateRunning || p.gen != gen {
			// Stopped (and maybe restarted) while dialing: this pair would
			// escape the stop's cleanup, so go around again.
			p.mu.Unlock()
			server.Close()
			continue
		}
		pp := &pipe{client: client, server: server}
		p.pipes[pp] = struct{}{}
		p.mu.Unlock()
		return pp, nil
	}
}

// ensureRunning returns the compute's address, starting it if needed. Only
// one caller runs Backend.Start; the others wait for it and share its
// outcome, so a failing compute is not started once per waiting client.
func (p *Proxy) ensureRunning() (addr string, gen uint64, err error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return "", 0, errClosed
		}
		switch p.state {
		case stateRunning:
			addr, gen = p.addr, p.gen
			p.mu.Unlock()
			return addr, gen, nil
		case stateStarting:
			f := p.flight
			p.mu.Unlock()
			select {
			case <-f.done:
			case <-p.closing:
				return "", 0, errClosed
			}
			if f.err != nil {
				return "", 0, f.err
			}
			p.mu.Lock()
		case stateStopping:
			done := p.stopDone
			p.mu.Unlock()
			select {
			case <-done:
			case <-p.closing:
				return "", 0, errClosed
			}
			p.mu.Lock()
		case stateStopped:
			f := &flight{done: make(chan struct{})}
			p.flight = f
			p.state = stateStarting
			p.mu.Unlock()

			t0 := time.Now()
			ctx, cancel := context.WithTimeout(p.base, p.startTimeout)
			a, err := p.backend.Start(ctx)
			cancel()
			if err == nil && a == "" {
				err = errors.New("backend returned no address")
			}

			p.mu.Lock()
			p.flight = nil
			if err != nil {
				p.state = stateStopped
				f.err = fmt.Errorf("compute failed to start: %w", err)
				p.log.Warn("proxy: compute failed to start", "err", err, "took", time.Since(t0))
			} else {
				p.state = stateRunning
				p.addr = a
				p.gen++
				p.starts++
				p.runSince = time.Now()
				p.log.Info("proxy: compute started", "addr", a, "took", time.Since(t0))
			}
			close(f.done)
			if f.err != nil {
				p.mu.Unlock()
				return "", 0, f.err
			}
		}
	}
}

// stopLocked stops a running compute: it closes the proxied connections of
// this run and calls Backend.Stop with mu released (connections arriving
// meanwhile wait on stopDone). Called and returns with mu held.
func (p *Proxy) stopLocked(ctx context.Context, reason string) error {
	done := make(chan struct{})
	p.state = stateStopping
	p.stopDone = done
	run := time.Since(p.runSince)
	p.activeTime += run
	p.disarmLocked()
	pipes := make([]*pipe, 0, len(p.pipes))
	for pp := range p.pipes {
		pipes = append(pipes, pp)
	}
	p.mu.Unlock()

	for _, pp := range pipes {
		pp.client.Close()
		pp.server.Close()
	}
	t0 := time.Now()
	err := p.backend.Stop(ctx)
	if err != nil {
		err = fmt.Errorf("proxy: stop compute (%s): %w", reason, err)
		p.log.Warn("proxy: compute stop failed", "reason", reason, "err", err)
	} else {
		p.log.Info("proxy: compute suspended", "reason", reason, "ran", run, "took", time.Since(t0))
	}

	p.mu.Lock()
	p.state = stateStopped
	p.addr = ""
	p.stopDone = nil
	close(done)
	return err
}

// armLocked starts the idle countdown if nothing uses the running compute.
func (p *Proxy) armLocked() {
	if p.idleTimeout <= 0 || p.closed || p.state != stateRunning || p.active > 0 {
		return
	}
	p.disarmLocked()
	seq := p.idleSeq
	p.idleTimer = time.AfterFunc(p.idleTimeout, func() { p.idleFired(seq) })
}

func (p *Proxy) disarmLocked() {
	if p.idleTimer != nil {
		p.idleTimer.Stop()
		p.idleTimer = nil
	}
	p.idleSeq++
}

func (p *Proxy) idleFired(seq uint64) {
	p.mu.Lock()
	if p.closed || seq != p.idleSeq || p.active > 0 || p.state != stateRunning {
		p.mu.Unlock()
		return
	}
	p.idleTimer = nil
	// Under mu with closed checked: Close's Wait covers this stop.
	p.wg.Add(1)
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), p.startTimeout)
	defer cancel()
	p.log.Info("proxy: idle timeout, suspending compute", "idle_timeout", p.idleTimeout)
	_ = p.stopLocked(ctx, "idle") // logged by stopLocked
	p.mu.Unlock()
}

func (p *Proxy) touch() { p.lastActivity.Store(time.Now().UnixNano()) }

// forward copies both ways until both directions are done. A clean EOF is
// passed on as a half-close so the other side can finish; an error tears
// down both connections so the other copy cannot block forever.
func (p *Proxy) forward(pp *pipe) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.copy(pp, pp.client, pp.server, &p.bytesOut)
	}()
	p.copy(pp, pp.server, pp.client, &p.bytesIn)
	<-done
}

func (p *Proxy) copy(pp *pipe, dst, src net.Conn, n *atomic.Int64) {
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	// Hide src's WriterTo and dst's ReaderFrom so every chunk goes through
	// countingWriter and the counters stay live on long connections.
	_, err := io.CopyBuffer(countingWriter{w: dst, n: n, p: p}, struct{ io.Reader }{src}, *bp)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	pp.client.Close()
	pp.server.Close()
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
	p *Proxy
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if n > 0 {
		c.n.Add(int64(n))
		c.p.touch()
	}
	return n, err
}

func refuseDetails(err error) (code, msg string) {
	var re RefuseError
	var rp *RefuseError
	switch {
	case errors.As(err, &re):
	case errors.As(err, &rp) && rp != nil:
		re = *rp
	default:
		return codeRefused, err.Error()
	}
	if re.Code == "" {
		re.Code = codeRefused
	}
	if re.Message == "" {
		re.Message = err.Error()
	}
	return re.Code, re.Message
}

// rejectPG turns a client away the way a PostgreSQL server would, so the
// client prints msg: read the startup packet (declining SSL and GSS
// encryption), then send a FATAL ErrorResponse. Errors only mean the client
// left; the caller closes c.
func rejectPG(c net.Conn, tlsCfg *tls.Config, code, msg string) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	c, ok := readStartup(c, tlsCfg)
	if !ok {
		return
	}
	_, _ = c.Write(errorResponse(code, msg))
	if tc, isTLS := c.(*tls.Conn); isTLS {
		_ = tc.CloseWrite()
	}
}

// readStartup consumes the client's startup packet, answering SSLRequest with 'S' and a TLS
// handshake when tlsCfg is set ('N' otherwise) and GSSENCRequest with 'N'. It returns the
// connection to answer on (TLS-wrapped or not), and false when no ErrorResponse should be
// sent: a CancelRequest, direct TLS, garbage, or a client that hung up (sslmode=require does
// on 'N').
func readStartup(c net.Conn, tlsCfg *tls.Config) (net.Conn, bool) {
	var hdr [8]byte
	for range 3 { // at most GSSENCRequest, SSLRequest, StartupMessage
		if _, err := io.ReadFull(c, hdr[:4]); err != nil {
			return c, false
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 8 || n > maxStartupLen {
			return c, false // direct TLS (0x16 0x03 …) lands here too
		}
		if _, err := io.ReadFull(c, hdr[4:8]); err != nil {
			return c, false
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-8)); err != nil {
			return c, false
		}
		switch binary.BigEndian.Uint32(hdr[4:8]) {
		case sslRequestCode:
			if _, isTLS := c.(*tls.Conn); tlsCfg != nil && !isTLS {
				if _, err := c.Write([]byte{'S'}); err != nil {
					return c, false
				}
				tc := tls.Server(c, tlsCfg)
				if err := tc.Handshake(); err != nil {
					return c, false
				}
				c = tc
				continue
			}
			if _, err := c.Write([]byte{'N'}); err != nil {
				return c, false
			}
		case gssencRequestCode:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return c, false
			}
		case cancelRequestCode:
			return c, false
		default:
			return c, true
		}
	}
	return c, false
}

// errorResponse encodes a FATAL ErrorResponse ('E') message.
func errorResponse(code, msg string) []byte {
	fields := []struct {
		t byte
		v string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', msg}}
	b := []byte{'E', 0, 0, 0, 0}
	for _, f := range fields {
		b = append(b, f.t)
		b = append(b, strings.ReplaceAll(f.v, "\x00", "")...) // NUL ends a field
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-1))
	return b
}
