// Package tlsreload serves a TLS certificate and key pair read from two
// files, and re-reads them on request (SIGHUP in the daemon), so that a
// renewed certificate is served without a restart. A pair that fails to
// load is reported and the one in use is kept: a bad renewal never takes
// the server's TLS down.
package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// Certificate is the current certificate and key pair of a server.
// GetCertificate is safe for concurrent use with Reload.
type Certificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// Load reads the pair from certFile and keyFile (PEM; the certificate file
// may hold the chain after the leaf) and fails when they cannot be read,
// do not parse or do not match.
func Load(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads both files. On any error the pair in use is kept.
func (c *Certificate) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if pair.Leaf == nil { // filled in by LoadX509KeyPair since Go 1.23
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("parse TLS certificate %s: %w", c.certFile, err)
		}
	}
	c.current.Store(&pair)
	return nil
}

// GetCertificate returns the current pair, for tls.Config.GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	pair := c.current.Load()
	if pair == nil {
		return nil, errors.New("no TLS certificate loaded")
	}
	return pair, nil
}

// Leaf is the parsed leaf certificate of the current pair.
func (c *Certificate) Leaf() *x509.Certificate {
	if pair := c.current.Load(); pair != nil {
		return pair.Leaf
	}
	return nil
}

// TLSConfig is a server configuration that serves the current pair, with
// TLS 1.2 as the oldest version accepted.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
	}
}

// Fields describes the current certificate for a log line: the files, the
// names it is for, its serial and expiry (nothing of the key).
func (c *Certificate) Fields() logrus.Fields {
	f := logrus.Fields{"cert": c.certFile, "key": c.keyFile}
	if leaf := c.Leaf(); leaf != nil {
		f["subject"] = leaf.Subject.String()
		f["serial"] = leaf.SerialNumber.Text(16)
		f["notAfter"] = leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
		names := append([]string(nil), leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		f["names"] = names
	}
	return f
}

// Run reloads the pair each time reload receives, until ctx is done. A
// failed reload is logged and the pair in use is kept.
func (c *Certificate) Run(ctx context.Context, reload <-chan os.Signal, log logrus.FieldLogger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			if err := c.Reload(); err != nil {
				log.WithError(err).WithFields(c.Fields()).Error("TLS certificate reload failed; still serving the previous certificate")
				continue
			}
			log.WithFields(c.Fields()).Info("TLS certificate reloaded")
		}
	}
}
