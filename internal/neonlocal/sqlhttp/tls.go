package sqlhttp

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// Certificate file names inside the directory given to EnsureCert.
const (
	CertFileName = "sql-over-http.crt"
	KeyFileName  = "sql-over-http.key"
)

// EnsureCert makes (once) a self-signed certificate for hosts (names or IP addresses) in dir
// and returns the paths of the certificate and its key. The certificate is its own CA, so a
// client trusts it by adding the certificate file to its CAs (NODE_EXTRA_CA_CERTS for
// Node.js). A valid pair that covers every host is kept; otherwise a new one is made.
func EnsureCert(dir string, hosts []string) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("cert dir: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	if certCovers(certFile, keyFile, hosts) {
		return certFile, keyFile, nil
	}
	certPEM, keyPEM, err := pgctl.SelfSigned("neonguard local SQL over HTTP", "neonguard", hosts)
	if err != nil {
		return "", "", err
	}
	// Key first: a crash between the writes leaves a pair that does not load, remade next time.
	if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// certCovers reports whether the pair loads, is valid for a day more and names every host.
func certCovers(certFile, keyFile string, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Now().Add(24*time.Hour).After(c.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

// Listen wraps ln so that each connection is TLS (with cert) when it starts with a TLS
// handshake and plain HTTP otherwise: one port serves https:// and http:// URLs.
func Listen(ln net.Listener, cert tls.Certificate) net.Listener {
	return &sniffListener{Listener: ln, cfg: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
}

type sniffListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, cfg: l.cfg}, nil
}

// sniffConn decides on its first read whether it is TLS: a TLS record starts with 0x16.
type sniffConn struct {
	net.Conn
	cfg   *tls.Config
	inner net.Conn
	err   error
}

func (c *sniffConn) decide() error {
	if c.inner != nil || c.err != nil {
		return c.err
	}
	br := bufio.NewReader(c.Conn)
	first, err := br.Peek(1)
	if err != nil {
		c.err = err
		return err
	}
	pc := &peekedConn{Conn: c.Conn, r: br}
	if first[0] == 0x16 {
		c.inner = tls.Server(pc, c.cfg)
	} else {
		c.inner = pc
	}
	return nil
}

func (c *sniffConn) Read(b []byte) (int, error) {
	if err := c.decide(); err != nil {
		return 0, err
	}
	return c.inner.Read(b)
}

func (c *sniffConn) Write(b []byte) (int, error) {
	if c.inner == nil {
		return 0, errors.New("sqlhttp: write before the first read")
	}
	return c.inner.Write(b)
}

func (c *sniffConn) Close() error {
	if c.inner != nil {
		return c.inner.Close()
	}
	return c.Conn.Close()
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
