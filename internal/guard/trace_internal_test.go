package guard

import "testing"

func TestSQLCommand(t *testing.T) {
	for sql, want := range map[string]string{
		"select 1": "SELECT",
		"  \n-- a comment\n/* x */ insert into t values ('secret')": "INSERT",
		"(SELECT 1) UNION (SELECT 2)":                               "SELECT",
		"with x as (select 1) select * from x":                      "WITH",
		"-- only a comment":                                         "UNKNOWN",
		"":                                                          "UNKNOWN",
		"'secret' literal first":                                    "UNKNOWN",
	} {
		if got := sqlCommand(sql); got != want {
			t.Errorf("sqlCommand(%q) = %q, want %q", sql, got, want)
		}
	}
}
