package tracing

import (
	"context"
	"testing"
)

func env(kv ...string) Env {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigured(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  Env
		want bool
	}{
		{"nothing set", env(), false},
		{"endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), true},
		{"traces endpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"), true},
		{"sdk disabled", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_SDK_DISABLED", "true"), false},
		{"exporter none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_TRACES_EXPORTER", "none"), false},
		{"exporter otlp", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_TRACES_EXPORTER", "otlp"), true},
	} {
		if got := Configured(tc.env); got != tc.want {
			t.Errorf("%s: Configured = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOffByDefault: without an endpoint Setup installs nothing and spans do not record.
func TestOffByDefault(t *testing.T) {
	stop, err := Setup(context.Background(), "test", env(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	if Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	_, span := Start(context.Background(), "x")
	if span.IsRecording() {
		t.Fatal("a span records with tracing off")
	}
}

func TestGRPCProtocolRefused(t *testing.T) {
	_, err := Setup(context.Background(), "test", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), nil)
	if err == nil || Enabled() {
		t.Fatalf("grpc protocol accepted (err %v)", err)
	}
}

// BenchmarkStartOff is the cost of a span while tracing is off.
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, span := Start(ctx, "x")
		if span.IsRecording() {
			b.Fatal("recording")
		}
		span.End()
	}
}
