package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"sync"
)

// mcp-go cancels a call's context on notifications/cancelled, but still writes the call's
// answer when the handler returns. The specification says a receiver SHOULD NOT answer a
// cancelled request, and a client has forgotten the id by then (the TypeScript SDK reports
// "unknown message ID"). On stdio, where neonguard owns both streams, cancelFilter drops that
// answer: it notes the ids the client cancels as the lines come in, and leaves out the answer
// to a noted id as it goes out. Everything else passes through unchanged, line by line.

// maxCancelled bounds the noted ids (a cancellation that arrives after its answer is never
// matched); when full, the oldest half is forgotten.
const maxCancelled = 1024

type cancelFilter struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string
}

func newCancelFilter() *cancelFilter { return &cancelFilter{ids: map[string]struct{}{}} }

// input returns a reader of in's lines that notes every cancelled request id on the way.
func (f *cancelFilter) input(in io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		r := bufio.NewReader(in)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				f.noteCancel(line)
				if _, werr := pw.Write(line); werr != nil {
					return
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

var cancelledMethod = []byte(`"notifications/cancelled"`)

func (f *cancelFilter) noteCancel(line []byte) {
	if !bytes.Contains(line, cancelledMethod) {
		return
	}
	var n struct {
		Method string `json:"method"`
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(line, &n) != nil || n.Method != "notifications/cancelled" || len(n.Params.RequestID) == 0 {
		return
	}
	id := string(n.Params.RequestID)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; ok {
		return
	}
	if len(f.order) >= maxCancelled {
		for _, old := range f.order[:maxCancelled/2] {
			delete(f.ids, old)
		}
		f.order = append(f.order[:0], f.order[maxCancelled/2:]...)
	}
	f.ids[id] = struct{}{}
	f.order = append(f.order, id)
}

// output returns a writer to out that leaves out the answers to cancelled requests. mcp-go
// writes each message whole, one line per Write.
func (f *cancelFilter) output(out io.Writer) io.Writer { return &filteredWriter{f: f, out: out} }

type filteredWriter struct {
	f   *cancelFilter
	out io.Writer
}

func (w *filteredWriter) Write(p []byte) (int, error) {
	if w.f.drop(p) {
		return len(p), nil
	}
	return w.out.Write(p)
}

// drop reports whether p is the answer (a result or an error, no method) to a noted id, and
// forgets the id.
func (f *cancelFilter) drop(p []byte) bool {
	f.mu.Lock()
	empty := len(f.ids) == 0
	f.mu.Unlock()
	if empty {
		return false
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if json.Unmarshal(bytes.TrimSpace(p), &m) != nil || m.Method != "" || len(m.ID) == 0 || (m.Result == nil && m.Error == nil) {
		return false
	}
	id := string(m.ID)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; !ok {
		return false
	}
	delete(f.ids, id)
	if i := slices.Index(f.order, id); i >= 0 {
		f.order = slices.Delete(f.order, i, i+1)
	}
	return true
}
