package tools

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
)

// Confirmation through elicitation (issue 12). A tool whose arguments carry `confirm` answers
// CONFIRMATION_REQUIRED when the guard wants it; when the client declared the elicitation
// capability, the tool asks the user instead (an input_required result, which mcp-go turns into
// elicitation/create for clients before 2026-07-28) and runs with confirm only on accept.
//
// The answer comes back from the client, which could also forge it on a first call
// (mcp-go-notes §2.7). So the ask carries a sealed request state: an HMAC over the tool, the
// tenant, the arguments and an expiry, usable once. An answer without a valid state is ignored
// and the call behaves as if none had been sent.

// confirmable is an args type with a confirm argument that the user may give instead of the agent.
type confirmable interface{ confirmByUser() }

const (
	confirmInputID = "confirm"
	confirmTTL     = 5 * time.Minute
)

// confirmations seals and opens request states. The key lives for the process: a state is
// honoured by the replica that issued it (a retry that lands elsewhere is asked again).
type confirmations struct {
	key []byte
	now func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // nonce → expiry: each state is honoured once
}

func newConfirmations() *confirmations {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("tools: no randomness for the confirmation key: " + err.Error()) // crypto/rand never fails on Linux
	}
	return &confirmations{key: key, now: time.Now, used: map[string]time.Time{}}
}

type sealedState struct {
	Tool    string `json:"t"`
	Tenant  string `json:"u"`
	Args    string `json:"a"` // sha256 of the decoded arguments
	Nonce   string `json:"n"`
	Expires int64  `json:"e"` // unix seconds
}

func argsDigest(a any) string {
	b, _ := json.Marshal(a) // the args types are plain structs: Marshal cannot fail
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (c *confirmations) mac(payload string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

func (c *confirmations) seal(tool, tenant string, a any) string {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	b, _ := json.Marshal(sealedState{Tool: tool, Tenant: tenant, Args: argsDigest(a),
		Nonce: base64.RawURLEncoding.EncodeToString(nonce), Expires: c.now().Add(confirmTTL).Unix()})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(c.mac(payload))
}

// open reports whether state was sealed here for this tool, tenant and arguments, is unexpired
// and unused; it marks it used.
func (c *confirmations) open(state, tool, tenant string, a any) bool {
	payload, sig, ok := strings.Cut(state, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || subtle.ConstantTimeCompare(got, c.mac(payload)) != 1 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var s sealedState
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	now := c.now()
	if s.Tool != tool || s.Tenant != tenant || s.Args != argsDigest(a) || now.Unix() > s.Expires {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, exp := range c.used {
		if now.Unix() > exp.Unix() {
			delete(c.used, n)
		}
	}
	if _, seen := c.used[s.Nonce]; seen {
		return false
	}
	c.used[s.Nonce] = time.Unix(s.Expires, 0)
	return true
}

// userAnswer is what the client says the user decided on a sealed ask.
type userAnswer int

const (
	noAnswer userAnswer = iota // none, or not one this server asked for
	accepted
	declined
)

// answer reads the user's decision from a retried call; noAnswer unless the state is valid.
func (c *confirmations) answer(ctx context.Context, tool string, req mcp.CallToolRequest, a any) userAnswer {
	if c == nil || len(req.Params.InputResponses) == 0 || req.Params.RequestState == "" {
		return noAnswer
	}
	res := server.ElicitationResponse(req.Params.InputResponses, confirmInputID)
	if res == nil {
		return noAnswer
	}
	p, _ := identity.FromContext(ctx)
	if !c.open(req.Params.RequestState, tool, p.TenantID, a) {
		return noAnswer
	}
	if res.Action == mcp.ElicitationResponseActionAccept {
		return accepted
	}
	return declined
}

// ask turns a CONFIRMATION_REQUIRED into a question for the user.
func (c *confirmations) ask(ctx context.Context, tool string, a any, why *errcode.Error) *mcp.CallToolResult {
	p, _ := identity.FromContext(ctx)
	return server.NewInputRequestBuilder(c.seal(tool, p.TenantID, a)).
		Elicit(confirmInputID, mcp.ElicitationParams{
			Mode:    mcp.ElicitationModeForm,
			Message: tool + ": " + why.Message + ". Proceed?",
			// Accept or decline is the whole answer; the form asks for nothing more.
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{}},
		}).ToolResult()
}

// clientCanElicit reports whether the caller can be asked: it declared elicitation (per request
// from 2026-07-28, at initialize before) and, for the older protocol, its session can carry
// elicitation/create (mcp-go's SSE sessions cannot).
func clientCanElicit(ctx context.Context) bool {
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.Modern {
		return info.ClientCapabilities != nil && info.ClientCapabilities.Elicitation != nil
	}
	session := server.ClientSessionFromContext(ctx)
	if _, ok := session.(server.SessionWithElicitation); !ok {
		return false
	}
	withInfo, ok := session.(server.SessionWithClientInfo)
	return ok && withInfo.GetClientCapabilities().Elicitation != nil
}

// errDeclined is the answer when the user said no (or cancelled): the guard was not called again.
var errDeclined = errcode.New(errcode.ConfirmationRequired, "the user declined the confirmation; nothing was run",
	"ask the user what they want, or try it on a dev branch first")

// needsConfirmation returns the guard's CONFIRMATION_REQUIRED, or nil for any other outcome.
func needsConfirmation(err error) *errcode.Error {
	var ge *errcode.Error
	if errors.As(err, &ge) && ge.Code == errcode.ConfirmationRequired {
		return ge
	}
	return nil
}
