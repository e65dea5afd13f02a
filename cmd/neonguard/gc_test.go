package main

import (
	"runtime/debug"
	"testing"
)

func TestGCPercentDefaultAndOverride(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	// GOGC unset: neonguard's default.
	if got := applyGCPercent(func(string) string { return "" }); got != defaultGCPercent {
		t.Fatalf("applyGCPercent without GOGC = %d, want %d", got, defaultGCPercent)
	}
	if now := debug.SetGCPercent(100); now != defaultGCPercent {
		t.Fatalf("GC percent in force = %d, want %d", now, defaultGCPercent)
	}

	// GOGC set: the runtime already applied it; neonguard leaves it.
	debug.SetGCPercent(73)
	if got := applyGCPercent(func(k string) string {
		if k == "GOGC" {
			return "73"
		}
		return ""
	}); got != 73 {
		t.Fatalf("applyGCPercent with GOGC=73 = %d, want 73", got)
	}
	if now := debug.SetGCPercent(100); now != 73 {
		t.Fatalf("GC percent in force = %d, want GOGC's 73", now)
	}
}
