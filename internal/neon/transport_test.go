package neon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst the limiter lets through at once leaves its connections idle for the next one: a
// second burst as large dials nothing (against Neon each dial is a TLS handshake).
func TestBurstReusesItsConnections(t *testing.T) {
	for _, burst := range []int{40, 150} { // Neon's burst; one past net/http's default cap of 100 idle connections
		t.Run(fmt.Sprint(burst), func(t *testing.T) { testBurstReusesItsConnections(t, burst) })
	}
}

func testBurstReusesItsConnections(t *testing.T, burst int) {
	var dials atomic.Int32
	var arrived sync.WaitGroup
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release // hold every request of the wave, so the wave needs `burst` connections
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"project":{"id":"proj-1","name":"app"}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := New(Config{BaseURL: srv.URL + "/api/v2", APIKey: "napi_test", RequestsPerSecond: 1000, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	wave := func() {
		arrived.Add(burst)
		release = make(chan struct{})
		var done sync.WaitGroup
		for range burst {
			done.Add(1)
			go func() {
				defer done.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := c.GetProject(ctx, "proj-1"); err != nil {
					t.Error(err)
				}
			}()
		}
		arrived.Wait()
		close(release)
		done.Wait()
	}
	wave()
	first := dials.Load()
	if int(first) != burst {
		t.Fatalf("first burst dialled %d connections, want %d", first, burst)
	}
	wave()
	if again := dials.Load() - first; again != 0 {
		t.Fatalf("second burst dialled %d new connections, want 0 (the first burst's stayed idle)", again)
	}
}
