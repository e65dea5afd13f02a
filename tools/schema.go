package tools

import (
	"encoding/json"
	"errors"
	"reflect"

	"github.com/invopop/jsonschema"
)

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
