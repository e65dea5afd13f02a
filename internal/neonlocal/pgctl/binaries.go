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
	"slices"
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

// FindBinaries locates the PostgreSQL server binaries: configuredDir if set, else the newest
// major FindInstallations finds.
func FindBinaries(ctx context.Context, configuredDir string) (Binaries, error) {
	return findBinaries(ctx, configuredDir, defaultSearch())
}

func findBinaries(ctx context.Context, configuredDir string, s search) (Binaries, error) {
	all, err := findInstallations(ctx, configuredDir, s)
	if err != nil {
		return Binaries{}, err
	}
	return all[0], nil
}

// FindInstallations locates every installed PostgreSQL major, newest first. configuredDir,
// if set, is the only one (an error if it lacks the server; no fallback, so a typo is not
// masked). Otherwise the candidates are initdb on PATH (symlinks resolved, since Debian links
// only a few programs into PATH), `pg_config --bindir`, and /usr/lib/postgresql/*/bin; when
// two hold the same major, the first in that order wins.
func FindInstallations(ctx context.Context, configuredDir string) ([]Binaries, error) {
	return findInstallations(ctx, configuredDir, defaultSearch())
}

func findInstallations(ctx context.Context, configuredDir string, s search) ([]Binaries, error) {
	if configuredDir != "" {
		dir, err := filepath.Abs(configuredDir)
		if err != nil {
			return nil, fmt.Errorf("postgres bin dir %q: %w", configuredDir, err)
		}
		if err := hasServer(dir); err != nil {
			return nil, fmt.Errorf("configured PostgreSQL bin dir %q: %w", configuredDir, err)
		}
		b, err := withMajor(ctx, dir)
		if err != nil {
			return nil, err
		}
		return []Binaries{b}, nil
	}
	var dirs []string
	if p, err := s.lookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	if s.pgConfig != nil {
		if d, err := s.pgConfig(ctx); err == nil && d != "" {
			dirs = append(dirs, d)
		}
	}
	if s.glob != "" {
		globbed, _ := filepath.Glob(s.glob)
		dirs = append(dirs, globbed...)
	}
	var (
		found []Binaries
		errs  []error
	)
	for _, d := range dirs {
		if hasServer(d) != nil {
			continue
		}
		if slices.ContainsFunc(found, func(b Binaries) bool { return b.Dir == d }) {
			continue
		}
		b, err := withMajor(ctx, d)
		if err != nil {
			errs = append(errs, err) // a broken installation does not hide the others
			continue
		}
		if !slices.ContainsFunc(found, func(f Binaries) bool { return f.Major == b.Major }) {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("pgctl: %w", errors.Join(append([]error{ErrNoPostgres}, errs...)...))
	}
	// Newest first; the sort is stable, so a major's first candidate stays the one kept.
	slices.SortStableFunc(found, func(a, b Binaries) int { return b.Major - a.Major })
	return found, nil
}

// Majors lists the major versions of installations.
func Majors(installs []Binaries) []int {
	out := make([]int, len(installs))
	for i, b := range installs {
		out[i] = b.Major
	}
	return out
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
