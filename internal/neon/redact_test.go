package neon

import (
	"testing"
	"unicode"
)

// redactByPatterns is Redact without its fast path: the five patterns, always.
func redactByPatterns(s string) string {
	s = reURIPassword.ReplaceAllString(s, "${1}"+redacted+"@")
	s = reToken.ReplaceAllString(s, "${1}_"+redacted)
	s = reJSONPassword.ReplaceAllString(s, `${1}`+redacted+`"`)
	s = reKVPassword.ReplaceAllString(s, "${1}"+redacted)
	return reBearer.ReplaceAllString(s, "${1}"+redacted)
}

// FuzzRedactFastPath: skipping the patterns for text without their literals never changes
// the result (the seeds run in every go test; go test -fuzz explores further).
func FuzzRedactFastPath(f *testing.F) {
	for _, s := range []string{
		"PostgreSQL://u:pw@h/d", "POSTGRES://u:pw@h", "x PASSWORD=hunter2", `{"PassWord" : "x"}`,
		"BEARER abc", "Authorization: bEaReR t.k", "npg_Ab1", "napi_x", "NAPI_x", "req-0123abcd",
		"paſſword=hunter2", "Bearer\u212a x", "po\u017ftgres://u:pw@h", "\u212a password=x",
		"get_usage failed: 503 Service Unavailable", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Redact(s), redactByPatterns(s); got != want {
			t.Fatalf("Redact(%q) = %q, the patterns give %q", s, got, want)
		}
	})
}

// mayHoldSecret's exception list is every letter outside ASCII whose case-folding orbit holds
// an ASCII letter: a newer Unicode table that added one would need it listed.
func TestOnlyTwoLettersFoldOntoASCII(t *testing.T) {
	var found []rune
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < 0x80 {
				found = append(found, r)
				break
			}
		}
	}
	if len(found) != 2 || found[0] != '\u017f' || found[1] != '\u212a' {
		t.Fatalf("letters outside ASCII folding onto ASCII: %U, want [U+017F U+212A]", found)
	}
}
