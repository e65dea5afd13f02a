package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer is a persistent echo listener for benchmarks.
func echoServer(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// instantBackend "starts" an already-listening server: a cold start then
// costs only the proxy's own work.
type instantBackend struct{ addr string }

func (i instantBackend) Start(context.Context) (string, error) { return i.addr, nil }
func (i instantBackend) Stop(context.Context) error            { return nil }

func benchProxy(b *testing.B, addr string) *Proxy {
	b.Helper()
	p, err := Listen(context.Background(), Options{Listen: "127.0.0.1:0", Backend: instantBackend{addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkProxyRoundTrip: one 64-byte request/response on an open
// connection, directly and through the proxy.
func BenchmarkProxyRoundTrip(b *testing.B) {
	server := echoServer(b)
	p := benchProxy(b, server)
	msg := make([]byte, 64)
	for _, bc := range []struct{ name, addr string }{{"direct", server}, {"proxy", p.Addr()}} {
		b.Run(bc.name, func(b *testing.B) {
			c := dial(b, bc.addr)
			defer c.Close()
			_ = c.SetDeadline(time.Time{})
			b.SetBytes(int64(2 * len(msg)))
			for b.Loop() {
				if err := echo(c, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdStartOverhead: connect + 1-byte round trip + close. "direct"
// is the floor, "warm" adds the proxy, "cold" also suspends before every
// connection so each one pays a (instant) Start.
func BenchmarkColdStartOverhead(b *testing.B) {
	server := echoServer(b)
	p := benchProxy(b, server)
	ctx := context.Background()
	run := func(b *testing.B, addr string, suspend bool) {
		for b.Loop() {
			if suspend {
				if err := p.Suspend(ctx); err != nil {
					b.Fatal(err)
				}
			}
			c := dial(b, addr)
			if err := echo(c, []byte{1}); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, server, false) })
	b.Run("warm", func(b *testing.B) { run(b, p.Addr(), false) })
	b.Run("cold", func(b *testing.B) {
		before := p.Stats().Starts
		run(b, p.Addr(), true)
		b.ReportMetric(float64(p.Stats().Starts-before)/float64(b.N), "starts/op")
	})
}
