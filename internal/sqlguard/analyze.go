// Package sqlguard reads SQL the way PostgreSQL does, with PostgreSQL's own parser (libpg_query,
// compiled to WebAssembly and run in pure Go by wazero, so the build stays CGO_ENABLED=0), and
// says what each statement would do: whether it only reads, and whether it destroys data or
// definitions an agent cannot get back without a restore (DROP TABLE, TRUNCATE, DELETE without
// WHERE, …). Regular expressions cannot do this: comments, dollar quoting, CTEs that delete and
// several statements in one string all hide or fake keywords.
//
// The parser is loaded on first use: its WebAssembly is compiled then (about a second of CPU)
// and stays resident (about 230 MB), so a process that never parses SQL does not pay for it.
package sqlguard

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
)

// Statement is one statement of the analysed SQL.
type Statement struct {
	Text        string // the statement as written (trimmed)
	Command     string // e.g. "SELECT", "DROP TABLE", "ALTER TABLE DROP COLUMN"
	ReadOnly    bool   // it only reads
	Destructive bool   // it destroys data or definitions: on main it needs confirmation
	Reason      string // why it is destructive, for the agent
}

// Analysis is the analysis of one SQL text.
type Analysis struct {
	Statements []Statement
}

// ReadOnly reports whether every statement only reads.
func (a Analysis) ReadOnly() bool {
	for _, s := range a.Statements {
		if !s.ReadOnly {
			return false
		}
	}
	return true
}

// Destructive lists the destructive statements.
func (a Analysis) Destructive() []Statement {
	var out []Statement
	for _, s := range a.Statements {
		if s.Destructive {
			out = append(out, s)
		}
	}
	return out
}

// SyntaxError is PostgreSQL's parser refusing the SQL.
type SyntaxError struct {
	Message  string
	Position int // 1-based character position in the SQL; 0 when unknown
}

func (e *SyntaxError) Error() string {
	if e.Position > 0 {
		return fmt.Sprintf("%s (at character %d)", e.Message, e.Position)
	}
	return e.Message
}

// ErrEmpty is SQL without any statement (only whitespace, comments or semicolons).
var ErrEmpty = errors.New("sqlguard: no SQL statement")

// Analyze parses sql and describes each statement. A syntax error is a *SyntaxError.
func Analyze(sql string) (Analysis, error) {
	tree, err := pgquery.Parse(sql)
	if err != nil {
		return Analysis{}, &SyntaxError{Message: err.Error(), Position: cursor(err)}
	}
	var a Analysis
	for _, raw := range tree.GetStmts() {
		st := describe(raw.GetStmt())
		st.Text = statementText(sql, int(raw.GetStmtLocation()), int(raw.GetStmtLen()))
		a.Statements = append(a.Statements, st)
	}
	if len(a.Statements) == 0 {
		return Analysis{}, ErrEmpty
	}
	return a, nil
}

// cursor is the parser's error position. The library's error type is internal to it, so its
// exported Cursorpos field is read by name.
func cursor(err error) int {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		if f := v.Elem().FieldByName("Cursorpos"); f.IsValid() && f.CanInt() {
			return int(f.Int())
		}
	}
	return 0
}

// statementText cuts one statement out of sql; PostgreSQL's locations are byte offsets, and a
// length of 0 means "to the end".
func statementText(sql string, loc, n int) string {
	if loc < 0 || loc > len(sql) {
		return strings.TrimSpace(sql)
	}
	end := len(sql)
	if n > 0 && loc+n <= len(sql) {
		end = loc + n
	}
	return strings.TrimSpace(sql[loc:end])
}

// describe classifies one statement.
func describe(n *pg.Node) Statement {
	switch {
	case n.GetSelectStmt() != nil:
		s := n.GetSelectStmt()
		st := Statement{Command: "SELECT", ReadOnly: s.GetIntoClause() == nil && len(s.GetLockingClause()) == 0}
		if s.GetIntoClause() != nil {
			st.Command = "SELECT INTO"
		}
		return withCTEs(st, s.GetWithClause())
	case n.GetInsertStmt() != nil:
		return withCTEs(Statement{Command: "INSERT"}, n.GetInsertStmt().GetWithClause())
	case n.GetUpdateStmt() != nil:
		u := n.GetUpdateStmt()
		st := Statement{Command: "UPDATE"}
		if u.GetWhereClause() == nil {
			st.Destructive, st.Reason = true, "UPDATE without WHERE changes every row of "+relation(u.GetRelation())
		}
		return withCTEs(st, u.GetWithClause())
	case n.GetDeleteStmt() != nil:
		d := n.GetDeleteStmt()
		st := Statement{Command: "DELETE"}
		if d.GetWhereClause() == nil {
			st.Destructive, st.Reason = true, "DELETE without WHERE removes every row of "+relation(d.GetRelation())
		}
		return withCTEs(st, d.GetWithClause())
	case n.GetMergeStmt() != nil:
		return withCTEs(Statement{Command: "MERGE"}, n.GetMergeStmt().GetWithClause())
	case n.GetTruncateStmt() != nil:
		return Statement{Command: "TRUNCATE", Destructive: true, Reason: "TRUNCATE removes every row"}
	case n.GetDropStmt() != nil:
		return describeDrop(n.GetDropStmt())
	case n.GetDropdbStmt() != nil:
		return Statement{Command: "DROP DATABASE", Destructive: true, Reason: "DROP DATABASE removes a database with all its data"}
	case n.GetDropOwnedStmt() != nil:
		return Statement{Command: "DROP OWNED", Destructive: true, Reason: "DROP OWNED drops every object a role owns"}
	case n.GetAlterTableStmt() != nil:
		return describeAlterTable(n.GetAlterTableStmt())
	case n.GetDoStmt() != nil:
		return Statement{Command: "DO", Destructive: true, Reason: "a DO block runs code whose effect cannot be known before it runs"}
	case n.GetExplainStmt() != nil:
		e := n.GetExplainStmt()
		inner := describe(e.GetQuery())
		if explainAnalyze(e) { // EXPLAIN ANALYZE runs the statement
			inner.Command = "EXPLAIN ANALYZE " + inner.Command
			return inner
		}
		return Statement{Command: "EXPLAIN", ReadOnly: true}
	case n.GetVariableShowStmt() != nil:
		return Statement{Command: "SHOW", ReadOnly: true}
	case n.GetVariableSetStmt() != nil:
		return Statement{Command: "SET", ReadOnly: true} // the session's own settings, not data
	case n.GetTransactionStmt() != nil:
		return Statement{Command: "TRANSACTION", ReadOnly: true}
	}
	return Statement{Command: commandName(n)}
}

