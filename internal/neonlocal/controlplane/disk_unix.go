//go:build linux || darwin

package controlplane

import (
	"io/fs"
	"syscall"
)

// fileKey identifies a file across hard links.
type fileKey struct{ dev, ino uint64 }

// allocated is the space a file takes (its blocks, as du counts), its identity and whether it
// has other hard links.
func allocated(info fs.FileInfo) (int64, fileKey, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return info.Size(), fileKey{}, false
	}
	return int64(st.Blocks) * 512, fileKey{uint64(st.Dev), uint64(st.Ino)}, !info.IsDir() && st.Nlink > 1
}

// freeBytes is the space an unprivileged user may still write on dir's filesystem.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
