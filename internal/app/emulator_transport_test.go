package app_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neonlocal/spectest"
)

// The guard's Neon clients reach the embedded emulator in process (no socket per call), the
// very handler its listener serves: fault injection and spec checks still see every request.
// The listener still serves other clients (neonctl, Neon's MCP server).
func TestGuardReachesTheEmbeddedEmulatorInProcess(t *testing.T) {
	var mu sync.Mutex
	remotes := map[string]int{} // "in-process" or "tcp"
	a := newAppWith(t, func(h http.Handler) http.Handler {
		h = spectest.Wrap(t, h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind := "tcp"
			if r.RemoteAddr == "in-process:0" {
				kind = "in-process"
			}
			mu.Lock()
			remotes[kind]++
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	c := connect(t, a)
	id := createDB(t, c, "shop")
	mustOK(t, call(t, c, "get_usage", map[string]any{"database_id": id}), "get_usage")
	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "before"}), "checkpoint")

	mu.Lock()
	inProcess, tcp := remotes["in-process"], remotes["tcp"]
	mu.Unlock()
	if inProcess < 5 || tcp != 0 {
		t.Fatalf("guard requests: %d in process, %d over TCP; want all in process", inProcess, tcp)
	}

	// Another client, on the emulator's URL, goes over its listener.
	cl, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: a.Emulator.Credentials().FreeOrgAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetProject(context.Background(), id); err != nil {
		t.Fatalf("GetProject over the listener: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if remotes["tcp"] != 1 {
		t.Fatalf("requests over TCP = %d, want the 1 from the outside client", remotes["tcp"])
	}
}
