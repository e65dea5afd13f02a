package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/monitor"
	"github.com/neonguard/neonguard/internal/store"
)

// TestMonitorWiring runs serve's background loops with the monitor on: the sampler samples
// the database through the guard's client (its request checked against Neon's spec), the
// deliverer POSTs a pending alert, signed, and get_usage shows the alert and its delivery.
func TestMonitorWiring(t *testing.T) {
	got := make(chan string, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := monitor.Verify("hook-secret", body, r.Header.Get(monitor.HeaderSignature),
			r.Header.Get(monitor.HeaderTimestamp), time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook: %v", err)
		}
		got <- r.Header.Get(monitor.HeaderDelivery)
	}))
	t.Cleanup(recv.Close)
	a := newApp(t, func(c *config.Config) {
		c.Monitor = config.Monitor{Interval: time.Hour, WebhookURL: recv.URL, WebhookSecret: "hook-secret"}
	})
	c := connect(t, a)
	id := createDB(t, c, "watched")

	// An alert as the sampler raises it (the emulator reports no consumption without a data
	// plane, so none would cross a threshold here).
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	alertID := monitor.AlertID(id, "active_time_seconds", 80, start)
	if _, err := a.Store.RaiseAlert(t.Context(), store.Alert{ID: alertID, DatabaseID: id, TenantID: a.Config.Tenant,
		Metric: "active_time_seconds", Threshold: 80, Level: "warning", Used: 300000, Quota: 360000,
		PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0), RaisedAt: now}, []byte(`{"id":"`+alertID+`"}`)); err != nil {
		t.Fatal(err)
	}
	alerts := func() []any {
		u := mustOK(t, call(t, c, "get_usage", map[string]any{"database_id": id}), "get_usage")
		return u["databases"].([]any)[0].(map[string]any)["alerts"].([]any)
	}
	if as := alerts(); len(as) != 1 || as[0].(map[string]any)["delivered"] != false || as[0].(map[string]any)["threshold"] != 80.0 {
		t.Fatalf("alerts before delivery: %v", as)
	}

	ctx, cancel := context.WithCancel(t.Context())
	wait := a.RunBackground(ctx, nil)
	defer func() { cancel(); wait() }()
	select {
	case d := <-got:
		if d != alertID {
			t.Fatalf("delivered %q, want %q", d, alertID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the alert was not delivered")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.Store.LatestUsageSample(t.Context(), id)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("no sample: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		as := alerts()
		if len(as) == 1 && as[0].(map[string]any)["delivered"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts after delivery: %v", as)
		}
	}
	if n := a.Emulator.Requests()["GET /consumption_history/projects"]; n != 1 {
		t.Fatalf("consumption requests %d, want 1", n)
	}
}
