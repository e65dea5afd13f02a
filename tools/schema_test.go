package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
)

// schemas.json holds exactly what reflection gives for every agent and admin tool, so the
// tools served from it are the tools their types describe. UPDATE_SCHEMAS=1 go test ./tools
// rewrites it after a change to an args or result type.
func TestEmbeddedSchemasMatchReflection(t *testing.T) {
	reflected := map[string]toolSchemas{}
	for _, st := range append(All(Deps{Schemas: &Schemas{}}), AdminTools(Deps{Schemas: &Schemas{}})...) {
		reflected[st.Tool.Name] = toolSchemas{Input: st.Tool.RawInputSchema, Output: st.Tool.RawOutputSchema}
	}
	want := schemasFile(t, reflected)
	if os.Getenv("UPDATE_SCHEMAS") != "" {
		if err := os.WriteFile("schemas.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(embeddedSchemas, want) {
		t.Fatal("tools/schemas.json differs from the reflected schemas: run UPDATE_SCHEMAS=1 go test ./tools")
	}
	// And the tools built from it are the reflected ones, byte for byte.
	s := NewSchemas()
	if len(s.byTool) != len(reflected) {
		t.Fatalf("schemas.json parses to %d tools, want %d", len(s.byTool), len(reflected))
	}
	embedded := append(All(Deps{Schemas: s}), AdminTools(Deps{Schemas: s})...)
	for _, st := range embedded {
		r := reflected[st.Tool.Name]
		if !bytes.Equal(st.Tool.RawInputSchema, r.Input) || !bytes.Equal(st.Tool.RawOutputSchema, r.Output) {
			t.Errorf("%s: the served schemas differ from the reflected ones", st.Tool.Name)
		}
	}
}

// schemasFile renders schemas.json: one tool a line, in name order, each schema compact as
// it is served (tools/list's size is budgeted), so a diff shows which tool changed.
func schemasFile(t *testing.T, byTool map[string]toolSchemas) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, name := range slices.Sorted(maps.Keys(byTool)) {
		line, err := json.Marshal(byTool[name])
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "%q: %s", name, line)
	}
	b.WriteString("\n}\n")
	return b.Bytes()
}
