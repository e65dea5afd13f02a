package neon

import (
	"errors"
	"strings"
	"testing"
)

func FuzzDecodeError(f *testing.F) {
	f.Add(422, []byte(`{"code":"BRANCHES_LIMIT_EXCEEDED","message":"m","request_id":"r"}`))
	f.Add(406, []byte(`{"limits":[{"name":"a","expected":"b","actual":"c"}]}`))
	f.Add(422, []byte(`{"projects":[{"id":"p","integration":"github"}]}`))
	f.Add(524, []byte("<html><title>timeout</title></html>"))
	f.Add(500, []byte(`{"code":7,"message":{"x":[1,2]},"request_id":null}`))
	f.Add(503, []byte("\xff\xfe\x00garbage"))
	f.Add(400, []byte(""))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := decodeAPIError("GET", "/x", status, body, Redact)
		if err == nil {
			t.Fatal("nil error")
		}
		msg := err.Error()
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != status {
			t.Fatalf("not an *APIError for %d: %v", status, err)
		}
		if len([]rune(ae.Message)) > maxMessageRunes+1 || len([]rune(ae.Code)) > maxCodeRunes+1 || len(msg) > 64<<10 {
			t.Fatalf("unbounded error: %d bytes", len(msg))
		}
		if strings.ContainsAny(ae.Message+ae.Code+ae.RequestID, "\n\r") {
			t.Fatal("multi-line error field")
		}
	})
}
