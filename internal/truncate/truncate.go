// Package truncate shortens text for messages and logs without splitting a UTF-8 character.
package truncate

import "unicode/utf8"

// UTF8 returns s if it has at most maxBytes bytes; otherwise its longest prefix of at most
// maxBytes bytes that ends on a character boundary, followed by "…".
func UTF8(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	n := max(maxBytes, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
