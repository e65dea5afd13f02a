package server

import (
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// parseHead decides "modern" (2026-07-28, no sessions) as mcp-go does: from the
// Mcp-Protocol-Version header or from the message's _meta, whichever says so.
func TestParseHeadDecidesTheProtocolEraLikeMCPGo(t *testing.T) {
	modern, legacy := mcp.ProtocolVersion20260728, "2025-11-25"
	withMeta := func(v string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"` +
			mcp.MetaKeyProtocolVersion + `":"` + v + `"}}}`
	}
	plain := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`
	for _, tc := range []struct {
		name, header, body string
		want               bool
	}{
		{"header modern", modern, plain, true},
		{"header modern, meta legacy", modern, withMeta(legacy), true},
		{"no header, meta modern", "", withMeta(modern), true},
		{"header legacy, meta modern", legacy, withMeta(modern), true},
		{"header legacy", legacy, plain, false},
		{"header legacy, meta legacy", legacy, withMeta(legacy), false},
		{"neither", "", plain, false},
		{"meta not an object", "", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":3}}`, false},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set(mcp.HeaderProtocolVersion, tc.header)
		}
		got := parseHead(h, []byte(tc.body))
		if got.modern != tc.want || got.method != "tools/call" || got.id != "7" || got.kind != requestMessage {
			t.Errorf("%s: parseHead = %+v, want modern %v for request 7", tc.name, got, tc.want)
		}
	}
}
