package pgctl

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkStartStop measures the cold start of a stopped cluster until it
// accepts a connection (what resuming a suspended endpoint costs); the
// shutdown is not timed.
func BenchmarkStartStop(b *testing.B) {
	for _, fsync := range []string{"on", "off"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			tk := newToolkit(b)
			dir := testDir(b)
			data := filepath.Join(dir, "data")
			freshCluster(b, tk, data)
			cfg := ServerConfig{
				DataDir: data, SocketDir: filepath.Join(dir, "s"), ArchiveDir: filepath.Join(dir, "a"),
				CertFile: tmpl.cert[0], KeyFile: tmpl.cert[1],
				Settings: map[string]string{"fsync": fsync},
			}
			ctx := context.Background()
			for b.Loop() {
				p, err := tk.Start(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := p.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkStop measures the fast shutdown alone (checkpoint included).
func BenchmarkStop(b *testing.B) {
	tk := newToolkit(b)
	dir := testDir(b)
	data := filepath.Join(dir, "data")
	freshCluster(b, tk, data)
	cfg := ServerConfig{DataDir: data, SocketDir: filepath.Join(dir, "s"), CertFile: tmpl.cert[0], KeyFile: tmpl.cert[1]}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		p, err := tk.Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := p.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopyCluster(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			tk := newToolkit(b)
			dir := testDir(b)
			src := filepath.Join(dir, "src")
			freshCluster(b, tk, src)
			tk.NoSync = noSync
			i := 0
			for b.Loop() {
				i++
				if err := tk.CopyCluster(context.Background(), src, filepath.Join(dir, fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInitDB(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			tk := newToolkit(b)
			tk.NoSync = noSync
			dir := testDir(b)
			i := 0
			for b.Loop() {
				i++
				if err := tk.InitDB(context.Background(), filepath.Join(dir, fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
