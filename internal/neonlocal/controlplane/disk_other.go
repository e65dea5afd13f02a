//go:build !(linux || darwin)

package controlplane

import (
	"errors"
	"io/fs"
)

type fileKey struct{}

// allocated falls back to the apparent size where blocks and inodes are not portable.
func allocated(info fs.FileInfo) (int64, fileKey, bool) { return info.Size(), fileKey{}, false }

// freeBytes is unknown here: the free-space margin is not checked.
func freeBytes(string) (int64, error) {
	return 0, errors.ErrUnsupported
}
