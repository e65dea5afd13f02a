package guard

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/truncate"
)

// SQL connections are kept for a short idle time after a call, so that the next call to the
// same branch skips connecting (TLS and SCRAM: milliseconds, against a fraction of one for a
// query on an open connection). The idle time is short on purpose: an open connection counts as
// activity on Neon, and a compute nobody queries must be allowed to suspend.
const (
	// DefaultSQLIdleTimeout is how long a connection stays open after its last call.
	DefaultSQLIdleTimeout = 15 * time.Second
	// sqlIdlePerKey is how many idle connections are kept per connection string and session
	// settings; sqlIdleMax in all.
	sqlIdlePerKey = 4
	sqlIdleMax    = 64
	// sqlPingAfter: an idle connection older than this is pinged before it is used (a compute
	// that suspended or restarted closed it).
	sqlPingAfter = time.Second
	// sqlResetTimeout bounds the reset of a released connection.
	sqlResetTimeout = 5 * time.Second
)

// sqlKey is what a connection may be reused for: the exact connection string (role, password,
// host, database: one branch's compute of one tenant's database) and the session settings the
// guard opens it with. Connections are never shared across keys.
type sqlKey struct {
	uri       string
	timeoutMS int64
	readOnly  bool
}

// sqlConn is an open connection to a branch's compute.
type sqlConn struct {
	*pgx.Conn
	key      sqlKey
	db       string    // database (project) id
	branch   string    // branch id
	opened   uint64    // the pool's clock when it was opened (see sqlPool.evicted)
	notices  *[]string // the current call's notices, nil between calls
	released time.Time
	ready    chan struct{} // closed when the reset after its last call ended
	resetErr error         // set before ready is closed
}

// sqlPool keeps idle connections for a short time. A released connection is reset (DISCARD
// ALL: settings, role, temporary tables, prepared statements, cursors, advisory locks, LISTEN)
// before anyone may use it again; one whose call failed, or that is in a transaction, is
// closed instead.
type sqlPool struct {
	idle time.Duration

	mu      sync.Mutex
	conns   map[sqlKey][]*sqlConn // idle, oldest first
	n       int                   // idle connections in all
	clock   uint64
	evicted map[string]uint64 // "db" or "db/branch" → the clock when it was evicted
	timer   *time.Timer
	closed  bool
	wg      sync.WaitGroup // resets and closes in flight
}

func newSQLPool(idle time.Duration) *sqlPool {
	if idle <= 0 {
		idle = DefaultSQLIdleTimeout
	}
	return &sqlPool{idle: idle, conns: map[sqlKey][]*sqlConn{}, evicted: map[string]uint64{}}
}

// open gives a connection for key: an idle one (reset, and pinged if it idled over a second),
// or a new one. reused says which.
func (p *sqlPool) open(ctx context.Context, key sqlKey, db, branch string) (c *sqlConn, reused bool, err error) {
	for {
		c := p.take(key)
		if c == nil {
			break
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			p.discard(c)
			return nil, false, ctx.Err()
		}
		if c.resetErr != nil {
			p.discard(c)
			continue
		}
		if time.Since(c.released) > sqlPingAfter {
			if err := c.Ping(ctx); err != nil {
				p.discard(c)
				if ctx.Err() != nil {
					return nil, false, ctx.Err()
				}
				continue
			}
		}
		return c, true, nil
	}
	c, err = p.connect(ctx, key, db, branch)
	return c, false, err
}

// take removes the newest idle connection of key (the oldest are left to expire).
func (p *sqlPool) take(key sqlKey) *sqlConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.conns[key]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	p.setLocked(key, list[:len(list)-1])
	return c
}

func (p *sqlPool) setLocked(key sqlKey, list []*sqlConn) {
	p.n += len(list) - len(p.conns[key])
	if len(list) == 0 {
		delete(p.conns, key)
		return
	}
	p.conns[key] = list
}

