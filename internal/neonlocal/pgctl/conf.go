package pgctl

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// confQuote quotes a postgresql.conf string value: the config lexer
// de-escapes backslashes and doubled single quotes.
func confQuote(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// shQuote quotes a word for /bin/sh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pctEscape escapes % for archive_command/restore_command, where postgres
// substitutes %p, %f, %r and %%.
func pctEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

var gucNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// renderConf renders settings sorted by name, every value quoted (postgres
// accepts quoted numbers and booleans).
func renderConf(header string, settings map[string]string) (string, error) {
	names := make([]string, 0, len(settings))
	for k, v := range settings {
		if !gucNameRE.MatchString(k) {
			return "", fmt.Errorf("invalid setting name %q", k)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return "", fmt.Errorf("setting %s: value contains a line break or NUL", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(header)
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, confQuote(settings[k]))
	}
	return b.String(), nil
}

// archiveCommand copies a finished segment %p to dir/%f atomically (copy to
// a temp name, fsync, rename). An existing file is accepted only if it is
// identical: the archiver retries a segment after a crash between copy and
// bookkeeping, but must never overwrite different WAL (that would be another
// timeline's or cluster's history).
func archiveCommand(dir string, sync bool) string {
	// PostgreSQL truncates an archive_command longer than 1024 bytes after %-expansion, so
	// the archive dir appears once, in a shell variable.
	syncStep := ""
	if sync {
		syncStep = `sync "$d/%f.tmp" && `
	}
	return `d=` + pctEscape(shQuote(dir)) + `; if test -f "$d/%f"; then cmp -s %p "$d/%f"; else cp %p "$d/%f.tmp" && ` +
		syncStep + `mv -f "$d/%f.tmp" "$d/%f"; fi`
}

// maxCommand is PostgreSQL's limit (MAXPGPATH) on an archive or restore command.
const maxCommand = 1024

// restoreCommand copies %f from the first archive dir that has it; exit 1
// (a normal "not found") when none does.
func restoreCommand(dirs []string) string {
	q := make([]string, len(dirs))
	for i, d := range dirs {
		q[i] = pctEscape(shQuote(d))
	}
	return `for d in ` + strings.Join(q, " ") + `; do if test -f "$d/%f"; then exec cp "$d/%f" "%p"; fi; done; exit 1`
}
