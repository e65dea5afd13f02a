package pgctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// FindInstallationsCached is FindInstallations with `pg_config --bindir`'s answer kept in
// cacheFile. On Debian and Ubuntu pg_config is a shell script that lists
// /usr/lib/postgresql/*/bin and runs the newest pg_config: four processes and about 5 ms of
// CPU on every start, most of what start-up spends outside Go. The answer is reused while
// nothing it can depend on changed: pg_config's own file (path, size, modification time) and
// every directory the glob finds (path and modification time: installing or removing a
// major's packages changes its bin dir). Any doubt (no cache, unreadable, other fingerprint)
// runs pg_config again and rewrites the cache; a cache that cannot be written only costs that
// time again. cacheFile "" means no cache.
func FindInstallationsCached(ctx context.Context, configuredDir, cacheFile string) ([]Binaries, error) {
	s := defaultSearch()
	if cacheFile != "" {
		s.pgConfig = cachedPGConfig(s, cacheFile)
	}
	return findInstallations(ctx, configuredDir, s)
}

type pgConfigCache struct {
	Fingerprint string `json:"fingerprint"`
	BinDir      string `json:"bin_dir"`
}

func cachedPGConfig(s search, cacheFile string) func(context.Context) (string, error) {
	run := s.pgConfig
	return func(ctx context.Context) (string, error) {
		p, err := s.lookPath("pg_config")
		if err != nil {
			return "", err
		}
		fp, ok := pgConfigFingerprint(p, s.glob)
		if ok {
			var c pgConfigCache
			if b, err := os.ReadFile(cacheFile); err == nil && json.Unmarshal(b, &c) == nil && c.Fingerprint == fp && c.BinDir != "" {
				return c.BinDir, nil
			}
		}
		dir, err := run(ctx)
		if err != nil || !ok {
			return dir, err
		}
		_ = writeCache(cacheFile, pgConfigCache{Fingerprint: fp, BinDir: dir})
		return dir, nil
	}
}

// pgConfigFingerprint describes what pg_config's answer depends on; ok is false when it cannot
// be described (then nothing is cached).
func pgConfigFingerprint(pgConfig, glob string) (fp string, ok bool) {
	st, err := os.Stat(pgConfig)
	if err != nil {
		return "", false
	}
	fp = fmt.Sprintf("%s %d %d", pgConfig, st.Size(), st.ModTime().UnixNano())
	if glob != "" {
		dirs, _ := filepath.Glob(glob)
		for _, d := range dirs {
			st, err := os.Stat(d)
			if err != nil {
				return "", false
			}
			fp += fmt.Sprintf("|%s %d", d, st.ModTime().UnixNano())
		}
	}
	return fp, true
}

// writeCache replaces path by v's JSON through a rename, so a reader sees the old cache or the
// new one. Unlike the data plane's state files (dataplane's writeJSON) it is not synced: a
// cache lost or torn by a power cut is only asked of pg_config again.
func writeCache(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
