package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// User is the LOGIN role every Server makes; it owns the databases NewDatabase creates.
const User = "neonguard_test"

// Server is a PostgreSQL cluster run for tests. Like every pgctl cluster it accepts TCP only
// with TLS and a SCRAM password, on 127.0.0.1: DSN gives a URL with sslmode=require (the
// certificate is self-signed, so it is not verified).
type Server struct {
	Port     int
	Password string // of User

	tk    *pgctl.Toolkit
	proc  *pgctl.Process
	root  string // everything of the cluster; removed by Stop
	dbSeq atomic.Int64
}

// StartServer starts a server for tb alone and stops it in tb's cleanup. It skips (or fails,
// see Require) without PostgreSQL. A package with many tests shares one through Shared.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	bin := Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, bin)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// Start initialises a cluster in a new temporary directory, starts it on a free port and
// creates User with a random password. ctx bounds the startup only. The caller must Stop it.
func Start(ctx context.Context, bin pgctl.Binaries) (_ *Server, err error) {
	ra, err := pgctl.ResolveRunAs("")
	if err != nil {
		return nil, err
	}
	// os.MkdirTemp, not tb.TempDir: the path stays short (the socket path has a 107-byte limit),
	// and a Shared server outlives the test that started it.
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(root)
		}
	}()
	if err := os.Chmod(root, 0o711); err != nil { // PostgreSQL's user must reach its data dir
		return nil, err
	}
	tk := &pgctl.Toolkit{Bin: bin, RunAs: ra, NoSync: true, StopGrace: 10 * time.Second}
	data := filepath.Join(root, "data")
	if err := tk.InitDB(ctx, data); err != nil {
		return nil, err
	}
	cert, key, err := pgctl.EnsureCert(filepath.Join(root, "tls"), ra)
	if err != nil {
		return nil, err
	}
	proc, err := tk.Start(ctx, pgctl.ServerConfig{
		DataDir: data, SocketDir: filepath.Join(root, "sock"), CertFile: cert, KeyFile: key,
		Settings: map[string]string{
			"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
			// Every test opens its own pools; the default of 50 would be tight.
			"max_connections": "200",
		},
	})
	if err != nil {
		return nil, err
	}
	s := &Server{Port: proc.Port, tk: tk, proc: proc, root: root}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s.Password = hex.EncodeToString(pw)
	if err := s.admin(ctx, func(c *pgx.Conn) error {
		// The password is hex: safe to quote literally.
		_, err := c.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", User, s.Password))
		return err
	}); err != nil {
		return nil, fmt.Errorf("create role: %w", err)
	}
	return s, nil
}

// DSN is a URL for User to connect to database.
func (s *Server) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(User, s.Password),
		Host:     "127.0.0.1:" + strconv.Itoa(s.Port),
		Path:     "/" + database,
		RawQuery: "sslmode=require",
	}
	return u.String()
}

// NewDatabase creates an empty database owned by User, so every test gets one of its own,
// and returns its DSN. It is dropped in tb's cleanup (after the test closed its pools, as
// cleanups run last-registered first).
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := "test_" + strconv.FormatInt(s.dbSeq.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.admin(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+User)
		return err
	}); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drop := "DROP DATABASE " + name
		if s.tk.Bin.Major >= 13 {
			drop += " WITH (FORCE)" // ends sessions a failed test left open
		}
		if err := s.admin(ctx, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, drop)
			return err
		}); err != nil {
			tb.Errorf("pgtest: drop database: %v", err)
		}
	})
	return s.DSN(name)
}

// admin runs f on a superuser connection over the cluster's private unix socket.
func (s *Server) admin(ctx context.Context, f func(*pgx.Conn) error) error {
	c, err := s.tk.Admin(ctx, s.proc.SocketDir, s.proc.Port, "postgres")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	return f(c)
}

// Stop shuts the server down and removes its files.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.proc.Stop(ctx)
	return errors.Join(err, os.RemoveAll(s.root))
}

// Shared is one Server for a whole test package, started by the first test that asks for it.
// Declare it next to the package's TestMain, which stops it:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the shared server, starting it on first use; each caller skips (or fails, see
// Require) without PostgreSQL, and fails when it could not start.
func (sh *Shared) Server(tb testing.TB) *Server {
	tb.Helper()
	bin := Require(tb)
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sh.srv, sh.err = Start(ctx, bin)
	})
	if sh.err != nil {
		tb.Fatalf("pgtest: %v", sh.err)
	}
	return sh.srv
}

// Stop stops the server if one was started; for TestMain, after m.Run.
func (sh *Shared) Stop() {
	if sh.srv != nil {
		if err := sh.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
}
