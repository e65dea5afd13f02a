// Package sqlhttp serves Neon's SQL-over-HTTP protocol (what Neon's proxy answers at
// https://api.<region>.neon.tech/sql and what @neondatabase/serverless's neon() speaks) in
// front of the local emulator's endpoints, so the serverless driver runs unchanged against
// local databases.
//
// The protocol, as Neon's proxy implements it (neondatabase/neon proxy/src/serverless):
//
//   - POST /sql with the header Neon-Connection-String: postgresql://user:password@host:port/db.
//     The connection string picks the endpoint and authenticates (the password is checked by
//     PostgreSQL itself here, through the endpoint's port, which also wakes a suspended compute).
//   - Body {"query": "...", "params": [...]} for one query, or {"queries": [{...}, ...]} for a
//     transaction (BEGIN, every query, COMMIT; ROLLBACK on the first error). The headers
//     Neon-Batch-Isolation-Level (Serializable, ReadUncommitted, ReadCommitted, RepeatableRead),
//     Neon-Batch-Read-Only and Neon-Batch-Deferrable shape the transaction and are echoed.
//   - Parameters are sent as text: null stays NULL, strings as they are, numbers, booleans and
//     objects as their JSON text, arrays as PostgreSQL array literals.
//   - Every query runs with the extended protocol (so one statement per query, as on Neon).
//   - The answer is {"rowAsArray", "fields": [{name, dataTypeID, tableID, columnID, dataTypeSize,
//     dataTypeModifier, format: "text"}], "rows", "command", "rowCount"}; a transaction's is
//     {"results": [...]}. "command" is the command tag's first word and "rowCount" its count
//     (null when it has none: "CREATE TABLE" is {"command": "CREATE", "rowCount": null}).
//   - Neon-Array-Mode: true gives rows as arrays, otherwise objects keyed by column name
//     (a query's own "arrayMode" overrides it). Neon-Raw-Text-Output: true gives every value as
//     PostgreSQL's text; otherwise booleans, int2/int4 and float4/float8 become JSON booleans
//     and numbers, json/jsonb JSON, arrays JSON arrays, everything else (int8 and numeric
//     included) strings.
//   - A PostgreSQL error is 400 {"message", "code", "detail", "hint", "position",
//     "internalPosition", "internalQuery", "severity", "where", "table", "column", "schema",
//     "dataType", "constraint", "file", "line", "routine"} (absent fields null); other request
//     errors are 400 with the same shape and an empty code; a failure to reach the endpoint is
//     500. The driver turns a 400 into an error carrying those fields.
//   - Answers larger than 10 MiB are refused with 507, requests larger than 10 MiB with 413.
//
// Not emulated: JWT authentication (Authorization: Bearer with no password) and the server
// side connection pool (every request opens its own connection).
package sqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Limits, as Neon's proxy sets them by default.
const (
	MaxRequestBytes  = 10 << 20
	MaxResponseBytes = 10 << 20
)

