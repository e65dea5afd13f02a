package neon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/neonguard/neonguard/internal/truncate"
)

// Sentinels for errors.Is. An *APIError matches the one for its status (and code).
var (
	ErrBadRequest    = errors.New("neon: bad request")             // 400
	ErrUnauthorized  = errors.New("neon: unauthorized")            // 401
	ErrForbidden     = errors.New("neon: forbidden")               // 403
	ErrNotFound      = errors.New("neon: not found")               // 404
	ErrConflict      = errors.New("neon: conflict")                // 409
	ErrLocked        = errors.New("neon: locked")                  // 423
	ErrRateLimited   = errors.New("neon: rate limited")            // 429
	ErrUnavailable   = errors.New("neon: unavailable")             // 503
	ErrBranchLimit   = errors.New("neon: branch limit exceeded")   // 422 BRANCHES_LIMIT_EXCEEDED
	ErrSnapshotLimit = errors.New("neon: snapshot limit exceeded") // 422 SNAPSHOTS_LIMIT_EXCEEDED

	// ErrOutcomeUnknown: a request that is not safe to repeat may or may not have been applied
	// and the client could not find out. The caller must look before acting again.
	ErrOutcomeUnknown = errors.New("neon: outcome unknown")
	// ErrOperationTimeout: an operation was not terminal within Config.OperationTimeout.
	ErrOperationTimeout = errors.New("neon: operation timeout")
	// ErrInvalidArgument: the call was refused before anything was sent.
	ErrInvalidArgument = errors.New("neon: invalid argument")
)

// Neon error codes the client distinguishes.
const (
	CodeBranchesLimitExceeded  = "BRANCHES_LIMIT_EXCEEDED"
	CodeSnapshotsLimitExceeded = "SNAPSHOTS_LIMIT_EXCEEDED" // the local emulator's code
)

// APIError is an HTTP error answer from Neon. Its text is scrubbed of keys and passwords.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	Method     string
	Route      string // path template, e.g. /projects/{project_id}/branches

	retryAfter    time.Duration
	hasRetryAfter bool
}

// Error renders e.g.
// "neon: POST /projects/{project_id}/branches: 422 BRANCHES_LIMIT_EXCEEDED: message (request_id r)".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "neon: %s %s: %d", e.Method, e.Route, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request_id " + e.RequestID + ")")
	}
	return b.String()
}

// Is maps the status (and for 422 the code) to the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrLocked:
		return e.StatusCode == http.StatusLocked
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	case ErrBranchLimit:
		return e.StatusCode == http.StatusUnprocessableEntity && e.Code == CodeBranchesLimitExceeded
	case ErrSnapshotLimit:
		return e.StatusCode == http.StatusUnprocessableEntity && e.Code == CodeSnapshotsLimitExceeded
	}
	return false
}

// TransferLimitsError is the 406 answer of a project transfer: the destination org's plan does
// not satisfy Limits. It unwraps to the *APIError.
type TransferLimitsError struct {
	Limits []TransferLimit
	Err    *APIError
}

func (e *TransferLimitsError) Error() string {
	parts := make([]string, 0, len(e.Limits))
	for _, l := range e.Limits {
		parts = append(parts, fmt.Sprintf("%s (expected %s, actual %s)", l.Name, l.Expected, l.Actual))
	}
	s := fmt.Sprintf("neon: %s %s: %d transfer limits not satisfied: %s", e.Err.Method, e.Err.Route, e.Err.StatusCode, strings.Join(parts, "; "))
	if e.Err.RequestID != "" {
		s += " (request_id " + e.Err.RequestID + ")"
	}
	return s
}

func (e *TransferLimitsError) Unwrap() error { return e.Err }

// OperationError is an operation that ended in failed, error or cancelled.
type OperationError struct {
	ProjectID   string
	OperationID string
	Action      string
	Status      string
	Message     string // Neon's error text, scrubbed
}

func (e *OperationError) Error() string {
	s := fmt.Sprintf("neon: operation %s %s on project %s: %s", e.Action, e.OperationID, e.ProjectID, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

const (
	maxMessageRunes = 512
	maxCodeRunes    = 64
	maxIDRunes      = 128
	maxTextRunes    = 200 // for bodies that are not Neon JSON (e.g. Cloudflare HTML)
)

var (
	reTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	reTags  = regexp.MustCompile(`(?s)<[^>]*>`)
)

// decodeAPIError turns an error answer into *APIError (or *TransferLimitsError for 406 limit
// bodies). It never panics and never copies a body wholesale: non-JSON text is summarised and
// truncated, and every string passes scrub.
func decodeAPIError(method, route string, status int, body []byte, scrub func(string) string) error {
	e := &APIError{StatusCode: status, Method: method, Route: route}
	var wire struct {
		Code      json.RawMessage `json:"code"`
		Message   json.RawMessage `json:"message"`
		RequestID json.RawMessage `json:"request_id"`
		Limits    []TransferLimit `json:"limits"`
		Projects  []struct {
			ID          string `json:"id"`
			Integration string `json:"integration"`
		} `json:"projects"`
	}
	if err := json.Unmarshal(body, &wire); err == nil {
		e.Code = clean(scrub(jsonText(wire.Code)), maxCodeRunes)
		e.Message = clean(scrub(jsonText(wire.Message)), maxMessageRunes)
		e.RequestID = clean(scrub(jsonText(wire.RequestID)), maxIDRunes)
		if e.Message == "" && len(wire.Projects) > 0 {
			// transfer 422: projects with integrations cannot move.
			parts := make([]string, 0, len(wire.Projects))
			for i, p := range wire.Projects {
				if i == 10 {
					parts = append(parts, fmt.Sprintf("and %d more", len(wire.Projects)-10))
					break
				}
				parts = append(parts, p.ID+" ("+p.Integration+")")
			}
			e.Message = clean(scrub("projects with integrations: "+strings.Join(parts, ", ")), maxMessageRunes)
		}
		if len(wire.Limits) > 0 {
			limits := make([]TransferLimit, 0, min(len(wire.Limits), 20))
			for _, l := range wire.Limits[:min(len(wire.Limits), 20)] {
				limits = append(limits, TransferLimit{
					Name:     clean(scrub(l.Name), maxCodeRunes),
					Expected: clean(scrub(l.Expected), maxCodeRunes),
					Actual:   clean(scrub(l.Actual), maxCodeRunes),
				})
			}
			if e.Message == "" {
				e.Message = "transfer limits not satisfied"
			}
			return &TransferLimitsError{Limits: limits, Err: e}
		}
	} else {
		e.Message = clean(scrub(summarize(body)), maxTextRunes)
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	return e
}

// jsonText reads a JSON string, or renders any other JSON value as compact text.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

// summarize reduces a non-JSON body (typically a proxy's HTML page) to a short line.
func summarize(body []byte) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	s := string(body)
	if m := reTitle.FindStringSubmatch(s); m != nil {
		s = m[1]
	} else if strings.Contains(s, "<") {
		s = reTags.ReplaceAllString(s, " ")
	}
	return s
}

// clean makes s valid single-line UTF-8 of at most n runes.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	return truncate.UTF8(s, n)
}
