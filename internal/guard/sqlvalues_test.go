package guard

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// Every value run_sql returns must marshal to JSON: PostgreSQL's float specials (NaN,
// Infinity, -Infinity) stay text, as JSON has no numbers for them.
func TestJSONValue(t *testing.T) {
	for _, tc := range []struct {
		oid  uint32
		text string
		want string
	}{
		{pgtype.Int4OID, "42", `42`},
		{pgtype.Int8OID, "-9007199254740993", `-9007199254740993`},
		{pgtype.Float8OID, "1.5", `1.5`},
		{pgtype.Float8OID, "NaN", `"NaN"`},
		{pgtype.Float8OID, "Infinity", `"Infinity"`},
		{pgtype.Float4OID, "-Infinity", `"-Infinity"`},
		{pgtype.BoolOID, "t", `true`},
		{pgtype.JSONBOID, `{"a": [1]}`, `{"a":[1]}`},
		{pgtype.TextOID, "x", `"x"`},
		{pgtype.NumericOID, "1.10", `"1.10"`}, // arbitrary precision stays exact, as text
	} {
		b, err := json.Marshal(jsonValue(tc.oid, []byte(tc.text)))
		if err != nil || string(b) != tc.want {
			t.Errorf("jsonValue(%d, %q) = %s, %v; want %s", tc.oid, tc.text, b, err, tc.want)
		}
	}
	if jsonValue(pgtype.TextOID, nil) != nil {
		t.Error("NULL is not nil")
	}
}