// connect opens a connection to a branch's compute as the project's role, with the tier's
// statement timeout and, for reads, the read-only default.
func (p *sqlPool) connect(ctx context.Context, key sqlKey, db, branch string) (*sqlConn, error) {
	cfg, err := pgx.ParseConfig(key.uri)
	if err != nil {
		return nil, &errcode.Error{Code: errcode.Upstream, Message: "the database's connection string could not be read", Err: err}
	}
	cfg.ConnectTimeout = sqlConnectTimeout
	cfg.RuntimeParams["application_name"] = "neonguard"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(key.timeoutMS, 10)
	if key.readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	// No named prepared statements on the server: the reset deallocates them, and pgx's
	// statement cache would then name statements that no longer exist.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	cfg.Tracer = sqlTracer{} // spans per statement when tracing is on (trace.go)
	c := &sqlConn{key: key, db: db, branch: branch}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if c.notices != nil && len(*c.notices) < 20 {
			*c.notices = append(*c.notices, truncate.UTF8(n.Severity+": "+n.Message, 300))
		}
	}
	p.mu.Lock()
	c.opened = p.clock
	p.mu.Unlock()
	c.Conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &errcode.Error{Code: errcode.Upstream, Message: "could not connect to the database's compute",
			Hint: "try again in a moment; a suspended compute may still be starting", Err: err}
	}
	return c, nil
}

// release ends a call on c. A connection is kept only when its call succeeded, it is idle
// outside a transaction, its branch was not evicted since it was opened, and there is room;
// it is then reset before anyone may take it. Otherwise it is closed.
func (p *sqlPool) release(c *sqlConn, ok bool) {
	c.notices = nil
	pg := c.PgConn()
	ok = ok && !pg.IsClosed() && !pg.IsBusy() && pg.TxStatus() == 'I'
	p.mu.Lock()
	if !ok || p.closed || p.n >= sqlIdleMax || p.evicted[c.db] > c.opened || p.evicted[c.db+"/"+c.branch] > c.opened {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	c.released, c.ready, c.resetErr = time.Now(), make(chan struct{}), nil
	list := append(p.conns[c.key], c)
	var drop *sqlConn
	if len(list) > sqlIdlePerKey {
		drop, list = list[0], list[1:]
	}
	p.setLocked(c.key, list)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idle, p.expire)
	}
	p.wg.Add(1)
	p.mu.Unlock()
	if drop != nil {
		p.discard(drop)
	}
	go p.reset(c)
}

// reset clears what the last call left in the session. A connection that cannot be reset is
// closed (by whoever holds it when the reset ends).
func (p *sqlPool) reset(c *sqlConn) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), sqlResetTimeout)
	_, err := c.PgConn().Exec(ctx, "DISCARD ALL").ReadAll()
	cancel()
	if err == nil && c.PgConn().TxStatus() != 'I' {
		err = errResetTx
	}
	if err != nil {
		c.resetErr = err
		owned := p.remove(c)
		close(c.ready)
		if owned {
			p.discard(c)
		}
		return
	}
	close(c.ready)
}

var errResetTx = errors.New("guard: connection in a transaction after its reset")

// remove takes c out of the idle lists; false when someone else took it.
func (p *sqlPool) remove(c *sqlConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.conns[c.key]
	for i, x := range list {
		if x == c {
			p.setLocked(c.key, append(list[:i:i], list[i+1:]...))
			return true
		}
	}
	return false
}

// discard closes c once its reset (if any) ended, without making the caller wait (but for a
// connection released after the pool closed).
func (p *sqlPool) discard(c *sqlConn) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeSQLConn(c)
		return
	}
	p.wg.Add(1) // under mu, so never after close's Wait began
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		closeSQLConn(c)
	}()
}

