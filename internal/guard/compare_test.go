package guard

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// testQuote quotes as quote_ident does for the names these tests use.
func testQuote(n string) string {
	if n == strings.ToLower(n) && !strings.ContainsAny(n, " \"") && n != "user" {
		return n
	}
	return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
}

func col(name, typ string, nullable bool, def string) SchemaColumn {
	return SchemaColumn{Name: name, Type: typ, Nullable: nullable, Default: def}
}

func pk(table string, cols ...string) schemaConstraint {
	return schemaConstraint{name: table + "_pkey", kind: "p", def: "PRIMARY KEY (" + strings.Join(cols, ", ") + ")"}
}

func diffs(r *CompareSchemaResult) []string {
	var out []string
	for _, d := range r.Differences {
		out = append(out, fmt.Sprintf("%s %s %s", d.Kind, d.Name, d.Change))
	}
	return out
}

func TestCompareSchemas(t *testing.T) {
	users := SchemaTable{Name: "users", kind: "r", Columns: []SchemaColumn{col("id", "integer", false, ""), col("email", "text", true, "")},
		constraints: []schemaConstraint{pk("users", "id")}}
	schema := func(tables []SchemaTable, views []SchemaTable, enums ...SchemaEnum) *DescribeSchemaResult {
		return &DescribeSchemaResult{Tables: tables, Views: views, Enums: enums}
	}
	orders := SchemaTable{Name: "orders", kind: "r",
		Columns: []SchemaColumn{col("id", "integer", false, "nextval('orders_id_seq'::regclass)"), col("user_id", "integer", true, ""),
			col("Total", "numeric(10,2)", false, "0")},
		constraints: []schemaConstraint{pk("orders", "id"),
			{name: "orders_user_id_fkey", kind: "f", def: "FOREIGN KEY (user_id) REFERENCES users(id)"}},
		Indexes: []string{"CREATE INDEX orders_user ON public.orders USING btree (user_id)"}}
	for _, tc := range []struct {
		name         string
		schema       string
		base, branch *DescribeSchemaResult
		diffs        []string
		sql, unsafe  []string
		notes        []string
	}{
		{name: "identical", base: schema([]SchemaTable{users}, nil), branch: schema([]SchemaTable{users}, nil)},
		{name: "a table with a serial key, a foreign key and an index",
			base: schema([]SchemaTable{users}, nil), branch: schema([]SchemaTable{orders, users}, nil),
			diffs: []string{"table orders added"},
			sql: []string{"CREATE SEQUENCE IF NOT EXISTS orders_id_seq",
				`CREATE TABLE orders (id integer NOT NULL DEFAULT nextval('orders_id_seq'::regclass), user_id integer, "Total" numeric(10,2) NOT NULL DEFAULT 0, CONSTRAINT orders_pkey PRIMARY KEY (id))`,
				"ALTER SEQUENCE orders_id_seq OWNED BY orders.id",
				"ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)",
				"CREATE INDEX orders_user ON public.orders USING btree (user_id)"}},
		{name: "columns added, changed and removed",
			base: schema([]SchemaTable{users}, nil),
			branch: schema([]SchemaTable{{Name: "users", kind: "r", Columns: []SchemaColumn{col("id", "bigint", false, "0"), col("user", "text", false, "'x'::text")},
				constraints: []schemaConstraint{pk("users", "id"), {name: "users_user_key", kind: "u", def: "UNIQUE (\"user\")"}},
				Indexes:     []string{"CREATE INDEX users_user ON public.users USING btree (\"user\")"}}}, nil),
			diffs: []string{"column users.id changed", "column users.user added", "column users.email removed",
				"constraint users.users_user_key added", "index users.users_user added"},
			sql: []string{`ALTER TABLE users ADD COLUMN "user" text NOT NULL DEFAULT 'x'::text`,
				`ALTER TABLE users ADD CONSTRAINT users_user_key UNIQUE ("user")`,
				`CREATE INDEX users_user ON public.users USING btree ("user")`},
			unsafe: []string{"ALTER TABLE users ALTER COLUMN id TYPE bigint USING id::bigint", "ALTER TABLE users DROP COLUMN email",
				"ALTER TABLE users ALTER COLUMN id SET DEFAULT 0"}},
		{name: "nullability and defaults",
			base: schema([]SchemaTable{users}, nil),
			branch: schema([]SchemaTable{{Name: "users", kind: "r", Columns: []SchemaColumn{col("id", "integer", true, "1"), col("email", "text", false, "")},
				constraints: []schemaConstraint{pk("users", "id")}}}, nil),
			diffs: []string{"column users.id changed", "column users.email changed"},
			sql: []string{"ALTER TABLE users ALTER COLUMN id DROP NOT NULL", "ALTER TABLE users ALTER COLUMN id SET DEFAULT 1",
				"ALTER TABLE users ALTER COLUMN email SET NOT NULL"}},
		{name: "removed: a table, an index, keys",
			base: schema([]SchemaTable{orders, users}, nil),
			branch: schema([]SchemaTable{{Name: "orders", kind: "r", Columns: orders.Columns,
				constraints: []schemaConstraint{{name: "orders_pkey", kind: "p", def: "PRIMARY KEY (id, user_id)"}}}}, nil),
			diffs: []string{"constraint orders.orders_pkey changed", "constraint orders.orders_user_id_fkey removed",
				"index orders.orders_user removed", "table users removed"},
			unsafe: []string{"ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey", "ALTER TABLE orders DROP CONSTRAINT orders_pkey",
				"DROP INDEX orders_user", "DROP TABLE users", "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id, user_id)"}},
		{name: "enums",
			base: schema(nil, nil, SchemaEnum{Name: "mood", Values: []string{"ok", "sad"}}, SchemaEnum{Name: "size", Values: []string{"s", "m"}},
				SchemaEnum{Name: "gone", Values: []string{"x"}}),
			branch: schema(nil, nil, SchemaEnum{Name: "Color", Values: []string{"red", "it's"}}, SchemaEnum{Name: "mood", Values: []string{"happy", "ok", "meh", "sad", "mad"}},
				SchemaEnum{Name: "size", Values: []string{"m", "s"}}),
			diffs: []string{"enum Color added", "enum mood changed", "enum size changed", "enum gone removed"},
			sql: []string{`CREATE TYPE "Color" AS ENUM ('red', 'it''s')`, "ALTER TYPE mood ADD VALUE 'happy' BEFORE 'ok'",
				"ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'", "ALTER TYPE mood ADD VALUE 'mad' AFTER 'sad'"},
			unsafe: []string{"DROP TYPE gone"},
			notes: []string{"enum mood: a value added by ALTER TYPE cannot be used in the same transaction",
				"enum size: values removed, renamed or reordered; PostgreSQL cannot drop enum values, so no SQL is derived"}},
		{name: "views, in another schema", schema: "app",
			base:   schema(nil, []SchemaTable{{Name: "v", kind: "v", definition: " SELECT 1 AS one;"}, {Name: "old", kind: "m", definition: " SELECT 2;"}}),
			branch: schema(nil, []SchemaTable{{Name: "v", kind: "v", definition: " SELECT 2 AS one;"}, {Name: "new", kind: "m", definition: " SELECT 3 AS three;"}}),
			diffs:  []string{"view v changed", "view new added", "view old removed"},
			sql:    []string{"CREATE MATERIALIZED VIEW app.new AS SELECT 3 AS three"},
			unsafe: []string{"DROP VIEW app.v", "DROP MATERIALIZED VIEW app.old", "CREATE VIEW app.v AS SELECT 2 AS one"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.schema
			if s == "" {
				s = "public"
			}
			r := compareSchemas(tc.base, tc.branch, s, testQuote)
			if got := diffs(r); !slices.Equal(got, tc.diffs) {
				t.Errorf("differences:\n got %q\nwant %q", got, tc.diffs)
			}
			if r.Identical != (len(tc.diffs) == 0) {
				t.Errorf("identical = %v", r.Identical)
			}
			if !slices.Equal(r.SQL, tc.sql) && len(r.SQL)+len(tc.sql) > 0 {
				t.Errorf("sql:\n got %q\nwant %q", r.SQL, tc.sql)
			}
			if !slices.Equal(r.Unsafe, tc.unsafe) && len(r.Unsafe)+len(tc.unsafe) > 0 {
				t.Errorf("unsafe:\n got %q\nwant %q", r.Unsafe, tc.unsafe)
			}
			if !slices.Equal(r.Notes, tc.notes) {
				t.Errorf("notes:\n got %q\nwant %q", r.Notes, tc.notes)
			}
			if r.SQL == nil || r.Unsafe == nil || r.Differences == nil {
				t.Errorf("nil lists: %+v", r)
			}
		})
	}
}
