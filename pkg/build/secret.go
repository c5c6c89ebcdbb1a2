// Package build is the daemon's image builder (POST /build, the OpenFaaS
// builder API): it spools and authenticates the request tar, assembles the
// build context (from a server-side template when asked), has the runtime
// build the image in the engine, tests it in a throwaway container, deploys
// it on success when asked, and keeps a record of every build.
package build

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateSecret reads the payload secret at path (surrounding
// whitespace trimmed, as faas-cli trims the file it reads), creating it
// first (random, mode 0600) when it does not exist; created tells which.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if s := bytes.TrimSpace(b); len(s) > 0 {
			return s, false, nil
		}
		return nil, false, fmt.Errorf("payload secret %s is empty", path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read payload secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create payload secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, false, fmt.Errorf("create payload secret: %w", err)
	}
	secret = []byte(hex.EncodeToString(raw[:]))
	// O_EXCL: two daemons starting on one state dir must not each write
	// their own secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create payload secret: %w", err)
	}
	if _, err := f.Write(append(secret, '\n')); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write payload secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write payload secret: %w", err)
	}
	return secret, true, nil
}

// SignatureHeader is the header faas-cli (the go-sdk builder) signs the
// request tar in: "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Build-Signature"

// VerifySignature tells whether header is the signature of a body whose
// HMAC-SHA256 under the payload secret is sum, in constant time.
func VerifySignature(header string, sum []byte) bool {
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, sum)
}

// Sign returns the X-Build-Signature value of body under secret.
func Sign(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
