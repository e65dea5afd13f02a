package pgctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrNoPostgres is wrapped by FindBinaries when no PostgreSQL server
// installation can be found.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH, via pg_config, or in /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install -y postgresql) or set NEONGUARD_LOCAL_PG_BIN_DIR")

// Binaries locates one PostgreSQL installation.
type Binaries struct {
	Dir   string // holds initdb, postgres, pg_ctl, pg_basebackup, pg_controldata
	Major int    // major version, e.g. 15
}

// Path returns the absolute path of the named program in b.Dir.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// search holds the inputs of the binary search so tests can make every
// source fail.
type search struct {
	lookPath func(string) (string, error)
	pgConfig func(context.Context) (string, error) // returns the bindir
	glob     string
}

func defaultSearch() search {
	return search{
		lookPath: exec.LookPath,
		pgConfig: func(ctx context.Context) (string, error) {
			p, err := exec.LookPath("pg_config")
			if err != nil {
				return "", err
			}
			out, err := exec.CommandContext(ctx, p, "--bindir").Output()
			if err != nil {
				return "", err
			}
			return strings.TrimSpace(string(out)), nil
		},
		glob: "/usr/lib/postgresql/*/bin",
	}
}

// FindBinaries locates the PostgreSQL server binaries. Order: configuredDir
// if set (an error if it lacks them; no fallback, so a typo is not masked);
// initdb on PATH (symlinks resolved, since Debian links only a few programs
// into PATH); `pg_config --bindir` if it holds initdb and postgres; the
// highest major under /usr/lib/postgresql/*/bin.
func FindBinaries(ctx context.Context, configuredDir string) (Binaries, error) {
	return findBinaries(ctx, configuredDir, defaultSearch())
}

func findBinaries(ctx context.Context, configuredDir string, s search) (Binaries, error) {
	if configuredDir != "" {
		dir, err := filepath.Abs(configuredDir)
		if err != nil {
			return Binaries{}, fmt.Errorf("postgres bin dir %q: %w", configuredDir, err)
		}
		if err := hasServer(dir); err != nil {
			return Binaries{}, fmt.Errorf("configured PostgreSQL bin dir %q: %w", configuredDir, err)
		}
		return withMajor(ctx, dir)
	}
	// Candidates are tried in order, each only if the one before failed: starting neonguard
	// must not pay for pg_config when initdb is on PATH.
	try := func(d string) (Binaries, bool, error) {
		if d == "" || hasServer(d) != nil {
			return Binaries{}, false, nil
		}
		b, err := withMajor(ctx, d)
		return b, err == nil, err
	}
	if p, err := s.lookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if b, ok, err := try(filepath.Dir(p)); ok || err != nil {
			return b, err
		}
	}
	if s.pgConfig != nil {
		if d, err := s.pgConfig(ctx); err == nil {
			if b, ok, err := try(d); ok || err != nil {
				return b, err
			}
		}
	}
	if s.glob != "" {
		dirs, _ := filepath.Glob(s.glob)
		// Highest major first: "15" > "9.6" numerically, not lexically.
		sort.SliceStable(dirs, func(i, j int) bool {
			return dirVersion(dirs[i]) > dirVersion(dirs[j])
		})
		for _, d := range dirs {
			if b, ok, err := try(d); ok || err != nil {
				return b, err
			}
		}
	}
	return Binaries{}, fmt.Errorf("pgctl: %w", ErrNoPostgres)
}

func dirVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func hasServer(dir string) error {
	for _, n := range []string{"initdb", "postgres"} {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("no %s: %w", n, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", filepath.Join(dir, n))
		}
	}
	return nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func withMajor(ctx context.Context, dir string) (Binaries, error) {
	// Debian and Ubuntu name the directory after the major version (/usr/lib/postgresql/15/bin):
	// no need to run postgres (tens of milliseconds of every start) to learn it.
	if filepath.Base(dir) == "bin" && filepath.Base(filepath.Dir(filepath.Dir(dir))) == "postgresql" {
		if major, err := strconv.Atoi(filepath.Base(filepath.Dir(dir))); err == nil && major >= 10 {
			return Binaries{Dir: dir, Major: major}, nil
		}
	}
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("%s --version: %w", filepath.Join(dir, "postgres"), err)
	}
	m := versionRE.FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		return Binaries{}, fmt.Errorf("unrecognised postgres --version output %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(string(m[1]))
	return Binaries{Dir: dir, Major: major}, nil
}
