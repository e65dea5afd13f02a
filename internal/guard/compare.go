package guard

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/truncate"
)

// CompareSchemaInput is compare_schema's input.
type CompareSchemaInput struct {
	DatabaseID string
	Branch     string // name or id; required
	Base       string // name or id; empty = main
	Schema     string // empty = public
}

// SchemaDifference is one thing that differs between base and branch.
type SchemaDifference struct {
	Kind   string `json:"kind" jsonschema:"enum=table,enum=column,enum=index,enum=constraint,enum=view,enum=enum"`
	Name   string `json:"name" jsonschema_description:"e.g. t, t.column, t.index"`
	Change string `json:"change" jsonschema:"enum=added,enum=removed,enum=changed"`
	Base   string `json:"base,omitempty"`
	Branch string `json:"branch,omitempty"`
}

// CompareSchemaResult is compare_schema's result.
type CompareSchemaResult struct {
	DatabaseID  string             `json:"database_id"`
	Base        string             `json:"base"`
	Branch      string             `json:"branch"`
	Schema      string             `json:"schema"`
	Identical   bool               `json:"identical"`
	Differences []SchemaDifference `json:"differences"`
	SQL         []string           `json:"sql" jsonschema_description:"brings base to branch without dropping or rewriting anything"`
	Unsafe      []string           `json:"unsafe" jsonschema_description:"drops and type changes (can lose data), to run after sql only if intended"`
	Notes       []string           `json:"notes,omitempty" jsonschema_description:"differences without SQL"`
}

