package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal/controlplane"
	"github.com/neonguard/neonguard/internal/neonlocal/sqlhttp"
)

// EmulatorOption adjusts the emulator's control plane (NewEmulator).
type EmulatorOption func(*controlplane.Options)

// WithEndpointHost names the endpoints' host in the emulator's answers (default 127.0.0.1);
// the name must resolve to 127.0.0.1.
func WithEndpointHost(host string) EmulatorOption {
	return func(o *controlplane.Options) { o.EndpointHost = host }
}

// SQLOverHTTP is the emulator's SQL-over-HTTP server: Neon's serverless driver protocol
// (POST /sql) for the emulator's endpoints, over TLS with a self-signed certificate, or plain
// HTTP on the same port.
type SQLOverHTTP struct {
	Handler  http.Handler
	Cert     tls.Certificate
	CertFile string // the certificate, which is its own CA (NODE_EXTRA_CA_CERTS)
}

// NewSQLOverHTTP sets up SQL over HTTP for emu; its certificate is kept under dataDir and
// names localhost, the loopback addresses, the endpoints' host and the host Neon's
// serverless driver derives from it by default (api.<domain> for ep-….<domain>).
func NewSQLOverHTTP(emu *controlplane.Server, dataDir string, log *slog.Logger) (*SQLOverHTTP, error) {
	epHost := emu.EndpointHost()
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range []string{epHost, DriverSQLHost(epHost)} {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	certFile, keyFile, err := sqlhttp.EnsureCert(filepath.Join(dataDir, "neonlocal", "tls"), hosts)
	if err != nil {
		return nil, fmt.Errorf("SQL over HTTP certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("SQL over HTTP certificate: %w", err)
	}
	h := sqlhttp.New(sqlhttp.Options{
		Allowed: func(host string, port int) bool {
			return (sqlhttp.IsLoopback(host) || host == epHost) && emu.ServesPort(port)
		},
		Logger: log,
	})
	return &SQLOverHTTP{Handler: h, Cert: cert, CertFile: certFile}, nil
}

// DriverSQLHost is the host @neondatabase/serverless sends SQL to by default for an endpoint
// host: its first label replaced by "api" ("localhost", with no dot, stays as it is). An IP
// address gives none: the driver's URL would be invalid.
func DriverSQLHost(endpointHost string) string {
	if sqlhttp.IsLoopback(endpointHost) && endpointHost != "localhost" {
		return ""
	}
	if _, rest, ok := strings.Cut(endpointHost, "."); ok {
		return "api." + rest
	}
	return endpointHost
}

// ListenSQLOverHTTP listens on addr for the SQL over HTTP of emu (an emulator NewEmulator
// returned) and returns the server to run on the listener, which is TLS or plain HTTP per
// connection, and the certificate's file.
func ListenSQLOverHTTP(emu *controlplane.Server, dataDir, addr string, log *slog.Logger) (*http.Server, net.Listener, string, error) {
	sh, err := NewSQLOverHTTP(emu, dataDir, log)
	if err != nil {
		return nil, nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, "", fmt.Errorf("SQL over HTTP: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: sh.Handler, ReadHeaderTimeout: 10 * time.Second}
	return srv, sqlhttp.Listen(ln, sh.Cert), sh.CertFile, nil
}
