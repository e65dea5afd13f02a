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

	identity  string // pg_attribute.attidentity: a (always), d (by default) or ""
	generated string // pg_attribute.attgenerated: s (stored), v (virtual) or "": Default is its expression
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

	// What compare_schema needs beyond the description (not in the output).
	constraints []schemaConstraint // every key and check, with its name
	kind        string             // pg_class.relkind: r, p (partitioned), v or m (materialized view)
	definition  string             // a view's query
}

// schemaConstraint is one constraint of a table as the catalog names and defines it.
type schemaConstraint struct {
	name, kind, def string // kind: p, f, u or c
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
SELECT c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN pg_get_viewdef(c.oid) ELSE '' END,
       a.attidentity::text, a.attgenerated::text
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')
 ORDER BY c.relname, a.attnum`
	qSchemaConstraints = `
SELECT r.relname, k.contype::text, pg_get_constraintdef(k.oid), k.conname,
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
	var out *DescribeSchemaResult
	t, err := g.readBranch(ctx, in.DatabaseID, in.Branch, func(conn *pgx.Conn) (err error) {
		if out, err = describeSchema(ctx, conn, schema); err != nil {
			return sqlError(err, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
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
		var rel, kind, name, typ, def, viewdef, identity, generated string
		var nullable bool
		if err := rows.Scan(&rel, &kind, &name, &typ, &nullable, &def, &viewdef, &identity, &generated); err != nil {
			rows.Close()
			return nil, err
		}
		st := tables[rel]
		if st == nil {
			st = &SchemaTable{Name: rel, Columns: []SchemaColumn{}, kind: kind}
			tables[rel], isView[rel] = st, kind == "v" || kind == "m"
			order = append(order, rel)
		}
		if viewdef != "" {
			st.definition = viewdef
		}
		st.Columns = append(st.Columns, SchemaColumn{Name: name, Type: typ, Nullable: nullable, Default: def,
			identity: identity, generated: generated})
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
		var rel, kind, def, name string
		var cols []string
		if err := rows.Scan(&rel, &kind, &def, &name, &cols); err != nil {
			rows.Close()
			return nil, err
		}
		st := tables[rel]
		if st == nil {
			continue
		}
		st.constraints = append(st.constraints, schemaConstraint{name: name, kind: kind, def: def})
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
