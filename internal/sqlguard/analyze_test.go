package sqlguard

import (
	"errors"
	"strings"
	"testing"
)

// Each case is one SQL text and what its statements are: R read-only, W writes, D destructive.
func TestAnalyze(t *testing.T) {
	cases := []struct {
		sql  string
		want string // one letter per statement
		cmd  string // the first statement's command, when checked
	}{
		{"SELECT 1", "R", "SELECT"},
		{"select * from users where id = $1", "R", "SELECT"},
		{"SELECT * FROM t FOR UPDATE", "W", "SELECT"},
		{"SELECT * INTO backup FROM t", "W", "SELECT INTO"},
		{"WITH x AS (SELECT 1) SELECT * FROM x", "R", "SELECT"},
		{"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "D", "SELECT"},
		{"WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", "W", "SELECT"},
		{"WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", "D", "SELECT"},
		{"INSERT INTO t VALUES (1)", "W", "INSERT"},
		{"INSERT INTO t SELECT * FROM s ON CONFLICT DO NOTHING", "W", "INSERT"},
		{"UPDATE t SET a = 1 WHERE id = 2", "W", "UPDATE"},
		{"UPDATE t SET a = 1", "D", "UPDATE"},
		{"DELETE FROM t WHERE id = 2", "W", "DELETE"},
		{"DELETE FROM t", "D", "DELETE"},
		{"DELETE FROM t USING s WHERE t.id = s.id", "W", "DELETE"},
		{"TRUNCATE t", "D", "TRUNCATE"},
		{"TRUNCATE TABLE a, b RESTART IDENTITY", "D", "TRUNCATE"},
		{"DROP TABLE t", "D", "DROP TABLE"},
		{"DROP TABLE IF EXISTS t CASCADE", "D", "DROP TABLE"},
		{"DROP SCHEMA app CASCADE", "D", "DROP SCHEMA"},
		{"DROP DATABASE other", "D", "DROP DATABASE"},
		{"DROP MATERIALIZED VIEW mv", "D", "DROP MATERIALIZED VIEW"},
		{"DROP SEQUENCE s", "D", "DROP SEQUENCE"},
		{"DROP TYPE mood", "D", "DROP TYPE"},
		{"DROP INDEX idx", "W", "DROP INDEX"},
		{"DROP VIEW v", "W", "DROP VIEW"},
		{"DROP VIEW v CASCADE", "D", "DROP VIEW"},
		{"DROP FUNCTION f()", "W", "DROP FUNCTION"},
		{"DROP OWNED BY someone", "D", "DROP OWNED"},
		{"ALTER TABLE t DROP COLUMN c", "D", "ALTER TABLE DROP COLUMN"},
		{"ALTER TABLE t ADD COLUMN c int, DROP COLUMN d", "D", "ALTER TABLE DROP COLUMN"},
		{"ALTER TABLE t ALTER COLUMN c TYPE bigint", "D", "ALTER TABLE ALTER COLUMN TYPE"},
		{"ALTER TABLE t ADD COLUMN c int DEFAULT 0", "W", "ALTER TABLE"},
		{"ALTER TABLE t RENAME COLUMN a TO b", "W", ""},
		{"CREATE TABLE t (id int primary key)", "W", "CREATE"},
		{"CREATE INDEX CONCURRENTLY i ON t (a)", "W", "INDEX"},
		{"DO $$ BEGIN DELETE FROM t; END $$", "D", "DO"},
		{"EXPLAIN DELETE FROM t", "R", "EXPLAIN"},
		{"EXPLAIN ANALYZE DELETE FROM t", "D", "EXPLAIN ANALYZE DELETE"},
		{"EXPLAIN (ANALYZE false) DELETE FROM t", "R", "EXPLAIN"},
		{"SHOW search_path", "R", "SHOW"},
		{"SET statement_timeout = '5s'", "R", "SET"},
		{"-- DROP TABLE t\nSELECT 1", "R", "SELECT"},
		{"/* DELETE FROM t */ SELECT 'DROP TABLE t'", "R", "SELECT"},
		{"SELECT $$DROP TABLE t; DELETE FROM t$$", "R", "SELECT"},
		{"SELECT $tag$ ; TRUNCATE t; $tag$ AS s", "R", "SELECT"},
		{"SELECT 1; DELETE FROM t; SELECT 2", "RDR", "SELECT"},
		{"BEGIN; DROP TABLE t; COMMIT", "RDR", "TRANSACTION"},
		{"INSERT INTO t VALUES (1);;; UPDATE t SET a = 2 WHERE id = 1;", "WW", "INSERT"},
		{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "W", "MERGE"},
		{`SELECT * FROM "DROP TABLE x"`, "R", "SELECT"},
		{"VACUUM t", "W", "VACUUM"},
		{"CALL do_things()", "W", "CALL"},
	}
	for _, tc := range cases {
		a, err := Analyze(tc.sql)
		if err != nil {
			t.Errorf("%q: %v", tc.sql, err)
			continue
		}
		got := ""
		for _, s := range a.Statements {
			switch {
			case s.Destructive:
				got += "D"
				if s.Reason == "" {
					t.Errorf("%q: %s is destructive without a reason", tc.sql, s.Command)
				}
			case s.ReadOnly:
				got += "R"
			default:
				got += "W"
			}
		}
		if got != tc.want {
			t.Errorf("%q = %s, want %s (%+v)", tc.sql, got, tc.want, a.Statements)
		}
		if tc.cmd != "" && !strings.HasPrefix(a.Statements[0].Command, tc.cmd) {
			t.Errorf("%q: command %q, want %q", tc.sql, a.Statements[0].Command, tc.cmd)
		}
		if a.ReadOnly() != !strings.ContainsAny(tc.want, "WD") || (len(a.Destructive()) > 0) != strings.Contains(tc.want, "D") {
			t.Errorf("%q: ReadOnly %v, %d destructive", tc.sql, a.ReadOnly(), len(a.Destructive()))
		}
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
}

func TestStatementTexts(t *testing.T) {
	a, err := Analyze("  SELECT 1 ;\n DELETE FROM t  ;  DROP TABLE t")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range a.Statements {
		got = append(got, s.Text)
	}
	if strings.Join(got, "|") != "SELECT 1|DELETE FROM t|DROP TABLE t" {
		t.Fatalf("texts %q", got)
	}
}

func TestSyntaxErrorsAndEmpty(t *testing.T) {
	_, err := Analyze("SELECT 1; SELEC 2")
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Message, `"SELEC"`) || se.Position != 11 {
		t.Fatalf("syntax error: %#v", err)
	}
	for _, empty := range []string{"", "  ", ";;", "-- nothing\n"} {
		if _, err := Analyze(empty); !errors.Is(err, ErrEmpty) {
			t.Errorf("%q: %v, want ErrEmpty", empty, err)
		}
	}
}
