package pgctl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certificate file names inside the directory given to EnsureCert.
const (
	CertFileName = "server.crt"
	KeyFileName  = "server.key"
)

// EnsureCert makes (once) a self-signed certificate for localhost in dir and
// returns the absolute paths of the certificate and key. Neon only accepts TLS,
// so every endpoint serves this certificate. The key is 0600 and owned by
// owner because postgres refuses a key that others can read. Pass a dedicated
// directory (it is created 0700 and owned by owner). Idempotent: a valid,
// unexpired pair is kept (its ownership and modes are repaired).
func EnsureCert(dir string, owner RunAs) (certFile, keyFile string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := owner.mkdirPrivate(dir); err != nil {
			return "", "", fmt.Errorf("cert dir: %w", err)
		}
	}
	if certValid(certFile, keyFile) {
		if err := fixCertOwnership(certFile, keyFile, owner); err != nil {
			return "", "", err
		}
		return certFile, keyFile, nil
	}
	certPEM, keyPEM, err := SelfSigned("localhost", "neonguard local", []string{"localhost", "127.0.0.1", "::1"})
	if err != nil {
		return "", "", fmt.Errorf("generate certificate: %w", err)
	}
	// Key first: a crash between the two writes leaves an invalid pair,
	// which the next call regenerates.
	if err := owner.writeFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write key: %w", err)
	}
	if err := owner.writeFile(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write certificate: %w", err)
	}
	return certFile, keyFile, nil
}

func fixCertOwnership(certFile, keyFile string, owner RunAs) error {
	if err := os.Chmod(keyFile, 0o600); err != nil {
		return err
	}
	if err := owner.chownOne(keyFile); err != nil {
		return err
	}
	return owner.chownOne(certFile)
}

func certValid(certFile, keyFile string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false
	}
	// Renew well before expiry rather than fail on the day.
	return time.Now().Add(30 * 24 * time.Hour).Before(c.NotAfter)
}

// SelfSigned makes a self-signed P-256 certificate (its own CA, so a client trusts it by
// adding it to its roots) for hosts (names or IP addresses), valid for ten years, and
// returns the certificate and its key in PEM.
func SelfSigned(commonName, organization string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{organization}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: clients can pin it as their root (verify-full)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