// Options configure a Server.
type Options struct {
	// Allowed reports whether a connection string may be served: its host (a loopback address
	// or the endpoints' host name) and its port (one of the emulator's endpoints). Nil: any
	// loopback host and port.
	Allowed func(host string, port int) bool
	// ConnectTimeout bounds opening the connection, a compute's start included (default 30s).
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// Server is an http.Handler serving POST /sql.
type Server struct {
	opts  Options
	types *pgtype.Map
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Allowed == nil {
		opts.Allowed = func(host string, _ int) bool { return IsLoopback(host) }
	}
	return &Server{opts: opts, types: pgtype.NewMap()}
}

// IsLoopback reports whether host names this machine's loopback interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Header names of the protocol.
const (
	hdrConnString = "Neon-Connection-String"
	hdrRawText    = "Neon-Raw-Text-Output"
	hdrArrayMode  = "Neon-Array-Mode"
	hdrIsolation  = "Neon-Batch-Isolation-Level"
	hdrReadOnly   = "Neon-Batch-Read-Only"
	hdrDeferrable = "Neon-Batch-Deferrable"
)

type queryData struct {
	Query     string            `json:"query"`
	Params    []json.RawMessage `json:"params"`
	ArrayMode *bool             `json:"arrayMode"`
}

// payload is a single query (Query set) or a transaction (Queries set).
type payload struct {
	Query     *string           `json:"query"`
	Params    []json.RawMessage `json:"params"`
	ArrayMode *bool             `json:"arrayMode"`
	Queries   []queryData       `json:"queries"`
}

type options struct {
	raw, arrayMode       bool
	isolation            string
	readOnly, deferrable bool
}

// sqlError is an answer other than 200.
type sqlError struct {
	status int
	msg    string
	pg     *pgconn.PgError
}

func (e *sqlError) Error() string { return e.msg }

func badRequest(format string, args ...any) *sqlError {
	return &sqlError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP serves POST /sql (and CORS preflights, as Neon does for browsers).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.URL.Path != "/sql" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "*")
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := s.serve(r, w.Header())
	if err != nil {
		var se *sqlError
		if !errors.As(err, &se) {
			se = &sqlError{status: http.StatusInternalServerError, msg: err.Error()}
		}
		writeError(w, se)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Server) serve(r *http.Request, respHeader http.Header) ([]byte, error) {
	opts, err := parseHeaders(r.Header)
	if err != nil {
		return nil, err
	}
	cfg, err := s.connConfig(r.Header.Get(hdrConnString))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &sqlError{status: http.StatusRequestEntityTooLarge, msg: "request is too large (max is 10485760 bytes)"}
		}
		return nil, badRequest("could not read the request body: %v", err)
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, badRequest("could not parse the request body: %v", err)
	}
	batch := p.Queries != nil
	if !batch && p.Query == nil {
		return nil, badRequest("could not parse the request body: missing field `query`")
	}

	conn, err := s.connect(r.Context(), cfg)
	if err != nil {
		return nil, connectError(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = conn.Close(cctx)
	}()

	ctx := r.Context()
	if !batch {
		res, err := s.run(ctx, conn, queryData{Query: *p.Query, Params: p.Params, ArrayMode: p.ArrayMode}, opts)
		if err != nil {
			return nil, err
		}
		return marshalLimited(res)
	}
	if opts.readOnly {
		respHeader.Set(hdrReadOnly, "true")
	}
	if opts.deferrable {
		respHeader.Set(hdrDeferrable, "true")
	}
	if opts.isolation != "" {
		respHeader.Set(hdrIsolation, opts.isolation)
	}
	if err := exec(ctx, conn, beginStatement(opts)); err != nil {
		return nil, err
	}
	results := make([]*result, 0, len(p.Queries))
	for _, q := range p.Queries {
		res, err := s.run(ctx, conn, q, opts)
		if err != nil {
			_ = exec(ctx, conn, "ROLLBACK")
			return nil, err
		}
		results = append(results, res)
	}
	if err := exec(ctx, conn, "COMMIT"); err != nil {
		return nil, err
	}
	return marshalLimited(map[string]any{"results": results})
}

func parseHeaders(h http.Header) (options, error) {
	o := options{
		raw:        h.Get(hdrRawText) == "true",
		arrayMode:  h.Get(hdrArrayMode) == "true",
		readOnly:   h.Get(hdrReadOnly) == "true",
		deferrable: h.Get(hdrDeferrable) == "true",
	}
	if v := h.Get(hdrIsolation); v != "" {
		if _, ok := isolationLevels[v]; !ok {
			return o, badRequest("invalid isolation level")
		}
		o.isolation = v
	}
	return o, nil
}

// isolationLevels maps the Neon-Batch-Isolation-Level values to their SQL.
var isolationLevels = map[string]string{
	"Serializable":    "SERIALIZABLE",
	"ReadUncommitted": "READ UNCOMMITTED",
	"ReadCommitted":   "READ COMMITTED",
	"RepeatableRead":  "REPEATABLE READ",
}

func beginStatement(o options) string {
	var b strings.Builder
	b.WriteString("BEGIN")
	if lvl := isolationLevels[o.isolation]; lvl != "" {
		b.WriteString(" ISOLATION LEVEL " + lvl)
	}
	if o.readOnly {
		b.WriteString(" READ ONLY")
	}
	if o.deferrable {
		b.WriteString(" DEFERRABLE")
	}
	return b.String()
}

func exec(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	_, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return queryError(err)
	}
	return nil
}

