package pgctl

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// requirePostgres finds the server binaries; without them the test is
// skipped, unless NEONGUARD_REQUIRE_POSTGRES=1 (CI) makes that a failure.
func requirePostgres(tb testing.TB) Binaries {
	tb.Helper()
	bin, err := FindBinaries(context.Background(), os.Getenv("NEONGUARD_LOCAL_PG_BIN_DIR"))
	if err != nil {
		if os.Getenv("NEONGUARD_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL required: %v", err)
		}
		tb.Skipf("PostgreSQL not available: %v", err)
	}
	return bin
}

func newToolkit(tb testing.TB) *Toolkit {
	tb.Helper()
	bin := requirePostgres(tb)
	ra, err := ResolveRunAs("")
	if err != nil {
		tb.Fatal(err)
	}
	return &Toolkit{Bin: bin, RunAs: ra, NoSync: true, StopGrace: 10 * time.Second}
}

// testDir is a temp dir the PostgreSQL user can traverse (t.TempDir makes
// 0700 root-owned dirs, which postgres could not enter).
func testDir(tb testing.TB) string {
	tb.Helper()
	d := tb.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o711); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// shared template cluster: initdb takes seconds, a copy milliseconds.
var tmpl struct {
	once sync.Once
	root string
	dir  string
	cert [2]string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpl.root != "" {
		_ = os.RemoveAll(tmpl.root)
	}
	os.Exit(code)
}

// freshCluster returns a new stopped cluster copied from the template, and
// the shared certificate pair.
func freshCluster(tb testing.TB, tk *Toolkit, dst string) (certFile, keyFile string) {
	tb.Helper()
	tmpl.once.Do(func() {
		root, err := os.MkdirTemp("", "pgctl-tmpl-")
		if err != nil {
			tmpl.err = err
			return
		}
		tmpl.root = root
		if tmpl.err = os.Chmod(root, 0o711); tmpl.err != nil {
			return
		}
		tmpl.dir = filepath.Join(root, "data")
		if tmpl.err = tk.InitDB(context.Background(), tmpl.dir); tmpl.err != nil {
			return
		}
		tmpl.cert[0], tmpl.cert[1], tmpl.err = EnsureCert(filepath.Join(root, "tls"), tk.RunAs)
	})
	if tmpl.err != nil {
		tb.Fatalf("template cluster: %v", tmpl.err)
	}
	if err := tk.CopyCluster(context.Background(), tmpl.dir, dst); err != nil {
		tb.Fatal(err)
	}
	return tmpl.cert[0], tmpl.cert[1]
}

// testCluster is a running cluster under dir.
type testCluster struct {
	*Process
	cfg ServerConfig
}

func startCluster(tb testing.TB, tk *Toolkit, dataDir, archiveDir string) *testCluster {
	tb.Helper()
	base := filepath.Dir(dataDir)
	cfg := ServerConfig{
		DataDir:    dataDir,
		SocketDir:  filepath.Join(base, "sock-"+filepath.Base(dataDir)),
		ArchiveDir: archiveDir,
		CertFile:   tmpl.cert[0],
		KeyFile:    tmpl.cert[1],
		Settings:   map[string]string{"fsync": "off"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := tk.Start(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return &testCluster{Process: p, cfg: cfg}
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
