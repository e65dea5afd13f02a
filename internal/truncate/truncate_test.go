package truncate

import (
	"testing"
	"unicode/utf8"
)

func TestUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"héllo", 2, "h…"}, // 'é' is two bytes: cutting at 2 would split it
		{"日本語", 4, "日…"},
		{"abc", 0, "…"},
		{"abc", -1, "…"},
	} {
		got := UTF8(tc.in, tc.max)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("UTF8(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
