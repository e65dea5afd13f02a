package neon

import (
	"regexp"
	"strings"
)

const redacted = "REDACTED"

var (
	// postgres://user:PASSWORD@host, postgresql://..., any case. Percent-encoding keeps '@' and
	// whitespace out of real passwords; matching up to the last '@' of the token over-masks rather
	// than leaks.
	reURIPassword = regexp.MustCompile(`(?i)(postgres(?:ql)?://[^:/@\s"'<>]*:)[^\s"'<>]*@`)
	// Neon API keys (napi_...) and generated role passwords (npg_...).
	reToken = regexp.MustCompile(`\b(napi|npg)_[A-Za-z0-9_\-]+`)
	// "password": "..." in JSON that found its way into a message.
	reJSONPassword = regexp.MustCompile(`(?i)("password"\s*:\s*")(?:[^"\\]|\\.)*"`)
	// password=... in key/value DSNs and query strings.
	reKVPassword = regexp.MustCompile(`(?i)\b(password=)[^\s&;'"]+`)
	// Authorization: Bearer <token>.
	reBearer = regexp.MustCompile(`(?i)\b(bearer\s+)[^\s"',;]+`)
)

// Redact masks passwords in postgres:// and postgresql:// URIs, napi_ and npg_ tokens, JSON
// "password" values, password= pairs and bearer tokens. It is for text that may carry secrets
// on its way to a log or an error; it does not know the client's own key (Client.scrub does).
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	s = reURIPassword.ReplaceAllString(s, "${1}"+redacted+"@")
	s = reToken.ReplaceAllString(s, "${1}_"+redacted)
	s = reJSONPassword.ReplaceAllString(s, `${1}`+redacted+`"`)
	s = reKVPassword.ReplaceAllString(s, "${1}"+redacted)
	s = reBearer.ReplaceAllString(s, "${1}"+redacted)
	return s
}

// mayHoldSecret reports whether s holds a literal one of the patterns above needs (in lower
// case): text without any cannot match, and most text that is redacted (request ids,
// arguments, error messages) has none, so it skips the five regular expressions. (?i) matches
// by simple case folding, and two letters outside ASCII fold onto ASCII ones that lower-casing
// leaves alone: 'ſ' (s) and the Kelvin sign (k). Text with either always may
// (TestOnlyTwoLettersFoldOntoASCII).
func mayHoldSecret(s string) bool {
	if strings.ContainsRune(s, '\u017f') || strings.ContainsRune(s, '\u212a') {
		return true
	}
	lower := strings.ToLower(s)
	for _, m := range [...]string{"postgres", "napi_", "npg_", "password", "bearer"} {
		if strings.Contains(lower, m) {
			return true
		}
	}
	return false
}
