package sqlhttp

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// parseURL parses a postgres:// or postgresql:// connection string.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, errString("the scheme must be postgres:// or postgresql://")
	}
	return u, nil
}

type errString string

func (e errString) Error() string { return string(e) }

// column is one value of a row in object mode.
type column struct {
	name  string
	value any
}

// orderedRow is a row in object mode: an object keyed by column name in the columns' order
// (a later column of the same name wins, as in JavaScript).
type orderedRow []column

func (r orderedRow) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	seen := map[string]int{}
	for i, c := range r {
		seen[c.name] = i
	}
	first := true
	for i, c := range r {
		if seen[c.name] != i {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(c.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(c.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// value is a column's text as Neon answers it: as is with raw text output, else converted
// by type (see the package doc).
func (s *Server) value(v []byte, oid uint32, raw bool) any {
	if v == nil {
		return nil
	}
	if raw {
		return string(v)
	}
	return s.typed(string(v), oid)
}

func (s *Server) typed(v string, oid uint32) any {
	if t, ok := s.types.TypeForOID(oid); ok {
		if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			out, rest, ok := s.parseArray(strings.TrimSpace(stripBounds(v)), ac.ElementType.OID)
			if ok && strings.TrimSpace(rest) == "" {
				return out
			}
			return v
		}
	}
	switch oid {
	case pgtype.BoolOID:
		return v == "t"
	case pgtype.Int2OID, pgtype.Int4OID:
		if n, err := strconv.ParseInt(v, 10, 32); err == nil {
			return n
		}
	case pgtype.Float4OID, pgtype.Float8OID:
		if f, err := strconv.ParseFloat(v, 64); err == nil && v != "NaN" && v != "Infinity" && v != "-Infinity" {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case pgtype.JSONOID, pgtype.JSONBOID:
		if json.Valid([]byte(v)) {
			return json.RawMessage(v)
		}
	}
	return v
}

// stripBounds drops an array's bounds decoration ("[1:2]={...}").
func stripBounds(v string) string {
	if strings.HasPrefix(v, "[") {
		if _, rest, ok := strings.Cut(v, "="); ok {
			return rest
		}
	}
	return v
}

// parseArray parses PostgreSQL's array text (delimiter ',') into a JSON array of elements
// converted by elem's type; it returns what follows the closing brace.
func (s *Server) parseArray(v string, elem uint32) ([]any, string, bool) {
	rest, ok := strings.CutPrefix(v, "{")
	if !ok {
		return nil, v, false
	}
	out := []any{}
	if r, ok := strings.CutPrefix(strings.TrimLeft(rest, " "), "}"); ok {
		return out, r, true
	}
	for {
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.HasPrefix(rest, "{"):
			sub, r, ok := s.parseArray(rest, elem)
			if !ok {
				return nil, v, false
			}
			out, rest = append(out, sub), r
		case strings.HasPrefix(rest, `"`):
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, v, false
			}
			out, rest = append(out, s.typed(b.String(), elem)), strings.TrimLeft(rest[i+1:], " ")
		default:
			i := strings.IndexAny(rest, ",}")
			if i < 0 {
				return nil, v, false
			}
			item := strings.TrimRight(rest[:i], " ")
			if item == "NULL" {
				out = append(out, nil)
			} else {
				out = append(out, s.typed(item, elem))
			}
			rest = rest[i:]
		}
		if r, ok := strings.CutPrefix(rest, ","); ok {
			rest = r
			continue
		}
		r, ok := strings.CutPrefix(rest, "}")
		if !ok {
			return nil, v, false
		}
		return out, strings.TrimLeft(r, " "), true
	}
}

// marshalLimited encodes an answer, refusing one over MaxResponseBytes.
func marshalLimited(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxResponseBytes {
		return nil, &sqlError{status: 507, msg: "response is too large (max is 10485760 bytes)"}
	}
	return b, nil
}
