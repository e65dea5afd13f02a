package tools

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// FuzzDecodeArgs feeds arbitrary bytes, as a tool call's arguments, to every tool: the
// handler must answer (success or an isError result) and never panic or return a protocol
// error. The handlers' own recover would hide a panic, so the fuzz also checks that no answer
// is INTERNAL: with a working guard that only happens on a bug.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range validArgs {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`null`, `[]`, `1`, `"x"`, `{}`, `{"name":null}`, `{"name":{"a":[1,{"b":null}]}}`,
		`{"database_id":"d","ago":"1d1d"}`, `{"database_id":"d","ago":"9223372036854775807ns"}`,
		`{"database_id":"d","timestamp":"9999-12-31T23:59:59Z"}`, `{"pg_version":-1e309}`,
		`{"database_id":"d","pooled":1}`, `{"name":"\u0000"}`, `{"name":"é","name":1}`,
	} {
		f.Add([]byte(s))
	}
	fg := &fakeGuard{}
	sts := All(Deps{Guard: fg})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return // the transport rejects invalid JSON before any tool runs
		}
		for _, st := range sts {
			for _, req := range []mcp.CallToolRequest{
				{Params: mcp.CallToolParams{Name: st.Tool.Name, RawArguments: data, Arguments: v}},
				{Params: mcp.CallToolParams{Name: st.Tool.Name, Arguments: v}},
			} {
				res, err := st.Handler(context.Background(), req)
				if err != nil || res == nil {
					t.Fatalf("%s(%s): res=%v err=%v", st.Tool.Name, data, res, err)
				}
				if res.IsError {
					if e := errorOf(t, res); e.Code == "INTERNAL" {
						t.Fatalf("%s(%s): internal error", st.Tool.Name, data)
					}
				}
			}
		}
	})
}