// connect opens the connection. An endpoint whose compute is still being started (its
// start_compute operation running) refuses connections for a moment: like Neon's proxy, which
// holds the request while it wakes the compute, connect retries until ConnectTimeout.
func (s *Server) connect(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		var pg *pgconn.PgError
		if err == nil || errors.As(err, &pg) || !errors.Is(err, syscall.ECONNREFUSED) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// connConfig parses and checks the Neon-Connection-String header.
func (s *Server) connConfig(connString string) (*pgconn.Config, error) {
	if connString == "" {
		return nil, badRequest("missing connection string")
	}
	u, err := parseURL(connString)
	if err != nil {
		return nil, badRequest("invalid connection string: %v", err)
	}
	host, portStr := u.Hostname(), u.Port()
	if host == "" {
		return nil, badRequest("missing hostname")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, badRequest("missing username")
	}
	if _, ok := u.User.Password(); !ok {
		return nil, badRequest("missing password (JWT authentication is not emulated)")
	}
	if strings.Trim(u.Path, "/") == "" {
		return nil, badRequest("missing database name")
	}
	port := 5432
	if portStr != "" {
		if port, err = strconv.Atoi(portStr); err != nil {
			return nil, badRequest("invalid port %q", portStr)
		}
	}
	if !s.opts.Allowed(host, port) {
		return nil, badRequest("unknown endpoint %s: not an endpoint of this emulator", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, badRequest("invalid connection string: %v", err)
	}
	// The endpoints listen on 127.0.0.1, whatever name they are given.
	cfg.Host = "127.0.0.1"
	for _, fb := range cfg.Fallbacks {
		fb.Host = "127.0.0.1"
	}
	// Parameters that are libpq's or Neon's, not the server's.
	delete(cfg.RuntimeParams, "channel_binding")
	delete(cfg.RuntimeParams, "options")
	return cfg, nil
}

type field struct {
	Name             string `json:"name"`
	DataTypeID       uint32 `json:"dataTypeID"`
	TableID          uint32 `json:"tableID"`
	ColumnID         uint16 `json:"columnID"`
	DataTypeSize     int16  `json:"dataTypeSize"`
	DataTypeModifier int32  `json:"dataTypeModifier"`
	Format           string `json:"format"`
}

type result struct {
	RowAsArray bool    `json:"rowAsArray"`
	Fields     []field `json:"fields"`
	Rows       []any   `json:"rows"`
	Command    string  `json:"command"`
	RowCount   *int64  `json:"rowCount"`
}

// run executes one query with the extended protocol, parameters and results as text.
func (s *Server) run(ctx context.Context, conn *pgconn.PgConn, q queryData, o options) (*result, error) {
	params, err := pgParams(q.Params)
	if err != nil {
		return nil, err
	}
	arrayMode := o.arrayMode
	if q.ArrayMode != nil {
		arrayMode = *q.ArrayMode
	}
	rr := conn.ExecParams(ctx, dropFileCacheOption(q.Query), params, nil, nil, nil)
	fds := rr.FieldDescriptions()
	res := &result{RowAsArray: arrayMode, Fields: make([]field, 0, len(fds)), Rows: []any{}}
	for _, fd := range fds {
		res.Fields = append(res.Fields, field{Name: fd.Name, DataTypeID: fd.DataTypeOID, TableID: fd.TableOID,
			ColumnID: fd.TableAttributeNumber, DataTypeSize: fd.DataTypeSize, DataTypeModifier: fd.TypeModifier, Format: "text"})
	}
	size := 0
	for rr.NextRow() {
		vals := rr.Values()
		if arrayMode {
			row := make([]any, len(vals))
			for i, v := range vals {
				row[i] = s.value(v, fds[i].DataTypeOID, o.raw)
				size += len(v)
			}
			res.Rows = append(res.Rows, row)
		} else {
			row := make(orderedRow, len(vals))
			for i, v := range vals {
				row[i] = column{name: fds[i].Name, value: s.value(v, fds[i].DataTypeOID, o.raw)}
				size += len(v) + len(fds[i].Name)
			}
			res.Rows = append(res.Rows, row)
		}
		if size > MaxResponseBytes {
			_, _ = rr.Close()
			return nil, &sqlError{status: http.StatusInsufficientStorage, msg: "response is too large (max is 10485760 bytes)"}
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return nil, queryError(err)
	}
	res.Command, res.RowCount = parseCommandTag(tag.String())
	return res, nil
}

// dropFileCacheOption removes FILECACHE from a leading EXPLAIN's option list: Neon's compute
// accepts it (its Local File Cache counters, what Neon's MCP server asks for in
// explain_sql_statement with analyze), a local PostgreSQL has no such cache and would answer
// `unrecognized EXPLAIN option "filecache"`. The plan is then PostgreSQL's, without those
// counters. Any other query is returned unchanged.
func dropFileCacheOption(query string) string {
	rest := strings.TrimLeft(query, " \t\r\n")
	if len(rest) < len("EXPLAIN") || !strings.EqualFold(rest[:len("EXPLAIN")], "EXPLAIN") {
		return query
	}
	rest = rest[len("EXPLAIN"):]
	opts := strings.TrimLeft(rest, " \t\r\n")
	if !strings.HasPrefix(opts, "(") {
		return query
	}
	end := strings.IndexByte(opts, ')')
	if end < 0 {
		return query
	}
	var kept []string
	dropped := false
	for _, o := range strings.Split(opts[1:end], ",") {
		if f := strings.Fields(o); len(f) > 0 && strings.EqualFold(f[0], "FILECACHE") {
			dropped = true
			continue
		}
		kept = append(kept, strings.TrimSpace(o))
	}
	if !dropped {
		return query
	}
	if len(kept) == 0 {
		return "EXPLAIN " + opts[end+1:]
	}
	return "EXPLAIN (" + strings.Join(kept, ", ") + ")" + opts[end+1:]
}

// parseCommandTag splits a command tag as Neon does: "INSERT 0 3" → INSERT, 3; "SELECT 2" →
// SELECT, 2; "CREATE TABLE" → CREATE, null.
func parseCommandTag(tag string) (string, *int64) {
	name, rest, ok := strings.Cut(tag, " ")
	if !ok {
		return tag, nil
	}
	if name == "INSERT" {
		_, count, ok := strings.Cut(rest, " ")
		if !ok {
			return name, nil
		}
		rest = count
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return name, nil
	}
	return name, &n
}

// pgParams turns JSON parameters into PostgreSQL text (nil = NULL).
func pgParams(in []json.RawMessage) ([][]byte, error) {
	out := make([][]byte, len(in))
	for i, raw := range in {
		var v any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, badRequest("could not parse the request body: params[%d]: %v", i, err)
		}
		if s, ok := paramText(v, raw); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

func paramText(v any, raw json.RawMessage) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", false
	case string:
		return t, true
	case []any:
		return pgArray(t), true
	case map[string]any:
		return compactJSON(raw), true
	default: // numbers and booleans: their JSON text
		return compactJSON(raw), true
	}
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// pgArray writes a JSON array as a PostgreSQL array literal; strings are quoted and escaped,
// objects become their quoted JSON text.
func pgArray(arr []any) string {
	parts := make([]string, len(arr))
	for i, el := range arr {
		switch t := el.(type) {
		case nil:
			parts[i] = "NULL"
		case []any:
			parts[i] = pgArray(t)
		case string:
			parts[i] = quoteArrayItem(t)
		case map[string]any:
			b, _ := json.Marshal(t)
			parts[i] = quoteArrayItem(string(b))
		case json.Number:
			parts[i] = t.String()
		case bool:
			parts[i] = strconv.FormatBool(t)
		default:
			parts[i] = fmt.Sprint(t)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func quoteArrayItem(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

func writeError(w http.ResponseWriter, e *sqlError) {
	body := map[string]any{
		"message": e.msg, "code": "", "detail": nil, "hint": nil, "position": nil,
		"internalPosition": nil, "internalQuery": nil, "severity": "", "where": nil, "table": nil,
		"column": nil, "schema": nil, "dataType": nil, "constraint": nil, "file": nil, "line": nil,
		"routine": nil,
	}
	if pg := e.pg; pg != nil {
		body["message"], body["code"], body["severity"] = pg.Message, pg.Code, pg.Severity
		opt := func(k, v string) {
			if v != "" {
				body[k] = v
			}
		}
		opt("detail", pg.Detail)
		opt("hint", pg.Hint)
		opt("where", pg.Where)
		opt("table", pg.TableName)
		opt("column", pg.ColumnName)
		opt("schema", pg.SchemaName)
		opt("dataType", pg.DataTypeName)
		opt("constraint", pg.ConstraintName)
		opt("file", pg.File)
		opt("routine", pg.Routine)
		if pg.Position > 0 {
			body["position"] = strconv.Itoa(int(pg.Position))
		}
		if pg.InternalPosition > 0 {
			body["internalPosition"] = strconv.Itoa(int(pg.InternalPosition))
			opt("internalQuery", pg.InternalQuery)
		}
		if pg.Line > 0 {
			body["line"] = strconv.Itoa(int(pg.Line))
		}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

// queryError maps a query's failure: PostgreSQL's errors are 400 with their fields.
func queryError(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return &sqlError{status: http.StatusBadRequest, msg: pg.Message, pg: pg}
	}
	return &sqlError{status: http.StatusInternalServerError, msg: err.Error()}
}

// connectError maps a failure to connect: PostgreSQL's refusals (wrong password, no such
// database or role, quota) are 400 with their fields, as the user's doing; anything else
// (the endpoint cannot be reached) is 500.
func connectError(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return &sqlError{status: http.StatusBadRequest, msg: pg.Message, pg: pg}
	}
	return &sqlError{status: http.StatusInternalServerError, msg: "could not connect to the endpoint: " + err.Error()}
}
