package pgctl

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// treeEqual fails unless dst holds the files of src (but postmaster.pid/opts) with the same
// bytes, modes and owners.
func treeEqual(t *testing.T, src, dst string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." || rel == "postmaster.pid" || rel == "postmaster.opts" {
			return nil
		}
		si, _ := d.Info()
		di, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatalf("%s missing in the copy: %v", rel, err)
		}
		if si.Mode() != di.Mode() {
			t.Fatalf("%s: mode %v, want %v", rel, di.Mode(), si.Mode())
		}
		ss, ds := si.Sys().(*syscall.Stat_t), di.Sys().(*syscall.Stat_t)
		if ss.Uid != ds.Uid || ss.Gid != ds.Gid {
			t.Fatalf("%s: owner %d:%d, want %d:%d", rel, ds.Uid, ds.Gid, ss.Uid, ss.Gid)
		}
		if d.Type().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(dst, rel))
			if !bytes.Equal(a, b) {
				t.Fatalf("%s differs", rel)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d files compared", n)
	}
}

// CopyCluster reflinks where the filesystem can and writes the bytes where it cannot (or
// when the reflink is switched off, as on a filesystem without them): both copies are the
// same cluster, and the fallback copy starts.
func TestCopyClusterReflinkAndFallback(t *testing.T) {
	tk := newToolkit(t)
	dir := testDir(t)
	src := filepath.Join(dir, "src")
	freshCluster(t, tk, src)
	ctx := context.Background()

	before := reflinks.Load()
	if err := tk.CopyCluster(ctx, src, filepath.Join(dir, "auto")); err != nil {
		t.Fatal(err)
	}
	treeEqual(t, src, filepath.Join(dir, "auto"))
	t.Logf("files reflinked on this filesystem: %d", reflinks.Load()-before)

	noReflink.Store(true)
	t.Cleanup(func() { noReflink.Store(false) })
	before = reflinks.Load()
	if err := tk.CopyCluster(ctx, src, filepath.Join(dir, "plain")); err != nil {
		t.Fatal(err)
	}
	if n := reflinks.Load() - before; n != 0 {
		t.Fatalf("%d files reflinked with reflinks off", n)
	}
	treeEqual(t, src, filepath.Join(dir, "plain"))
	c := startCluster(t, tk, filepath.Join(dir, "plain"), "")
	conn := admin(t, tk, c)
	if got := query[int](t, conn, "SELECT 1")[0]; got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
}

// cloneFile either clones all of a file or leaves the destination empty for the plain copy.
func TestCloneFileAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("neonguard"), 100000)
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		noReflink.Store(off)
		out := filepath.Join(dir, "out")
		_ = os.Remove(out)
		if err := copyFile(in, out, 0o600, true); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, data) {
			t.Fatalf("reflink off=%v: copy differs (%d bytes, want %d)", off, len(got), len(data))
		}
	}
	noReflink.Store(false)
}

// CopyClusterLinking links a file to ref only when its bytes are the same, and copies it
// otherwise: a later change to the source never reaches ref or the copy.
func TestCopyClusterLinking(t *testing.T) {
	tk := newToolkit(t)
	dir := testDir(t)
	src := filepath.Join(dir, "src")
	freshCluster(t, tk, src)
	ctx := context.Background()
	ref := filepath.Join(dir, "ref")
	if err := tk.CopyCluster(ctx, src, ref); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(src, "PG_VERSION")
	if err := tk.RunAs.writeFile(filepath.Join(src, "extra.conf"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(changed)
	// Same size, other bytes: compared, not just sized.
	if err := tk.RunAs.writeFile(changed, bytes.ToUpper(bytes.ReplaceAll(orig, []byte("1"), []byte("2"))), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	if err := tk.CopyClusterLinking(ctx, src, dst, ref); err != nil {
		t.Fatal(err)
	}
	treeEqual(t, src, dst)
	links := 0
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, _ error) error {
		if d.Type().IsRegular() {
			info, _ := d.Info()
			if info.Sys().(*syscall.Stat_t).Nlink > 1 {
				links++
			}
		}
		return nil
	})
	if links < 100 {
		t.Fatalf("%d files linked to the reference, want most", links)
	}
	for _, rel := range []string{"PG_VERSION", "extra.conf"} {
		info, _ := os.Stat(filepath.Join(dst, rel))
		if info.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Fatalf("%s differs from ref but was linked", rel)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ref, "PG_VERSION")); !bytes.Equal(b, orig) {
		t.Fatal("ref changed")
	}
}

// CopyBackupLinking links a file of pg_wal to the WAL archive's file of the same name only
// when their bytes are the same, and never a file outside pg_wal.
func TestCopyBackupLinkingToTheArchive(t *testing.T) {
	tk := newToolkit(t)
	dir := testDir(t)
	src := filepath.Join(dir, "src")
	freshCluster(t, tk, src)
	ctx := context.Background()
	archive := filepath.Join(dir, "archive")
	if err := tk.RunAs.mkdirPrivate(archive); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(src, "pg_wal", "0000000*"))
	if len(segs) == 0 {
		t.Fatal("no WAL segment in a fresh cluster")
	}
	seg := filepath.Base(segs[0])
	history := []byte("1\t0/3000000\tno recovery target specified\n")
	put := func(path string, data []byte) {
		t.Helper()
		if err := tk.RunAs.writeFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	put(filepath.Join(archive, seg), b) // archived: the same bytes
	put(filepath.Join(src, "pg_wal", "00000002.history"), history)
	put(filepath.Join(archive, "00000002.history"), bytes.ToUpper(history)) // same name and size, other bytes
	pv, _ := os.ReadFile(filepath.Join(src, "PG_VERSION"))
	put(filepath.Join(archive, "PG_VERSION"), pv) // not WAL: never linked
	dst := filepath.Join(dir, "dst")
	if err := tk.CopyBackupLinking(ctx, src, dst, "", archive); err != nil {
		t.Fatal(err)
	}
	treeEqual(t, src, dst)
	nlink := func(rel string) uint64 {
		info, err := os.Stat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatal(err)
		}
		return uint64(info.Sys().(*syscall.Stat_t).Nlink)
	}
	if n := nlink(filepath.Join("pg_wal", seg)); n != 2 {
		t.Fatalf("the archived segment has %d links in the copy, want 2 (linked to the archive)", n)
	}
	for _, rel := range []string{filepath.Join("pg_wal", "00000002.history"), "PG_VERSION"} {
		if n := nlink(rel); n != 1 {
			t.Fatalf("%s was linked (%d links)", rel, n)
		}
	}
}
