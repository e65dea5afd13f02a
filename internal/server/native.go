package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
)

// The MCP conveniences beyond the tools (issue 14): read-only resources over the caller's
// databases, completion of a database id for the prompts and the resource template, and
// warnings an agent should see sent as log messages once its client asks for them
// (logging/setLevel). Every one is tenant-scoped through the guard, exactly like the tools.

// Resource URIs.
const (
	ResourceDatabases = "neonguard://databases"
	ResourceDatabase  = "neonguard://databases/{database_id}"
)

// maxCompletions is the most values one completion/complete answers (the specification's cap).
const maxCompletions = 100

// noticer is the guard's Notices, when it has them (a test's fake guard may not).
type noticer interface {
	Notices(ctx context.Context, databaseID string) ([]guard.Notice, error)
}

// native holds what the resources, completions and notices need.
type native struct {
	g       guard.UseCases
	def     *identity.Principal
	timeout time.Duration
	log     *slog.Logger
	told    *toldSet
}

func newNative(o Options) *native {
	return &native{g: o.Guard, def: o.DefaultPrincipal, timeout: o.CallTimeout, log: o.Logger, told: &toldSet{m: map[string]struct{}{}}}
}

// options are the server options that declare and serve them.
func (n *native) options() []mcpserver.ServerOption {
	return []mcpserver.ServerOption{
		mcpserver.WithResourceCapabilities(false, false),
		mcpserver.WithCompletions(),
		mcpserver.WithLogging(),
		mcpserver.WithPromptCompletionProvider(n),
		mcpserver.WithResourceCompletionProvider(n),
		mcpserver.WithResourceRecovery(),
		mcpserver.WithResourceHandlerMiddleware(n.resourceMiddleware),
	}
}

// withPrincipal is ctx with the caller: the transport's, else the local server's.
func (n *native) withPrincipal(ctx context.Context) (context.Context, bool) {
	if _, ok := identity.FromContext(ctx); ok {
		return ctx, true
	}
	if n.def == nil {
		return ctx, false
	}
	return identity.NewContext(ctx, *n.def), true
}

// resourceMiddleware gives a resource read the caller and the call timeout (SSE never cancels
// a handler: mcp-go detaches it).
func (n *native) resourceMiddleware(next mcpserver.ResourceHandlerFunc) mcpserver.ResourceHandlerFunc {
	return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		ctx, ok := n.withPrincipal(ctx)
		if !ok {
			return nil, errors.New("UNAUTHENTICATED: no credentials (connect with a bearer token)")
		}
		ctx, cancel := context.WithTimeout(ctx, n.timeout)
		defer cancel()
		return next(ctx, req)
	}
}

// addResources registers the resource and the resource template.
func (n *native) addResources(s *mcpserver.MCPServer) {
	s.AddResource(mcp.NewResource(ResourceDatabases, "databases",
		mcp.WithResourceDescription("Your databases (the same as list_databases): ids, names, regions, PostgreSQL versions, your tier's limit."),
		mcp.WithMIMEType("application/json")),
		n.readDatabases)
	s.AddResourceTemplate(mcp.NewResourceTemplate(ResourceDatabase, "database",
		mcp.WithTemplateDescription("One of your databases in one document: its branches (list_branches), checkpoints (list_checkpoints) and this period's usage (get_usage)."),
		mcp.WithTemplateMIMEType("application/json")),
		n.readDatabase)
}

func (n *native) readDatabases(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	res, err := n.g.ListDatabases(ctx)
	if err != nil {
		return nil, n.resourceError(ctx, req.Params.URI, err)
	}
	return jsonContents(req.Params.URI, res)
}

// DatabaseDocument is the neonguard://databases/{database_id} resource.
type DatabaseDocument struct {
	DatabaseID  string                       `json:"database_id"`
	Branches    *guard.ListBranchesResult    `json:"branches"`
	Checkpoints *guard.ListCheckpointsResult `json:"checkpoints"`
	Usage       *guard.DatabaseUsage         `json:"usage"`
}

func (n *native) readDatabase(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	id := templateArg(req.Params.Arguments["database_id"])
	in := guard.DatabaseInput{DatabaseID: id}
	doc := DatabaseDocument{DatabaseID: id}
	var err error
	if doc.Branches, err = n.g.ListBranches(ctx, in); err != nil {
		return nil, n.resourceError(ctx, req.Params.URI, err)
	}
	if doc.Checkpoints, err = n.g.ListCheckpoints(ctx, in); err != nil {
		return nil, n.resourceError(ctx, req.Params.URI, err)
	}
	usage, err := n.g.GetUsage(ctx, in)
	if err != nil {
		return nil, n.resourceError(ctx, req.Params.URI, err)
	}
	for i := range usage.Databases {
		if usage.Databases[i].DatabaseID == id {
			doc.Usage = &usage.Databases[i]
		}
	}
	return jsonContents(req.Params.URI, doc)
}

// templateArg is a matched template variable: a string, or a list for an exploded one.
func templateArg(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func jsonContents(uri string, v any) ([]mcp.ResourceContents, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: "application/json", Text: string(b)}}, nil
}

