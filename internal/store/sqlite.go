package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ Store = (*SQLite)(nil)

// SQLite is the embedded Store: one file, opened through the pure-Go modernc driver.
//
// Writes go through a single connection, so SQLite never sees two writers from this process
// and transactions cannot deadlock on lock upgrades; reads use a separate read-only pool, which
// WAL mode lets run beside the writer, so GetDatabase on the hot path never queues behind an
// audit insert.
type SQLite struct {
	sqlStore // the Store methods, shared with Postgres
}

const busyTimeoutMS = 5000

// OpenSQLite opens (creating if needed) the store at path and migrates it to the newest
// schema. The parent directory is created with mode 0700 and the file with 0600: it holds
// token hashes and the audit trail.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: open sqlite: empty path")
	}
	// The driver reads everything after '?' as DSN parameters.
	if strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: open sqlite: path %q: '?' and file: URIs are not supported", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}

	// _txlock=immediate takes the write lock at BEGIN: a deferred transaction that reads and
	// then writes can fail with SQLITE_BUSY regardless of busy_timeout when another process
	// wrote in between.
	w, err := sql.Open("sqlite", fmt.Sprintf(
		"%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate",
		path, busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, goose.DialectSQLite3, w); err != nil {
		_ = w.Close()
		return nil, err
	}

	// The file is in WAL mode now (persistent), so readers need not set it; query_only makes
	// an accidental write through the read pool fail loudly instead of racing the writer.
	r, err := sql.Open("sqlite", fmt.Sprintf("%s?_busy_timeout=%d&_query_only=1", path, busyTimeoutMS))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	s := &SQLite{}
	s.w, s.r = w, r
	if err := s.prepareHot(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: open sqlite %s: prepare: %w", path, err)
	}
	return s, nil
}

// createPrivate makes sure path exists with mode 0600 before SQLite opens it; SQLite gives its
// -wal and -shm files the database file's mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(path, 0o600)
	}
	return nil
}

// Close closes the statements and both pools.
func (s *SQLite) Close() error { return s.close() }

func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func sqliteUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func sqliteForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
