package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/loadtest"
)

// TestLoadCommand runs `neonguard load` in-process against the built binary as its server and
// checks that the report is well-formed. No timing assertions: the machine may be busy.
func TestLoadCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts a server")
	}
	bin := buildBinary(t)
	for _, tr := range []string{"streamable", "sse"} {
		t.Run(tr, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := newRootCmd(strings.NewReader(""), &stdout, &stderr)
			cmd.SetArgs([]string{"--log-level", "warn", "load", "--server-binary", bin, "--transport", tr,
				"--sessions", "4", "--tenants", "2", "--duration", "1s", "--warmup", "200ms", "--json"})
			if err := cmd.ExecuteContext(t.Context()); err != nil {
				t.Fatalf("load: %v\nstderr:\n%s", err, stderr.String())
			}
			var rep loadtest.Report
			dec := json.NewDecoder(&stdout)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rep); err != nil {
				t.Fatalf("output is not a load report: %v\n%s", err, stdout.String())
			}
			if rep.Mode != "child" || rep.Transport != tr || rep.Sessions != 4 || rep.Tenants != 2 {
				t.Errorf("mode %q transport %q sessions %d tenants %d, want child %s 4 2", rep.Mode, rep.Transport, rep.Sessions, rep.Tenants, tr)
			}
			if rep.Calls <= 0 {
				t.Errorf("calls = %d, want > 0", rep.Calls)
			}
			if rep.Errors != 0 {
				t.Errorf("errors = %d (%v, e.g. %v), want 0", rep.Errors, rep.ErrorCodes, rep.ErrorSamples)
			}
			l := rep.Latency
			if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("latency not ordered: p50 %v p90 %v p99 %v max %v", l.P50, l.P90, l.P99, l.Max)
			}
			if rep.CallsPerS <= 0 || rep.Duration <= 0 {
				t.Errorf("calls/s %v over %v s, want both > 0", rep.CallsPerS, rep.Duration)
			}
			if rep.Server.PID <= 0 || rep.Server.PeakRSSBytes <= 0 || rep.Server.EndRSSBytes <= 0 ||
				rep.Server.EndRSSBytes > rep.Server.PeakRSSBytes {
				t.Errorf("server pid %d, peak RSS %d, end RSS %d: want positive, end <= peak (%s)",
					rep.Server.PID, rep.Server.PeakRSSBytes, rep.Server.EndRSSBytes, rep.Server.RSSError)
			}
			// CPU a call: the window's CPU over its calls; the server alone would use every CPU.
			n := float64(rep.Calls + rep.Errors)
			if got, want := rep.Server.CPUPerCallMS, 1000*rep.Server.CPUSeconds/n; rep.Server.CPUSeconds > 0 && math.Abs(got-want) > 0.001 {
				t.Errorf("server CPU a call %v ms, want %v (%v s over %v calls)", got, want, rep.Server.CPUSeconds, n)
			}
			if rep.Server.CPUPerCallMS > 0 {
				want := float64(rep.Client.NumCPU) / (rep.Server.CPUPerCallMS / 1000)
				if math.Abs(rep.Server.AloneCallsPerS-want) > want*0.01 {
					t.Errorf("alone calls/s %v, want about %v", rep.Server.AloneCallsPerS, want)
				}
			}
			if rep.Client.GOMAXPROCS <= 0 {
				t.Errorf("client GOMAXPROCS %d", rep.Client.GOMAXPROCS)
			}
			total := 0
			for _, name := range rep.Rotation {
				total += rep.Tools[name].Calls
			}
			if len(rep.Rotation) != 4 || total != rep.Calls {
				t.Errorf("rotation %v with %d calls in total, want the 4 default tools and %d", rep.Rotation, total, rep.Calls)
			}
			// The child is stopped and its temp data dir removed.
			if _, err := os.Stat(rep.Server.DataDir); rep.Server.DataDir == "" || !os.IsNotExist(err) {
				t.Errorf("temp data dir %q still there (stat: %v)", rep.Server.DataDir, err)
			}
			if err := processAlive(rep.Server.PID); err == nil {
				t.Errorf("server pid %d still running", rep.Server.PID)
			}
		})
	}
}

// processAlive returns nil when the process runs (and is not a zombie).
func processAlive(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "State:\tZ") {
		return os.ErrNotExist
	}
	return nil
}

func TestLoadFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sessions", "0"}, "--sessions 0"},
		{[]string{"--transport", "ws"}, `--transport "ws"`},
		{[]string{"--tools", "checkpoint"}, `"checkpoint" is not one of the read-only tools`},
		{[]string{"--token-file", "x"}, "--token-file needs --url"},
		{[]string{"--url", "localhost:8080"}, "want an http://"},
		{[]string{"--url", "http://127.0.0.1:1"}, "--url needs bearer tokens"},
		{[]string{"--duration", "0s"}, "--duration 0s"},
	} {
		t.Setenv(loadtest.TokensEnv, "")
		var stdout, stderr bytes.Buffer
		cmd := newRootCmd(strings.NewReader(""), &stdout, &stderr)
		cmd.SetArgs(append([]string{"load"}, tc.args...))
		err := cmd.ExecuteContext(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("load %v: err %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}