// resourceError is a failed read's error: mcp-go sends its text to the client as is, so it is
// the guard's code, message and hint (another tenant's id reads exactly as an unknown one), or
// a bare INTERNAL for anything else (logged).
func (n *native) resourceError(ctx context.Context, uri string, err error) error {
	if ge := errcode.As(err); ge != nil {
		msg := string(ge.Code) + ": " + ge.Message
		if ge.Hint != "" {
			msg += " (" + ge.Hint + ")"
		}
		return errors.New(msg)
	}
	n.log.ErrorContext(ctx, "resource read failed", "uri", uri, "err", err)
	return errors.New("INTERNAL: the resource could not be read; try again")
}

// CompletePromptArgument completes the prompts' database_id.
func (n *native) CompletePromptArgument(ctx context.Context, _ string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	return n.completeDatabase(ctx, arg)
}

// CompleteResourceArgument completes the resource template's {database_id}.
func (n *native) CompleteResourceArgument(ctx context.Context, _ string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	return n.completeDatabase(ctx, arg)
}

// completeDatabase answers the caller's database ids whose id or name starts with the typed
// value (case-insensitive); any other argument has no completion. A caller without databases
// (or without a tenant) gets none.
func (n *native) completeDatabase(ctx context.Context, arg mcp.CompleteArgument) (*mcp.Completion, error) {
	empty := &mcp.Completion{Values: []string{}}
	if arg.Name != "database_id" {
		return empty, nil
	}
	ctx, ok := n.withPrincipal(ctx)
	if !ok {
		return empty, nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	res, err := n.g.ListDatabases(ctx)
	if err != nil {
		n.log.DebugContext(ctx, "completion: list_databases failed", "err", err)
		return empty, nil
	}
	prefix := strings.ToLower(arg.Value)
	var ids []string
	for _, db := range res.Databases {
		if strings.HasPrefix(strings.ToLower(db.DatabaseID), prefix) || strings.HasPrefix(strings.ToLower(db.Name), prefix) {
			ids = append(ids, db.DatabaseID)
		}
	}
	slices.Sort(ids)
	out := &mcp.Completion{Values: ids, Total: len(ids)}
	if len(ids) > maxCompletions {
		out.Values, out.HasMore = ids[:maxCompletions], true
	}
	if out.Values == nil {
		out.Values = []string{}
	}
	return out, nil
}

// notices sends, after a call for one of the caller's databases, the warnings about it the
// client has not been told yet in this session (guard.Notices: quota alerts, backups about to
// expire) as notifications/message. Only when the client asked for warnings
// (logging/setLevel warning or lower; mcp-go's default is error), so a client that did not ask
// costs nothing. A notice never carries a secret: ids, names, numbers and times only.
func (n *native) notices(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	nt, ok := n.g.(noticer)
	if !ok {
		return next
	}
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := next(ctx, req)
		id, _ := req.GetArguments()["database_id"].(string)
		if id == "" || err != nil || ctx.Err() != nil || !wantsWarnings(ctx) {
			return res, err
		}
		srv := mcpserver.ServerFromContext(ctx)
		session := mcpserver.ClientSessionFromContext(ctx)
		if srv == nil || session == nil {
			return res, err
		}
		ns, nerr := nt.Notices(ctx, id)
		if nerr != nil {
			return res, err // an unknown id: the call itself said so
		}
		for _, notice := range ns {
			if !n.told.add(session.SessionID() + "\x00" + notice.Key) {
				continue
			}
			_ = srv.SendLogMessageToClient(ctx, mcp.NewLoggingMessageNotification(logLevel(notice.Level), "neonguard",
				map[string]any{"database_id": notice.DatabaseID, "message": notice.Message}))
		}
		return res, err
	}
}

// wantsWarnings reports whether the session's client asked for warning messages.
func wantsWarnings(ctx context.Context) bool {
	if info := mcpserver.RequestProtocolInfoFromContext(ctx); info != nil && info.Modern {
		return info.LogLevel != "" && mcp.LoggingLevelWarning.ShouldSendTo(info.LogLevel)
	}
	s, ok := mcpserver.ClientSessionFromContext(ctx).(mcpserver.SessionWithLogging)
	return ok && mcp.LoggingLevelWarning.ShouldSendTo(s.GetLogLevel())
}

// logLevel maps a notice's level to MCP's.
func logLevel(level string) mcp.LoggingLevel {
	switch level {
	case "critical":
		return mcp.LoggingLevelCritical
	case "exceeded":
		return mcp.LoggingLevelError
	}
	return mcp.LoggingLevelWarning
}

// toldSet remembers which notices each session was told; bounded, so that it cannot grow
// without end (when full it forgets everything, and a notice may be told once more).
type toldSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxTold = 10_000

func (t *toldSet) add(k string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[k]; ok {
		return false
	}
	if len(t.m) >= maxTold {
		clear(t.m)
	}
	t.m[k] = struct{}{}
	return true
}
