//go:build unix

package store

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAuditPerCall measures the audit row as a server answering one call at a time pays
// for it (stdio, a quiet HTTP server: group commit has nothing to group): one AppendAudit, one
// transaction, one commit. Besides ns/op it reports cpu-µs/row, this process's user+system
// time (getrusage) per row: the SQLite engine runs in-process, so that is the whole cost on
// SQLite, while on PostgreSQL it is the client's share and pg-cpu-µs/row the server backends'
// (read from /proc, so only when the server runs on this machine). rows=100000 starts from a
// table that already holds that many rows, because the cost grows with the b-trees' depth.
//
//	go test -run '^$' -bench AuditPerCall -count 5 ./internal/store
func BenchmarkAuditPerCall(b *testing.B) {
	for _, eng := range engines {
		for _, rows := range []int{0, 100_000} {
			b.Run(fmt.Sprintf("%s/rows=%d", eng.name, rows), func(b *testing.B) {
				s := eng.open(b)
				prefillAudit(b, s, rows)
				ctx := b.Context()
				e := AuditEntry{TenantID: "tenant-7", Tool: "list_databases", Args: `{}`,
					Decision: "allow", Outcome: "ok", DurationMS: 1, RequestID: "req-1"}
				pgPIDs := pgBackendPIDs(b, s)
				pg0, pgOK := procCPUSum(pgPIDs)
				cpu0 := rusageCPU(b)
				b.ReportAllocs()
				for b.Loop() {
					if err := s.AppendAudit(ctx, e); err != nil {
						b.Fatal(err)
					}
				}
				cpu := rusageCPU(b) - cpu0
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
				if pg1, ok := procCPUSum(pgPIDs); pgOK && ok {
					b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-cpu-µs/row")
				}
			})
		}
	}
}

// prefillAudit inserts n rows spread over the last hour, ids below any the store draws now,
// in one statement (portable to both engines) rather than n calls, to keep the set-up short.
func prefillAudit(b *testing.B, s Store, n int) {
	b.Helper()
	if n == 0 {
		return
	}
	ctx := b.Context()
	const stepMicros = 36_000
	start := time.Now().Add(-time.Hour).UnixMicro()
	_, err := writerDB(s).ExecContext(ctx, `WITH RECURSIVE n(i) AS (
SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
INSERT INTO audit (id, at, tenant_id, tool, args, database_id, decision, outcome, error,
duration_ms, request_id)
SELECT CAST($2 AS BIGINT) + CAST(i AS BIGINT) * CAST($3 AS BIGINT),
CAST($4 AS BIGINT) + CAST(i AS BIGINT) * $5,
'tenant-' || CAST(i % 50 AS TEXT), 'list_databases', '{}', '', 'allow', 'ok', '', i % 100,
'req-' || CAST(i AS TEXT) FROM n`,
		n, start<<auditSeqBits, int64(stepMicros)<<auditSeqBits, start, stepMicros)
	if err != nil {
		b.Fatalf("prefill %d audit rows: %v", n, err)
	}
	if sl, ok := s.(*SQLite); ok {
		// Start with an empty WAL, as a long-running server mostly does.
		if _, err := sl.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
	}
}

// writerDB is the engine's pool that may write.
func writerDB(s Store) *sql.DB {
	switch s := s.(type) {
	case *SQLite:
		return s.w
	case *Postgres:
		return s.w
	}
	panic("writerDB: unknown engine")
}

// rusageCPU is this process's user+system CPU time so far.
func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgBackendPIDs lists the PostgreSQL backends serving s's database (nil on SQLite): the
// connections of the store's pool, whose CPU the server spends on the rows.
func pgBackendPIDs(b *testing.B, s Store) []int {
	b.Helper()
	p, ok := s.(*Postgres)
	if !ok {
		return nil
	}
	rows, err := p.r.QueryContext(b.Context(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := collect(rows, func(r scanner) (int, error) {
		var pid int
		return pid, r.Scan(&pid)
	})
	if err != nil {
		b.Fatal(err)
	}
	return pids
}

// procCPUSum adds up the user+system CPU time of pids from /proc (Linux clock ticks of 1/100 s);
// false when there are none or one cannot be read (another machine, no /proc).
func procCPUSum(pids []int) (time.Duration, bool) {
	var sum time.Duration
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// Fields after the command name's closing parenthesis start at field 3, so utime and
		// stime (fields 14 and 15) are at 11 and 12.
		_, rest, _ := strings.Cut(string(data), ") ")
		f := strings.Fields(rest)
		if len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if errors.Join(err1, err2) != nil {
			return 0, false
		}
		sum += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return sum, len(pids) > 0
}