// withCTEs applies what the statement's WITH clause does: a data-modifying CTE writes, and a
// destructive one makes the statement destructive.
func withCTEs(st Statement, with *pg.WithClause) Statement {
	for _, c := range with.GetCtes() {
		inner := describe(c.GetCommonTableExpr().GetCtequery())
		if !inner.ReadOnly {
			st.ReadOnly = false
		}
		if inner.Destructive && !st.Destructive {
			st.Destructive, st.Reason = true, inner.Reason+" (in a WITH clause)"
		}
	}
	return st
}

// destructiveDrop names the objects whose DROP loses data or what holds it.
func destructiveDrop(t pg.ObjectType) (string, bool) {
	switch t {
	case pg.ObjectType_OBJECT_TABLE:
		return "TABLE", true
	case pg.ObjectType_OBJECT_SCHEMA:
		return "SCHEMA", true
	case pg.ObjectType_OBJECT_MATVIEW:
		return "MATERIALIZED VIEW", true
	case pg.ObjectType_OBJECT_SEQUENCE:
		return "SEQUENCE", true
	case pg.ObjectType_OBJECT_FOREIGN_TABLE:
		return "FOREIGN TABLE", true
	case pg.ObjectType_OBJECT_TYPE:
		return "TYPE", true
	case pg.ObjectType_OBJECT_DOMAIN:
		return "DOMAIN", true
	case pg.ObjectType_OBJECT_EXTENSION:
		return "EXTENSION", true
	}
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " "), false
}

func describeDrop(d *pg.DropStmt) Statement {
	kind, ok := destructiveDrop(d.GetRemoveType())
	st := Statement{Command: "DROP " + kind}
	switch {
	case ok:
		st.Destructive, st.Reason = true, "DROP "+kind+" removes it with its data"
	case d.GetBehavior() == pg.DropBehavior_DROP_CASCADE:
		st.Destructive, st.Reason = true, "DROP … CASCADE also drops what depends on it"
	}
	return st
}

func describeAlterTable(a *pg.AlterTableStmt) Statement {
	st := Statement{Command: "ALTER TABLE"}
	for _, c := range a.GetCmds() {
		cmd := c.GetAlterTableCmd()
		switch cmd.GetSubtype() {
		case pg.AlterTableType_AT_DropColumn:
			st.Command, st.Destructive = "ALTER TABLE DROP COLUMN", true
			st.Reason = fmt.Sprintf("DROP COLUMN %s removes the column's data from %s", cmd.GetName(), relation(a.GetRelation()))
			return st
		case pg.AlterTableType_AT_AlterColumnType:
			st.Command, st.Destructive = "ALTER TABLE ALTER COLUMN TYPE", true
			st.Reason = fmt.Sprintf("changing the type of %s.%s rewrites its data (and may lose precision)", relation(a.GetRelation()), cmd.GetName())
			return st
		}
	}
	return st
}

func explainAnalyze(e *pg.ExplainStmt) bool {
	for _, o := range e.GetOptions() {
		d := o.GetDefElem()
		if d.GetDefname() != "analyze" {
			continue
		}
		if arg := d.GetArg(); arg != nil {
			if s := arg.GetString_(); s != nil && (s.GetSval() == "false" || s.GetSval() == "off") {
				return false
			}
			if b := arg.GetBoolean(); b != nil && !b.GetBoolval() {
				return false
			}
		}
		return true
	}
	return false
}

func relation(r *pg.RangeVar) string {
	if r == nil {
		return "the table"
	}
	if r.GetSchemaname() != "" {
		return r.GetSchemaname() + "." + r.GetRelname()
	}
	return r.GetRelname()
}

// commandName names a statement this package does not single out, from its node type
// ("CreateStmt" → "CREATE").
func commandName(n *pg.Node) string {
	if n == nil || n.GetNode() == nil {
		return "UNKNOWN"
	}
	name := reflect.TypeOf(n.GetNode()).Elem().Name() // e.g. Node_CreateStmt
	name = strings.TrimSuffix(strings.TrimPrefix(name, "Node_"), "Stmt")
	var words []string
	start := 0
	for i := 1; i <= len(name); i++ {
		if i == len(name) || (name[i] >= 'A' && name[i] <= 'Z') {
			words = append(words, strings.ToUpper(name[start:i]))
			start = i
		}
	}
	return strings.Join(words, " ")
}