func closeSQLConn(c *sqlConn) {
	if c.ready != nil {
		<-c.ready
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = c.Close(ctx)
	cancel()
}

// dropKey closes the idle connections of key: one of them was found dead (the compute
// restarted or suspended), so the others are too.
func (p *sqlPool) dropKey(key sqlKey) {
	p.mu.Lock()
	list := p.conns[key]
	p.setLocked(key, nil)
	p.mu.Unlock()
	for _, c := range list {
		p.discard(c)
	}
}

// evict closes a branch's connections (branch "" = every branch of the database): its compute
// is about to restart or go away. Connections in use are closed when they are released.
func (p *sqlPool) evict(db, branch string) {
	key := db
	if branch != "" {
		key += "/" + branch
	}
	var drop []*sqlConn
	p.mu.Lock()
	p.clock++
	p.evicted[key] = p.clock
	for k, list := range p.conns {
		keep := list[:0:0]
		for _, c := range list {
			if c.db == db && (branch == "" || c.branch == branch) {
				drop = append(drop, c)
			} else {
				keep = append(keep, c)
			}
		}
		p.setLocked(k, keep)
	}
	p.mu.Unlock()
	for _, c := range drop {
		p.discard(c)
	}
}

// expire closes the connections idle for longer than the idle time, and comes back for the
// next one due.
func (p *sqlPool) expire() {
	now := time.Now()
	var drop []*sqlConn
	p.mu.Lock()
	p.timer = nil
	if p.closed {
		p.mu.Unlock()
		return
	}
	var next time.Time
	for k, list := range p.conns {
		i := 0
		for i < len(list) && now.Sub(list[i].released) >= p.idle {
			i++
		}
		drop = append(drop, list[:i]...)
		p.setLocked(k, list[i:])
		if i < len(list) && (next.IsZero() || list[i].released.Before(next)) {
			next = list[i].released
		}
	}
	if !next.IsZero() {
		p.timer = time.AfterFunc(next.Add(p.idle).Sub(now), p.expire)
	}
	p.mu.Unlock()
	for _, c := range drop {
		p.discard(c)
	}
}

// close closes every connection and keeps no more; it waits for the closes. Connections in
// use are closed when released.
func (p *sqlPool) close() {
	p.mu.Lock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	var drop []*sqlConn
	for k, list := range p.conns {
		drop = append(drop, list...)
		p.setLocked(k, nil)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range drop {
		wg.Go(func() { closeSQLConn(c) })
	}
	wg.Wait()
	p.wg.Wait()
}

// withSQL runs a call on a connection to t's branch, a kept one when there is one. first is
// the call's first round trip and must change nothing (BEGIN, reading the restore point, the
// guard's own catalog reads): when it fails because a kept connection turned out dead (the
// compute restarted, suspended or went away), it runs once more on a new connection. Nothing
// is retried after first: then a statement may have run. rest may be nil. The connection is
// kept for the next call only when the call succeeded.
func (g *Guard) withSQL(ctx context.Context, t sqlTarget, limits policy.SQLLimits, readOnly bool, notices *[]string,
	first, rest func(*pgx.Conn) error) error {
	key := sqlKey{uri: t.uri, timeoutMS: limits.StatementTimeout.Milliseconds(), readOnly: readOnly}
	c, reused, err := g.sql.open(ctx, key, t.db.ID, t.branchID)
	if err != nil {
		return err
	}
	c.notices = notices
	err = first(c.Conn)
	if err != nil && reused && c.IsClosed() && ctx.Err() == nil {
		g.sql.discard(c)
		g.sql.dropKey(key)
		if c, err = g.sql.connect(ctx, key, t.db.ID, t.branchID); err != nil {
			return err
		}
		c.notices = notices
		err = first(c.Conn)
	}
	if err == nil && rest != nil {
		err = rest(c.Conn)
	}
	// A read of several statements was rolled back before it ran: the connection is clean.
	g.sql.release(c, err == nil || errors.Is(err, errSeveralStatements))
	return err
}

// Close closes the SQL connections the guard keeps. The guard stays usable: later calls
// connect anew and keep nothing.
func (g *Guard) Close() error {
	g.sql.close()
	return nil
}
