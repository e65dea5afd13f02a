package guard

import (
	"cmp"
	"context"

	"github.com/jackc/pgx/v5"
)

// DescribeSchemaInput is describe_schema's input.
type DescribeSchemaInput struct {
	DatabaseID string
	Branch     string // name or id; empty = main
	Schema     string // empty = public
}

// SchemaColumn is one column of a table or view.
type SchemaColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Default  string `json:"default,omitempty"`
}

// SchemaTable is one table or view with its keys and indexes.
type SchemaTable struct {
	Name        string         `json:"name"`
	Columns     []SchemaColumn `json:"columns"`
	PrimaryKey  []string       `json:"primary_key,omitempty"`
	ForeignKeys []string       `json:"foreign_keys,omitempty"`
	Unique      []string       `json:"unique,omitempty"`
	Checks      []string       `json:"checks,omitempty"`
	Indexes     []string       `json:"indexes,omitempty" jsonschema_description:"indexes other than those of the keys"`
}

// SchemaEnum is one enum type.
type SchemaEnum struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// DescribeSchemaResult is describe_schema's result.
type DescribeSchemaResult struct {
	DatabaseID string        `json:"database_id"`
	Branch     string        `json:"branch"`
	Schema     string        `json:"schema"`
	Tables     []SchemaTable `json:"tables"`
	Views      []SchemaTable `json:"views"`
	Enums      []SchemaEnum  `json:"enums"`
}

const (
	qSchemaColumns = `
SELECT c.relname, c.relkind IN ('v', 'm'), a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')
 ORDER BY c.relname, a.attnum`
	qSchemaConstraints = `
SELECT r.relname, k.contype::text, pg_get_constraintdef(k.oid),
       coalesce((SELECT array_agg(a.attname ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(num, ord)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.num), '{}')
  FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = $1 AND k.contype IN ('p', 'f', 'u', 'c')
 ORDER BY r.relname, k.conname`
	qSchemaIndexes = `
SELECT t.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
 ORDER BY t.relname, ic.relname`
	qSchemaEnums = `
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE n.nspname = $1
 GROUP BY t.typname ORDER BY t.typname`
)

// DescribeSchema describes one schema of a branch compactly: tables and views with their
// columns, keys and indexes, and enums.
func (g *Guard) DescribeSchema(ctx context.Context, in DescribeSchemaInput) (*DescribeSchemaResult, error) {
	schema := cmp.Or(in.Schema, "public")
	t, conn, err := g.readBranch(ctx, in.DatabaseID, in.Branch)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	out, err := describeSchema(ctx, conn, schema)
	if err != nil {
		return nil, sqlError(err, true)
	}
	out.DatabaseID, out.Branch = t.db.ID, t.branch
	return out, nil
}

func describeSchema(ctx context.Context, conn *pgx.Conn, schema string) (*DescribeSchemaResult, error) {
	out := &DescribeSchemaResult{Schema: schema, Tables: []SchemaTable{}, Views: []SchemaTable{}, Enums: []SchemaEnum{}}
	tables := map[string]*SchemaTable{}
	var order []string
	isView := map[string]bool{}
	rows, err := conn.Query(ctx, qSchemaColumns, schema)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var rel, name, typ, def string
		var view, nullable bool
		if err := rows.Scan(&rel, &view, &name, &typ, &nullable, &def); err != nil {
			rows.Close()
			return nil, err
		}
		st := tables[rel]
		if st == nil {
			st = &SchemaTable{Name: rel, Columns: []SchemaColumn{}}
			tables[rel], isView[rel] = st, view
			order = append(order, rel)
		}
		st.Columns = append(st.Columns, SchemaColumn{Name: name, Type: typ, Nullable: nullable, Default: def})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, qSchemaConstraints, schema)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var rel, kind, def string
		var cols []string
		if err := rows.Scan(&rel, &kind, &def, &cols); err != nil {
			rows.Close()
			return nil, err
		}
		st := tables[rel]
		if st == nil {
			continue
		}
		switch kind {
		case "p":
			st.PrimaryKey = cols
		case "f":
			st.ForeignKeys = append(st.ForeignKeys, def)
		case "u":
			st.Unique = append(st.Unique, def)
		case "c":
			st.Checks = append(st.Checks, def)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, qSchemaIndexes, schema)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var rel, def string
		if err := rows.Scan(&rel, &def); err != nil {
			rows.Close()
			return nil, err
		}
		if st := tables[rel]; st != nil {
			st.Indexes = append(st.Indexes, def)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, rel := range order {
		if isView[rel] {
			out.Views = append(out.Views, *tables[rel])
		} else {
			out.Tables = append(out.Tables, *tables[rel])
		}
	}
	rows, err = conn.Query(ctx, qSchemaEnums, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var e SchemaEnum
		if err := rows.Scan(&e.Name, &e.Values); err != nil {
			return nil, err
		}
		out.Enums = append(out.Enums, e)
	}
	return out, rows.Err()
}
