package tools

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/invopop/jsonschema"
)

// The tools' input and output schemas, as inputSchema and outputSchema reflect them, kept in
// schemas.json: reflecting them all costs ~3 ms of CPU (more in a cold process), most of the
// server's construction and a seventh of its start-up; reading the file costs ~0.1 ms.
// TestEmbeddedSchemasMatchReflection fails when a type changed and the file did not;
// UPDATE_SCHEMAS=1 go test ./tools rewrites it.
//
//go:embed schemas.json
var embeddedSchemas []byte

// toolSchemas are one tool's schemas in schemas.json.
type toolSchemas struct {
	Input  json.RawMessage `json:"input"`
	Output json.RawMessage `json:"output"`
}

// Schemas hands out the tools' schemas: from schemas.json, or reflected for a tool it does
// not name (a factory being written). Safe for concurrent use once made.
type Schemas struct {
	byTool map[string]toolSchemas
}

// NewSchemas reads schemas.json. A file that does not parse (a bad edit) leaves every tool
// reflected, which the test above reports.
func NewSchemas() *Schemas {
	s := &Schemas{}
	if err := json.Unmarshal(embeddedSchemas, &s.byTool); err != nil {
		s.byTool = nil
	}
	return s
}

// schema returns tool's input (output false) or output schema; t is its args or result type.
// A nil *Schemas reflects.
func (s *Schemas) schema(tool string, t reflect.Type, output bool) (json.RawMessage, error) {
	if s != nil {
		if ts, ok := s.byTool[tool]; ok {
			if output && ts.Output != nil {
				return ts.Output, nil
			}
			if !output && ts.Input != nil {
				return ts.Input, nil
			}
		}
	}
	reflectOne := inputSchema
	if output {
		reflectOne = outputSchema
	}
	raw, err := reflectOne(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return raw, nil
}

// inputSchema reflects an args struct into the tool's inputSchema: inlined (no $defs, which
// some clients do not resolve), additionalProperties false (the decoder rejects unknown
// arguments too), and without $schema/$id, which only cost tools/list bytes.
func inputSchema(t reflect.Type) (json.RawMessage, error) {
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, AllowAdditionalProperties: false, Anonymous: true}
	return reflectSchema(&r, t)
}

// outputSchema reflects a guard result type into the tool's outputSchema. It leaves
// additionalProperties open: a field the guard adds later must not make clients that validate
// structuredContent reject the whole answer, and the open form is shorter.
func outputSchema(t reflect.Type) (json.RawMessage, error) {
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, AllowAdditionalProperties: true, Anonymous: true}
	return reflectSchema(&r, t)
}

func reflectSchema(r *jsonschema.Reflector, t reflect.Type) (json.RawMessage, error) {
	if t.Kind() != reflect.Struct {
		return nil, errors.New("want a struct type, got " + t.String())
	}
	s := r.ReflectFromType(t)
	s.Version = ""
	s.ID = ""
	if s.Type != "object" {
		return nil, errors.New("schema root is not an object")
	}
	if s.Properties == nil {
		// MCP clients expect "properties" even on argument-less tools.
		s.Properties = jsonschema.NewProperties()
	}
	return json.Marshal(s)
}
