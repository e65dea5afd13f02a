package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// projectMeta is what every branch of a project shares.
type projectMeta struct {
	PgVersion    int    `json:"pg_version"`
	RoleName     string `json:"role_name"`
	RolePassword string `json:"role_password"`
	DatabaseName string `json:"database_name"`
}

// backup is one base backup of a branch: a startable copy whose consistency point is at or
// before Time.
type backup struct {
	Dir  string    `json:"dir"` // name under backups/
	Time time.Time `json:"time"`
	LSN  string    `json:"lsn,omitempty"`
}

// branchMeta is a branch's history: its base backups, oldest first.
type branchMeta struct {
	Backups []backup `json:"backups"`
}

// latestBefore returns the newest backup whose time is at or before t.
func (m branchMeta) latestBefore(t time.Time) (backup, bool) {
	for i := len(m.Backups) - 1; i >= 0; i-- {
		if !m.Backups[i].Time.After(t) {
			return m.Backups[i], true
		}
	}
	return backup{}, false
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON writes atomically: temp file, fsync, rename.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func sortBackups(b []backup) {
	slices.SortFunc(b, func(x, y backup) int { return x.Time.Compare(y.Time) })
}
