package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/truncate"
)

// maxArgsBytes bounds the encoded arguments: every argument here is a short identifier, so
// anything larger is a mistake and is rejected before it is decoded.
const maxArgsBytes = 16 << 10

// identPattern is the shape of names and ids (databases, checkpoints, branches, regions). It
// is repeated in the args structs' jsonschema tags, which cannot reference a constant.
const identPattern = `^[A-Za-z0-9][A-Za-z0-9._-]*$`

// argError is a decode or validation failure: INVALID_ARGUMENT, shown to the agent as is.
type argError struct {
	msg, hint string
}

func (e *argError) Error() string { return e.msg }

func (e *argError) result() *mcp.CallToolResult {
	return ErrorResult(errcode.InvalidArgument, e.msg, e.hint)
}

func invalidArg(hint, format string, a ...any) *argError {
	return &argError{msg: fmt.Sprintf(format, a...), hint: hint}
}

// decoder turns a tool call's arguments into *A: unknown arguments rejected by name, JSON type
// errors named by argument, then the validator tags checked. Built once per tool.
type decoder[A any] struct {
	allowed  []string // json names, sorted
	validate *validator.Validate
}

func newDecoder[A any](v *validator.Validate) *decoder[A] {
	t := reflect.TypeFor[A]()
	var names []string
	for i := range t.NumField() {
		if name := jsonName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return &decoder[A]{allowed: names, validate: v}
}

// jsonName is f's JSON name, or "" when encoding/json ignores f.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}

func (dc *decoder[A]) hint() string {
	if len(dc.allowed) == 0 {
		return "this tool takes no arguments: call it with {}"
	}
	return "allowed arguments: " + strings.Join(dc.allowed, ", ")
}

// decode fills dst from raw, which is req.GetRawArguments(): the original JSON bytes when the
// transport kept them, otherwise the decoded value (map[string]any, or anything a client sent).
func (dc *decoder[A]) decode(raw any, dst *A) *argError {
	var b []byte
	switch v := raw.(type) {
	case nil:
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			// e.g. NaN or a channel from an in-process caller: not representable as JSON.
			return invalidArg(dc.hint(), "arguments are not valid JSON")
		}
	}
	if len(b) > maxArgsBytes {
		return invalidArg(dc.hint(), "arguments too large (%d bytes, at most %d)", len(b), maxArgsBytes)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		b = []byte("{}")
	}

	// Unknown keys are checked by hand before decoding: encoding/json matches field names case
	// insensitively and reports only the first unknown field, in a message meant for Go
	// programmers.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return invalidArg(dc.hint(), "arguments must be a JSON object")
	}
	var unknown []string
	for k := range obj {
		if _, ok := slices.BinarySearch(dc.allowed, k); !ok {
			unknown = append(unknown, strconv.Quote(truncate.UTF8(k, 64)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		word := "argument"
		if len(unknown) > 1 {
			word = "arguments"
		}
		return invalidArg(dc.hint(), "unknown %s %s", word, strings.Join(unknown, ", "))
	}

	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return dc.typeError(err)
	}
	if err := dc.validate.Struct(dst); err != nil {
		return validationError(err)
	}
	return nil
}

func (dc *decoder[A]) typeError(err error) *argError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalidArg(dc.hint(), "%s: must be %s", te.Field, kindName(te.Type))
	}
	return invalidArg(dc.hint(), "arguments do not match the tool's input schema")
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "a valid value"
}

// newValidator builds the validator shared by a set of tools: errors name arguments by their
// JSON names, and the custom tags below carry neonguard's argument formats.
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(jsonName)
	ident := regexp.MustCompile(identPattern)
	must := func(tag string, fn validator.Func) {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(err) // only on an empty tag or nil func: a bug here
		}
	}
	must("ident", func(fl validator.FieldLevel) bool { return ident.MatchString(fl.Field().String()) })
	// ref: a name or id of something that exists (Neon names branches it makes itself, e.g.
	// "main (old)"), matched against a list: any printable text.
	must("ref", func(fl validator.FieldLevel) bool {
		s := fl.Field().String()
		return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 && utf8.ValidString(s)
	})
	must("duration", func(fl validator.FieldLevel) bool {
		_, err := parseDuration(fl.Field().String())
		return err == nil
	})
	must("rfc3339", func(fl validator.FieldLevel) bool {
		_, err := time.Parse(time.RFC3339, fl.Field().String())
		return err == nil
	})
	// from: main, a checkpoint name, or an RFC 3339 time.
	must("source", func(fl validator.FieldLevel) bool {
		s := fl.Field().String()
		if _, err := time.Parse(time.RFC3339, s); err == nil {
			return true
		}
		return ident.MatchString(s)
	})
	return v
}

// validationError turns validator errors into one agent-readable line: "name: required;
// ttl: must be a duration like 24h".
func validationError(err error) *argError {
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return invalidArg("", "invalid arguments")
	}
	msgs := make([]string, 0, len(ves))
	for _, fe := range ves {
		msgs = append(msgs, fe.Field()+": "+ruleText(fe))
	}
	return invalidArg("", "%s", strings.Join(msgs, "; "))
}

func ruleText(fe validator.FieldError) string {
	isString := fe.Kind() == reflect.String
	switch fe.Tag() {
	case "required":
		return "required"
	case "min":
		if isString {
			return "at least " + fe.Param() + " characters"
		}
		return "at least " + fe.Param()
	case "max":
		if isString {
			return "at most " + fe.Param() + " characters"
		}
		return "at most " + fe.Param()
	case "ident":
		return "letters, digits, '.', '_' and '-' only, starting with a letter or digit"
	case "ref":
		return "a name or id from a list tool (printable text)"
	case "duration":
		return "must be a duration like 24h (units s, m, h, d)"
	case "rfc3339":
		return "must be an RFC 3339 time like 2025-01-02T15:04:05Z"
	case "source":
		return "must be main, a checkpoint name, or an RFC 3339 time"
	case "ne":
		return "must not be " + fe.Param()
	case "oneof":
		return "must be one of " + strings.ReplaceAll(fe.Param(), " ", ", ")
	}
	return "invalid (" + fe.Tag() + ")"
}

// maxDuration bounds ago/ttl far beyond any tier's window or TTL, so arithmetic on the result
// (now minus ago, now plus ttl) cannot overflow.
const maxDuration = 10 * 365 * 24 * time.Hour

// parseDuration parses "15m", "2h", "1h30m" (time.ParseDuration) plus a leading day count:
// "1d", "7d", "1d12h". Zero, negative and absurdly large durations are rejected.
func parseDuration(s string) (time.Duration, error) {
	errFormat := errors.New("must be a duration like 24h")
	if s == "" || len(s) > 32 {
		return 0, errFormat
	}
	var total time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil || i == 0 {
			return 0, errFormat
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = s[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, errFormat
		}
		if d > maxDuration {
			return 0, errors.New("too large")
		}
		total += d
	}
	if total <= 0 {
		return 0, errors.New("must be positive")
	}
	if total > maxDuration {
		return 0, errors.New("too large")
	}
	return total, nil
}
