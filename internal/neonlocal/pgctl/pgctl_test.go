package pgctl

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	bin := requirePostgres(t)
	if bin.Major < 12 {
		t.Fatalf("major %d: want >= 12", bin.Major)
	}
	for _, n := range []string{"initdb", "postgres", "pg_basebackup", "pg_controldata"} {
		if _, err := os.Stat(bin.Path(n)); err != nil {
			t.Errorf("%s missing from %s", n, bin.Dir)
		}
	}

	bad := filepath.Join(t.TempDir(), "nope")
	if _, err := FindBinaries(ctx, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad configured dir: err = %v, want one naming %s", err, bad)
	}

	none := search{
		lookPath: func(string) (string, error) { return "", exec.ErrNotFound },
		pgConfig: func(context.Context) (string, error) { return "", exec.ErrNotFound },
		glob:     filepath.Join(t.TempDir(), "*", "bin"),
	}
	_, err := findInstallations(ctx, "", none)
	if !errors.Is(err, ErrNoPostgres) {
		t.Fatalf("err = %v, want ErrNoPostgres", err)
	}
	for _, want := range []string{"apt-get install -y postgresql", "NEONGUARD_LOCAL_PG_BIN_DIR", "pg_config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// fakeInstall makes root/<ver>/bin with stub initdb and postgres.
func fakeInstall(t *testing.T, root, ver string) string {
	dir := filepath.Join(root, ver, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	major, _, _ := strings.Cut(ver, ".")
	script := fmt.Sprintf("#!/bin/sh\necho 'postgres (PostgreSQL) %s.1'\n", major)
	for _, n := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Every installed major is found, newest first (numerically); a major installed in two
// places is the first candidate's: PATH, then pg_config, then the glob.
func TestFindInstallations(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := t.TempDir()
	d96 := fakeInstall(t, root, "9.6")
	d15 := fakeInstall(t, root, "15")
	d13 := fakeInstall(t, root, "13")
	// A broken installation (its postgres does not say its version) hides nothing.
	broken := fakeInstall(t, root, "broken")
	if err := os.WriteFile(filepath.Join(broken, "postgres"), []byte("#!/bin/sh\necho nonsense\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(root, "*", "bin")
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	type inst struct {
		dir   string
		major int
	}
	check := func(name string, got []Binaries, err error, want ...inst) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var g []inst
		for _, b := range got {
			g = append(g, inst{b.Dir, b.Major})
		}
		if !slices.Equal(g, want) {
			t.Errorf("%s: got %v, want %v", name, g, want)
		}
	}

	got, err := findInstallations(ctx, "", search{lookPath: notFound, glob: glob})
	check("glob", got, err, inst{d15, 15}, inst{d13, 13}, inst{d96, 9})
	if b, err := findBinaries(ctx, "", search{lookPath: notFound, glob: glob}); err != nil || b.Dir != d15 {
		t.Errorf("findBinaries = %+v, %v; want the newest, %s", b, err, d15)
	}

	// PATH (a symlink, resolved to the real bin dir) and pg_config add theirs; PATH's 15 wins
	// over the glob's.
	other := t.TempDir()
	path15 := fakeInstall(t, other, "15")
	d17 := fakeInstall(t, other, "17")
	link := filepath.Join(t.TempDir(), "initdb")
	if err := os.Symlink(filepath.Join(path15, "initdb"), link); err != nil {
		t.Fatal(err)
	}
	all := search{
		lookPath: func(string) (string, error) { return link, nil },
		pgConfig: func(context.Context) (string, error) { return d17, nil },
		glob:     glob,
	}
	got, err = findInstallations(ctx, "", all)
	check("all sources", got, err, inst{d17, 17}, inst{path15, 15}, inst{d13, 13}, inst{d96, 9})

	// pg_config's bindir is skipped when it lacks the server.
	got, err = findInstallations(ctx, "", search{
		lookPath: notFound,
		pgConfig: func(context.Context) (string, error) { return t.TempDir(), nil },
		glob:     glob,
	})
	check("pg_config without server", got, err, inst{d15, 15}, inst{d13, 13}, inst{d96, 9})

	// A configured dir is the only installation.
	got, err = findInstallations(ctx, d13, all)
	check("configured", got, err, inst{d13, 13})
}

func TestResolveRunAs(t *testing.T) {
	t.Parallel()
	r, err := ResolveRunAs("")
	if err != nil {
		t.Skipf("no run-as user: %v", err)
	}
	if os.Geteuid() == 0 {
		if !r.Switch || r.Name != DefaultRunAsUser || r.UID == 0 {
			t.Errorf("as root: %+v", r)
		}
		_, err := ResolveRunAs("neonguard-no-such-user")
		if err == nil || !strings.Contains(err.Error(), "useradd --system --home-dir /var/lib/postgresql") {
			t.Errorf("missing user: %v", err)
		}
	} else if r.Switch {
		t.Errorf("not root but Switch: %+v", r)
	}
}

func TestEnsureCert(t *testing.T) {
	t.Parallel()
	ra, err := ResolveRunAs("")
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(testDir(t), "tls")
	cf, kf, err := EnsureCert(dir, ra)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := os.ReadFile(cf)
	st, err := os.Stat(kf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != ra.UID {
		t.Errorf("key mode %v uid %d; want 0600 uid %d", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, ra.UID)
	}
	blk, _ := pem.Decode(c1)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "localhost" || len(cert.IPAddresses) != 2 || cert.NotAfter.Before(time.Now().AddDate(9, 0, 0)) {
		t.Errorf("cert: CN %q IPs %v NotAfter %v", cert.Subject.CommonName, cert.IPAddresses, cert.NotAfter)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	_, _, err = EnsureCert(dir, ra)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := os.ReadFile(cf); string(c1) != string(c2) {
		t.Error("second EnsureCert regenerated the certificate")
	}
}

// TestArchiveCommand runs the generated command the way postgres would.
func TestArchiveCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "arch it's %here")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	run := func(name, content string) error {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// postgres's substitution: %p, %f, %%.
		cmd := strings.NewReplacer("%p", p, "%f", name, "%%", "%").Replace(archiveCommand(dir, true))
		return exec.Command("/bin/sh", "-c", cmd).Run()
	}
	if err := run("000000010000000000000001", "one"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "000000010000000000000001")); string(b) != "one" {
		t.Fatalf("archived %q", b)
	}
	if err := run("000000010000000000000001", "one"); err != nil {
		t.Errorf("re-archiving an identical segment must succeed: %v", err)
	}
	if err := run("000000010000000000000001", "two"); err == nil {
		t.Error("overwriting a different segment must fail")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "000000010000000000000001")); string(b) != "one" {
		t.Errorf("archive overwritten: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("leftovers in archive: %v", ents)
	}

	// restore_command: first dir holding the file wins; exit 1 when none.
	other := t.TempDir()
	_ = os.WriteFile(filepath.Join(other, "000000010000000000000001"), []byte("other"), 0o600)
	_ = os.WriteFile(filepath.Join(other, "000000010000000000000002"), []byte("two"), 0o600)
	restore := func(name string) (string, error) {
		out := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		cmd := strings.NewReplacer("%p", out, "%f", name, "%%", "%").Replace(restoreCommand([]string{dir, other}))
		if err := exec.Command("/bin/sh", "-c", cmd).Run(); err != nil {
			return "", err
		}
		b, err := os.ReadFile(out)
		return string(b), err
	}
	if got, err := restore("000000010000000000000001"); err != nil || got != "one" {
		t.Errorf("restore 1: %q %v", got, err)
	}
	if got, err := restore("000000010000000000000002"); err != nil || got != "two" {
		t.Errorf("restore 2: %q %v", got, err)
	}
	if _, err := restore("000000010000000000000003"); err == nil {
		t.Error("restore of a missing file must fail")
	}
}

func TestRenderConfQuoting(t *testing.T) {
	got, err := renderConf("", map[string]string{"a": `it's \ ok`})
	if err != nil || got != "a = 'it''s \\\\ ok'\n" {
		t.Errorf("got %q %v", got, err)
	}
	if _, err := renderConf("", map[string]string{"a b": "x"}); err == nil {
		t.Error("bad name accepted")
	}
	if _, err := renderConf("", map[string]string{"a": "x\ny"}); err == nil {
		t.Error("newline accepted")
	}
}

func query[T any](t *testing.T, c *pgx.Conn, sql string, args ...any) []T {
	t.Helper()
	rows, err := c.Query(ctxT(t), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func admin(t *testing.T, tk *Toolkit, c *testCluster) *pgx.Conn {
	t.Helper()
	conn, err := tk.Admin(ctxT(t), c.SocketDir, c.Port, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(ctxT(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

var walName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// TestCluster exercises one source cluster end to end: roles and TLS,
// archiving, base backups and point-in-time recovery.
func TestCluster(t *testing.T) {
	t.Parallel()
	tk := newToolkit(t)
	ctx := ctxT(t)
	dir := testDir(t)
	freshCluster(t, tk, filepath.Join(dir, "src"))
	archive := filepath.Join(dir, "archive")
	src := startCluster(t, tk, filepath.Join(dir, "src"), archive)
	a := admin(t, tk, src)
	exec1(t, a, "CREATE ROLE app LOGIN PASSWORD 'secret-pw'")
	exec1(t, a, "CREATE TABLE items (id int PRIMARY KEY, tag text)")
	exec1(t, a, "ALTER TABLE items OWNER TO app")
	exec1(t, a, "INSERT INTO items SELECT g, 'base' FROM generate_series(1, 3) g")

	t.Run("TLS", func(t *testing.T) {
		dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=app password=secret-pw dbname=postgres", src.Port)
		c, err := pgx.Connect(ctx, dsn+" sslmode=require")
		if err != nil {
			t.Fatalf("TLS connect: %v", err)
		}
		defer c.Close(ctx)
		if ssl := query[bool](t, c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); len(ssl) != 1 || !ssl[0] {
			t.Errorf("pg_stat_ssl: %v", ssl)
		}
		if n := query[int64](t, c, "SELECT count(*) FROM items"); n[0] != 3 {
			t.Errorf("count %d", n[0])
		}
		if _, err := pgx.Connect(ctx, dsn+" sslmode=disable"); err == nil || !strings.Contains(err.Error(), "no encryption") {
			t.Errorf("plain TCP must be rejected, got %v", err)
		}
		if _, err := pgx.Connect(ctx, strings.Replace(dsn, "secret-pw", "wrong", 1)+" sslmode=require"); err == nil {
			t.Error("wrong password accepted")
		}
	})

	t.Run("Archive", func(t *testing.T) {
		if _, err := tk.ForceSwitch(ctx, src.SocketDir, src.Port); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(archive)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if walName.MatchString(e.Name()) {
				n++
				if st, _ := e.Info(); st.Sys().(*syscall.Stat_t).Uid != tk.RunAs.UID {
					t.Errorf("%s not owned by %s", e.Name(), tk.RunAs.Name)
				}
			}
		}
		if n == 0 {
			t.Fatalf("no WAL segments archived: %v", ents)
		}
	})

	backup := filepath.Join(dir, "backup0")
	t.Run("BaseBackup", func(t *testing.T) {
		if err := tk.BaseBackup(ctx, src.SocketDir, src.Port, backup); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(backup + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temp dir left: %v", err)
		}
		cp := filepath.Join(dir, "fromBackup")
		if err := tk.CopyCluster(ctx, backup, cp); err != nil {
			t.Fatal(err)
		}
		c := startCluster(t, tk, cp, filepath.Join(dir, "archive-fromBackup"))
		if c.Port == src.Port {
			t.Fatal("same port")
		}
		if n := query[int64](t, admin(t, tk, c), "SELECT count(*) FROM items"); n[0] != 3 {
			t.Errorf("rows in backup copy: %d", n[0])
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		cd, err := tk.ControlData(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		if cd["Database cluster state"] != "shut down" || cd["Latest checkpoint's REDO location"] == "" {
			t.Errorf("control data: state %q redo %q", cd["Database cluster state"], cd["Latest checkpoint's REDO location"])
		}
	})
	if t.Failed() {
		return
	}

	// History: rows A; T; rows B. Recovery to T (or to the LSN after A)
	// must give exactly rows A.
	exec1(t, a, "CREATE TABLE hist (id int, phase text)")
	exec1(t, a, "INSERT INTO hist SELECT g, 'A' FROM generate_series(1, 5) g")
	var target time.Time
	if err := a.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&target); err != nil {
		t.Fatal(err)
	}
	lsnA, err := tk.CurrentLSN(ctx, src.SocketDir, src.Port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.ForceSwitch(ctx, src.SocketDir, src.Port); err != nil {
		t.Fatal(err)
	}
	exec1(t, a, "INSERT INTO hist SELECT g, 'B' FROM generate_series(6, 9) g")
	if _, err := tk.ForceSwitch(ctx, src.SocketDir, src.Port); err != nil {
		t.Fatal(err)
	}

	recoverTo := func(t *testing.T, name string, tgt RecoveryTarget) []string {
		data := filepath.Join(dir, name)
		if err := tk.CopyCluster(ctx, backup, data); err != nil {
			t.Fatal(err)
		}
		if err := tk.PrepareRecovery(data, []string{filepath.Join(dir, "archive-"+name), archive}, tgt); err != nil {
			t.Fatal(err)
		}
		c := startCluster(t, tk, data, filepath.Join(dir, "archive-"+name))
		if err := c.WaitPromoted(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tk.ClearRecovery(data); err != nil {
			t.Fatal(err)
		}
		conn := admin(t, tk, c)
		exec1(t, conn, "INSERT INTO items VALUES (100, 'writable after promotion')")
		return query[string](t, conn, "SELECT phase || id FROM hist ORDER BY id")
	}
	wantA := "[A1 A2 A3 A4 A5]"
	t.Run("PITRTime", func(t *testing.T) {
		t.Parallel()
		if got := fmt.Sprint(recoverTo(t, "pitrTime", RecoveryTarget{Time: &target})); got != wantA {
			t.Errorf("rows after recovery to %v: %s, want %s", target, got, wantA)
		}
	})
	t.Run("PITRLSN", func(t *testing.T) {
		t.Parallel()
		if got := fmt.Sprint(recoverTo(t, "pitrLSN", RecoveryTarget{LSN: lsnA})); got != wantA {
			t.Errorf("rows after recovery to %s: %s, want %s", lsnA, got, wantA)
		}
	})
	t.Run("PITREnd", func(t *testing.T) {
		t.Parallel()
		if got := fmt.Sprint(recoverTo(t, "pitrEnd", RecoveryTarget{})); got != "[A1 A2 A3 A4 A5 B6 B7 B8 B9]" {
			t.Errorf("rows after recovery to the end: %s", got)
		}
	})
}

func TestPrepareRecoveryValidation(t *testing.T) {
	t.Parallel()
	tk := &Toolkit{}
	d := t.TempDir()
	_ = os.WriteFile(filepath.Join(d, "PG_VERSION"), []byte("15\n"), 0o600)
	_ = os.WriteFile(filepath.Join(d, "postgresql.conf"), nil, 0o600)
	now := time.Date(2026, 5, 1, 12, 30, 0, 123456000, time.FixedZone("X", 3600))
	if err := tk.PrepareRecovery(d, []string{"/a"}, RecoveryTarget{Time: &now, LSN: "0/1"}); err == nil {
		t.Error("two targets accepted")
	}
	if err := tk.PrepareRecovery(d, []string{"/a"}, RecoveryTarget{LSN: "bogus"}); err == nil {
		t.Error("bad LSN accepted")
	}
	if err := tk.PrepareRecovery(d, []string{"/a"}, RecoveryTarget{Time: &now}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(d, recoveryConfName))
	for _, want := range []string{
		"recovery_target_time = '2026-05-01 11:30:00.123456+00'",
		"recovery_target_action = 'promote'",
		"recovery_target_timeline = 'latest'",
		"recovery_target_inclusive = 'on'",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("recovery conf lacks %q:\n%s", want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "recovery.signal")); err != nil {
		t.Error(err)
	}
}

func TestStopOrphan(t *testing.T) {
	t.Parallel()
	tk := newToolkit(t)
	ctx := ctxT(t)
	dir := testDir(t)
	data := filepath.Join(dir, "data")
	freshCluster(t, tk, data)
	c := startCluster(t, tk, data, "")
	// "Crash": neonguard forgets c; a new one only knows the data dir.
	stopped, err := tk.StopOrphan(ctx, data)
	if err != nil || !stopped {
		t.Fatalf("StopOrphan = %v, %v", stopped, err)
	}
	select {
	case <-c.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("postgres still running")
	}
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file: %v", err)
	}
	// Nothing left: no-op.
	if stopped, err := tk.StopOrphan(ctx, data); err != nil || stopped {
		t.Errorf("second StopOrphan = %v, %v", stopped, err)
	}
	// A stale pid file naming a live non-postgres process (PID reuse) is
	// removed, and that process is left alone.
	stale := fmt.Sprintf("%d\n%s\n", os.Getpid(), data)
	if err := os.WriteFile(filepath.Join(data, "postmaster.pid"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	if stopped, err := tk.StopOrphan(ctx, data); err != nil || stopped {
		t.Errorf("stale StopOrphan = %v, %v", stopped, err)
	}
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale pid file kept: %v", err)
	}
	// And the cluster starts again (shut down cleanly by SIGINT).
	c2 := startCluster(t, tk, data, "")
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A postgres is not an orphan while another live process holds its owner's lock, whatever
// else says so: StopOrphan refuses and leaves it running. Once the lock is free, or held by
// this process, it is stopped.
func TestStopOrphanLeavesAnOwnedPostgres(t *testing.T) {
	t.Parallel()
	tk := newToolkit(t)
	ctx := ctxT(t)
	dir := testDir(t)
	data := filepath.Join(dir, "data")
	freshCluster(t, tk, data)
	c := startCluster(t, tk, data, "")

	lockPath := filepath.Join(dir, "lock")
	owned := *tk
	owned.OwnerLock = lockPath
	// Another process holds the lock: a child inherits the locked descriptor, this process
	// closes its own.
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "600")
	holder.ExtraFiles = []*os.File{f}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	released := false
	release := func() {
		if !released {
			released = true
			_ = holder.Process.Kill()
			_ = holder.Wait()
		}
	}
	t.Cleanup(release)
	if err := os.WriteFile(lockPath, []byte(fmt.Sprintf("%d\n", holder.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	stopped, err := owned.StopOrphan(ctx, data)
	if stopped || !errors.Is(err, ErrOwned) {
		t.Fatalf("StopOrphan under another process's lock = %v, %v; want ErrOwned", stopped, err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(holder.Process.Pid)) {
		t.Errorf("error %q does not name the holder %d", err, holder.Process.Pid)
	}
	select {
	case <-c.Exited():
		t.Fatal("the owned postgres was stopped")
	default:
	}
	conn := admin(t, &owned, c)
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("owned postgres: %v", err)
	}

	// The holder died: the kernel dropped its lock, and the postgres is an orphan.
	release()
	if stopped, err := owned.StopOrphan(ctx, data); err != nil || !stopped {
		t.Fatalf("StopOrphan after the holder died = %v, %v", stopped, err)
	}
	<-c.Exited()

	// This process's own lock does not protect against itself: it stops its orphans.
	c2 := startCluster(t, tk, data, "")
	f, err = os.OpenFile(lockPath, os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	if stopped, err := owned.StopOrphan(ctx, data); err != nil || !stopped {
		t.Fatalf("StopOrphan under this process's lock = %v, %v", stopped, err)
	}
	<-c2.Exited()
}

func TestCopyCluster(t *testing.T) {
	t.Parallel()
	tk := newToolkit(t)
	ctx := ctxT(t)
	dir := testDir(t)
	data := filepath.Join(dir, "data")
	freshCluster(t, tk, data)
	c := startCluster(t, tk, data, "")
	exec1(t, admin(t, tk, c), "CREATE TABLE kv AS SELECT g AS k FROM generate_series(1, 1000) g")
	if err := tk.CopyCluster(ctx, data, filepath.Join(dir, "x")); err == nil {
		t.Error("copy of a running cluster accepted")
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Errorf("exit after fast shutdown: %v", err)
	}
	cp := filepath.Join(dir, "copy")
	if err := tk.CopyCluster(ctx, data, cp); err != nil {
		t.Fatal(err)
	}
	if err := tk.CopyCluster(ctx, data, cp); err == nil {
		t.Error("copy onto an existing dir accepted")
	}
	st, err := os.Stat(cp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 || st.Sys().(*syscall.Stat_t).Uid != tk.RunAs.UID {
		t.Errorf("copy mode %v uid %d", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
	}
	c2 := startCluster(t, tk, cp, "")
	if n := query[int64](t, admin(t, tk, c2), "SELECT count(*) FROM kv"); n[0] != 1000 {
		t.Errorf("rows in copy: %d", n[0])
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	tk := newToolkit(t)
	dir := testDir(t)
	data := filepath.Join(dir, "data")
	freshCluster(t, tk, data)
	_, err := tk.Start(ctxT(t), ServerConfig{
		DataDir: data, SocketDir: filepath.Join(dir, "s"),
		Settings: map[string]string{"shared_buffers": "lots"},
	})
	if err == nil || !strings.Contains(err.Error(), "shared_buffers") {
		t.Fatalf("err = %v; want the server log naming shared_buffers", err)
	}
	if _, err := tk.Start(ctxT(t), ServerConfig{DataDir: data, SocketDir: "/" + strings.Repeat("s", 100)}); err == nil {
		t.Error("over-long socket dir accepted")
	}
}