// CompareSchema compares one schema of two branches of a database: what branch has that base
// has not, lacks, or has otherwise, and the SQL that brings base to branch. Both are read
// with describe_schema's catalog reading.
func (g *Guard) CompareSchema(ctx context.Context, in CompareSchemaInput) (*CompareSchemaResult, error) {
	if in.Branch == "" {
		return nil, invalid("branch is required", "pass the branch to compare with base (list_branches)")
	}
	schema := cmp.Or(in.Schema, "public")
	var base, branch *DescribeSchemaResult
	var q func(string) string
	bt, err := g.readBranch(ctx, in.DatabaseID, in.Base, func(conn *pgx.Conn) (err error) {
		if base, err = describeSchema(ctx, conn, schema); err != nil {
			return sqlError(err, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t, err := g.readBranch(ctx, in.DatabaseID, in.Branch, func(conn *pgx.Conn) (err error) {
		if branch, err = describeSchema(ctx, conn, schema); err != nil {
			return sqlError(err, true)
		}
		if q, err = quoter(ctx, conn, base, branch, schema); err != nil {
			return sqlError(err, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := compareSchemas(base, branch, schema, q)
	out.DatabaseID, out.Base, out.Branch = bt.db.ID, bt.branch, t.branch
	return out, nil
}

// quoter quotes identifiers as PostgreSQL's quote_ident does (only where needed), asking it
// once for every name of both schemas.
func quoter(ctx context.Context, conn *pgx.Conn, a, b *DescribeSchemaResult, schema string) (func(string) string, error) {
	names := []string{schema}
	for _, d := range []*DescribeSchemaResult{a, b} {
		for _, t := range slices.Concat(d.Tables, d.Views) {
			names = append(names, t.Name)
			for _, c := range t.Columns {
				names = append(names, c.Name)
			}
			for _, k := range t.constraints {
				names = append(names, k.name)
			}
		}
		for _, e := range d.Enums {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	rows, err := conn.Query(ctx, `SELECT n, quote_ident(n) FROM unnest($1::text[]) n`, names)
	if err != nil {
		return nil, err
	}
	quoted := map[string]string{}
	for rows.Next() {
		var n, qn string
		if err := rows.Scan(&n, &qn); err != nil {
			rows.Close()
			return nil, err
		}
		quoted[n] = qn
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return func(n string) string {
		if qn, ok := quoted[n]; ok {
			return qn
		}
		return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}, nil
}

// schemaPlan collects the statements of a comparison in the order they must run.
type schemaPlan struct {
	// Safe, in this order.
	types, sequences, tables, owned, columns, alters, keys, foreign, indexes, views []string

	// Unsafe, in this order.
	dropViews, dropForeign, dropKeys, dropIndexes, retype, dropColumns, dropTables, dropTypes []string
	recreate, recreateForeign, recreateViews                                                  []string

	diffs []SchemaDifference
	notes []string

	prefix string // the schema's qualification of a name: "" for public
}

func (p *schemaPlan) diff(kind, name, change, base, branch string) {
	p.diffs = append(p.diffs, SchemaDifference{Kind: kind, Name: name, Change: change,
		Base: truncate.UTF8(base, 300), Branch: truncate.UTF8(branch, 300)})
}

// compareSchemas is the comparison itself: pure, so it is table-tested without PostgreSQL.
func compareSchemas(base, branch *DescribeSchemaResult, schema string, q func(string) string) *CompareSchemaResult {
	p := &schemaPlan{}
	if schema != "public" {
		p.prefix = q(schema) + "."
	}
	rel := func(name string) string { return p.prefix + q(name) }
	p.compareEnums(base.Enums, branch.Enums, rel)
	p.compareTables(base.Tables, branch.Tables, rel, q)
	p.compareViews(base.Views, branch.Views, rel)
	out := &CompareSchemaResult{Schema: schema, Differences: p.diffs,
		SQL: slices.Concat(p.types, p.sequences, p.tables, p.owned, p.columns, p.alters, p.keys, p.foreign, p.indexes, p.views),
		Unsafe: slices.Concat(p.dropViews, p.dropForeign, p.dropKeys, p.dropIndexes, p.retype, p.dropColumns, p.dropTables,
			p.dropTypes, p.recreate, p.recreateForeign, p.recreateViews),
		Notes: p.notes}
	out.Identical = len(out.Differences) == 0
	for _, s := range []*[]string{&out.SQL, &out.Unsafe} {
		if *s == nil {
			*s = []string{}
		}
	}
	if out.Differences == nil {
		out.Differences = []SchemaDifference{}
	}
	return out
}

func (p *schemaPlan) compareEnums(base, branch []SchemaEnum, rel func(string) string) {
	old := map[string]SchemaEnum{}
	for _, e := range base {
		old[e.Name] = e
	}
	for _, e := range branch {
		o, ok := old[e.Name]
		delete(old, e.Name)
		switch {
		case !ok:
			p.diff("enum", e.Name, "added", "", strings.Join(e.Values, ", "))
			p.types = append(p.types, fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", rel(e.Name), literals(e.Values)))
		case !slices.Equal(o.Values, e.Values):
			p.diff("enum", e.Name, "changed", strings.Join(o.Values, ", "), strings.Join(e.Values, ", "))
			adds, ok := enumAdditions(o.Values, e.Values)
			if !ok {
				p.notes = append(p.notes, fmt.Sprintf("enum %s: values removed, renamed or reordered; PostgreSQL cannot drop enum values, so no SQL is derived", e.Name))
				continue
			}
			for _, a := range adds {
				p.types = append(p.types, fmt.Sprintf("ALTER TYPE %s ADD VALUE %s", rel(e.Name), a))
			}
			p.notes = append(p.notes, fmt.Sprintf("enum %s: a value added by ALTER TYPE cannot be used in the same transaction", e.Name))
		}
	}
	for _, e := range base {
		if _, ok := old[e.Name]; ok {
			p.diff("enum", e.Name, "removed", strings.Join(e.Values, ", "), "")
			p.dropTypes = append(p.dropTypes, "DROP TYPE "+rel(e.Name))
		}
	}
}

// enumAdditions are the ADD VALUE clauses that turn old into new, when new keeps old's values
// in their order; false otherwise.
func enumAdditions(old, new []string) ([]string, bool) {
	var adds []string
	i := 0
	for j, v := range new {
		if i < len(old) && old[i] == v {
			i++
			continue
		}
		if slices.Contains(old, v) {
			return nil, false // reordered
		}
		if j == 0 && len(old) > 0 {
			adds = append(adds, literal(v)+" BEFORE "+literal(old[0]))
		} else if j == 0 {
			adds = append(adds, literal(v))
		} else {
			adds = append(adds, literal(v)+" AFTER "+literal(new[j-1]))
		}
	}
	return adds, i == len(old)
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func literals(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = literal(v)
	}
	return strings.Join(out, ", ")
}

// nextval finds the sequence a serial column's default draws from.
var nextval = regexp.MustCompile(`nextval\('((?:[^']|'')+)'::regclass\)`)

func columnDesc(c SchemaColumn) string {
	s := c.Type
	if !c.Nullable {
		s += " not null"
	}
	switch {
	case c.identity == "a":
		s += " generated always as identity"
	case c.identity == "d":
		s += " generated by default as identity"
	case c.generated != "":
		s += " generated always as (" + c.Default + ")"
	case c.Default != "":
		s += " default " + c.Default
	}
	return s
}

func columnSQL(c SchemaColumn, q func(string) string) string {
	s := q(c.Name) + " " + c.Type
	if !c.Nullable {
		s += " NOT NULL"
	}
	switch {
	case c.identity == "a":
		s += " GENERATED ALWAYS AS IDENTITY"
	case c.identity == "d":
		s += " GENERATED BY DEFAULT AS IDENTITY"
	case c.generated == "s":
		s += " GENERATED ALWAYS AS (" + c.Default + ") STORED"
	case c.generated != "":
		s += " GENERATED ALWAYS AS (" + c.Default + ")"
	case c.Default != "":
		s += " DEFAULT " + c.Default
	}
	return s
}

// sequenceOf creates the sequence a new column's default draws from, and has the column own
// it once it exists (as serial does).
func (p *schemaPlan) sequenceOf(c SchemaColumn, table string, q func(string) string) {
	if c.identity != "" || c.generated != "" {
		return
	}
	m := nextval.FindStringSubmatch(c.Default)
	if m == nil {
		return
	}
	seq := strings.ReplaceAll(m[1], "''", "'")
	p.sequences = append(p.sequences, "CREATE SEQUENCE IF NOT EXISTS "+seq)
	p.owned = append(p.owned, fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s", seq, table, q(c.Name)))
}

func (p *schemaPlan) compareTables(base, branch []SchemaTable, rel, q func(string) string) {
	old := map[string]SchemaTable{}
	for _, t := range base {
		old[t.Name] = t
	}
	for _, t := range branch {
		o, ok := old[t.Name]
		delete(old, t.Name)
		if !ok {
			p.addTable(t, rel, q)
			continue
		}
		p.compareColumns(o, t, rel(t.Name), q)
		p.compareConstraints(o, t, rel(t.Name), q)
		p.compareIndexes(o, t)
	}
	var dropped []string
	for _, t := range base {
		if _, ok := old[t.Name]; ok {
			p.diff("table", t.Name, "removed", "", "")
			dropped = append(dropped, rel(t.Name))
		}
	}
	if len(dropped) > 0 {
		// One statement: the dropped tables may reference each other.
		p.dropTables = append(p.dropTables, "DROP TABLE "+strings.Join(dropped, ", "))
	}
}

func (p *schemaPlan) addTable(t SchemaTable, rel, q func(string) string) {
	p.diff("table", t.Name, "added", "", "")
	name := rel(t.Name)
	var parts []string
	for _, c := range t.Columns {
		parts = append(parts, columnSQL(c, q))
		p.sequenceOf(c, name, q)
	}
	for _, k := range t.constraints {
		if k.kind == "f" {
			// After every table exists: it may reference one created later.
			p.foreign = append(p.foreign, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", name, q(k.name), k.def))
			continue
		}
		parts = append(parts, fmt.Sprintf("CONSTRAINT %s %s", q(k.name), k.def))
	}
	p.tables = append(p.tables, fmt.Sprintf("CREATE TABLE %s (%s)", name, strings.Join(parts, ", ")))
	p.indexes = append(p.indexes, t.Indexes...)
	if t.kind == "p" {
		p.notes = append(p.notes, fmt.Sprintf("table %s is partitioned in branch: its PARTITION BY clause is not derived", t.Name))
	}
}

func (p *schemaPlan) compareColumns(o, t SchemaTable, table string, q func(string) string) {
	old := map[string]SchemaColumn{}
	for _, c := range o.Columns {
		old[c.Name] = c
	}
	for _, c := range t.Columns {
		name := t.Name + "." + c.Name
		oc, ok := old[c.Name]
		delete(old, c.Name)
		if !ok {
			p.diff("column", name, "added", "", columnDesc(c))
			p.columns = append(p.columns, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", table, columnSQL(c, q)))
			p.sequenceOf(c, table, q)
			continue
		}
		if columnDesc(oc) == columnDesc(c) {
			continue
		}
		p.diff("column", name, "changed", columnDesc(oc), columnDesc(c))
		alter := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s ", table, q(c.Name))
		if oc.identity != c.identity || oc.generated != c.generated {
			p.notes = append(p.notes, fmt.Sprintf("column %s: its identity or generation differs; no SQL is derived", name))
			continue
		}
		if oc.Type != c.Type {
			p.retype = append(p.retype, fmt.Sprintf("%sTYPE %s USING %s::%s", alter, c.Type, q(c.Name), c.Type))
		}
		if oc.Nullable != c.Nullable {
			if c.Nullable {
				p.alters = append(p.alters, alter+"DROP NOT NULL")
			} else {
				p.alters = append(p.alters, alter+"SET NOT NULL")
			}
		}
		if oc.Default != c.Default && c.identity == "" && c.generated == "" {
			if c.Default == "" {
				p.alters = append(p.alters, alter+"DROP DEFAULT")
			} else {
				if m := nextval.FindStringSubmatch(c.Default); m != nil {
					p.sequences = append(p.sequences, "CREATE SEQUENCE IF NOT EXISTS "+strings.ReplaceAll(m[1], "''", "'"))
				}
				// A default of the new type waits for the type change, which is unsafe.
				if oc.Type != c.Type {
					p.recreate = append(p.recreate, alter+"SET DEFAULT "+c.Default)
				} else {
					p.alters = append(p.alters, alter+"SET DEFAULT "+c.Default)
				}
			}
		}
	}
	for _, c := range o.Columns {
		if _, ok := old[c.Name]; ok {
			p.diff("column", t.Name+"."+c.Name, "removed", columnDesc(c), "")
			p.dropColumns = append(p.dropColumns, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", table, q(c.Name)))
		}
	}
}

func (p *schemaPlan) compareConstraints(o, t SchemaTable, table string, q func(string) string) {
	old := map[string]schemaConstraint{}
	for _, k := range o.constraints {
		old[k.name] = k
	}
	add := func(k schemaConstraint) string {
		return fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", table, q(k.name), k.def)
	}
	drop := func(k schemaConstraint) string {
		return fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", table, q(k.name))
	}
	for _, k := range t.constraints {
		ok0, ok := old[k.name]
		delete(old, k.name)
		switch {
		case !ok:
			p.diff("constraint", t.Name+"."+k.name, "added", "", k.def)
			if k.kind == "f" {
				p.foreign = append(p.foreign, add(k))
			} else {
				p.keys = append(p.keys, add(k))
			}
		case ok0.def != k.def:
			p.diff("constraint", t.Name+"."+k.name, "changed", ok0.def, k.def)
			if ok0.kind == "f" {
				p.dropForeign = append(p.dropForeign, drop(ok0))
			} else {
				p.dropKeys = append(p.dropKeys, drop(ok0))
			}
			if k.kind == "f" {
				p.recreateForeign = append(p.recreateForeign, add(k))
			} else {
				p.recreate = append(p.recreate, add(k))
			}
		}
	}
	for _, k := range o.constraints {
		if _, ok := old[k.name]; ok {
			p.diff("constraint", t.Name+"."+k.name, "removed", k.def, "")
			if k.kind == "f" {
				p.dropForeign = append(p.dropForeign, drop(k))
			} else {
				p.dropKeys = append(p.dropKeys, drop(k))
			}
		}
	}
}

// indexName reads an index's name from pg_get_indexdef's "CREATE [UNIQUE] INDEX name ON …".
func indexName(def string) string {
	_, rest, ok := strings.Cut(def, " INDEX ")
	if !ok {
		return def
	}
	name, _, _ := strings.Cut(rest, " ON ")
	return name
}

func (p *schemaPlan) compareIndexes(o, t SchemaTable) {
	old := map[string]string{}
	for _, d := range o.Indexes {
		old[indexName(d)] = d
	}
	// The name is quoted as PostgreSQL wrote it; the schema is the table's.
	dropIndex := func(def string) string { return "DROP INDEX " + p.prefix + indexName(def) }
	for _, d := range t.Indexes {
		name := indexName(d)
		od, ok := old[name]
		delete(old, name)
		switch {
		case !ok:
			p.diff("index", t.Name+"."+name, "added", "", d)
			p.indexes = append(p.indexes, d)
		case od != d:
			p.diff("index", t.Name+"."+name, "changed", od, d)
			p.dropIndexes = append(p.dropIndexes, dropIndex(od))
			p.recreate = append(p.recreate, d)
		}
	}
	for _, d := range o.Indexes {
		if _, ok := old[indexName(d)]; ok {
			p.diff("index", t.Name+"."+indexName(d), "removed", d, "")
			p.dropIndexes = append(p.dropIndexes, dropIndex(d))
		}
	}
}

func viewSQL(v SchemaTable, rel func(string) string) string {
	kind := "VIEW"
	if v.kind == "m" {
		kind = "MATERIALIZED VIEW"
	}
	return fmt.Sprintf("CREATE %s %s AS %s", kind, rel(v.Name), strings.TrimSuffix(strings.TrimSpace(v.definition), ";"))
}

func dropViewSQL(v SchemaTable, rel func(string) string) string {
	if v.kind == "m" {
		return "DROP MATERIALIZED VIEW " + rel(v.Name)
	}
	return "DROP VIEW " + rel(v.Name)
}

func (p *schemaPlan) compareViews(base, branch []SchemaTable, rel func(string) string) {
	old := map[string]SchemaTable{}
	for _, v := range base {
		old[v.Name] = v
	}
	for _, v := range branch {
		o, ok := old[v.Name]
		delete(old, v.Name)
		switch {
		case !ok:
			p.diff("view", v.Name, "added", "", strings.TrimSpace(v.definition))
			p.views = append(p.views, viewSQL(v, rel))
		case o.definition != v.definition || o.kind != v.kind:
			p.diff("view", v.Name, "changed", strings.TrimSpace(o.definition), strings.TrimSpace(v.definition))
			p.dropViews = append(p.dropViews, dropViewSQL(o, rel))
			p.recreateViews = append(p.recreateViews, viewSQL(v, rel))
		}
	}
	for _, v := range base {
		if _, ok := old[v.Name]; ok {
			p.diff("view", v.Name, "removed", strings.TrimSpace(v.definition), "")
			p.dropViews = append(p.dropViews, dropViewSQL(v, rel))
		}
	}
}
