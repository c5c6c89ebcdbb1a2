package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretKeyFile is the name of the file, next to the state file unless
// OpenWithKeyFile says otherwise, that holds the key secret values are
// encrypted with.
const SecretKeyFile = "secrets.key"

// SecretKeySize is the length of the key: AES-256.
const SecretKeySize = 32

// sealer encrypts secret values with AES-256-GCM. Every seal draws a fresh
// random 96-bit nonce, so one key can seal far more values than a daemon
// will ever write (the birthday bound for random nonces is around 2^32
// seals). The store key ("namespace/name") is the additional data, so a
// ciphertext moved to another record fails to open instead of silently
// becoming that secret's value.
type sealer struct {
	aead cipher.AEAD
	// id names the key without revealing it, so a record sealed with another
	// key is reported as such rather than as corrupt.
	id string
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("secrets key is %d bytes, want %d", len(key), SecretKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("dockerfaasd secrets key id\x00"), key...))
	return &sealer{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// randomSealer is a sealer with a key that lives only in memory, for Memory.
func randomSealer() *sealer {
	key := make([]byte, SecretKeySize)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on Linux (getrandom)
	}
	s, err := newSealer(key)
	if err != nil {
		panic(err) // the size is right by construction
	}
	return s
}

// seal returns nonce ‖ ciphertext of value, bound to key.
func (s *sealer) seal(key string, value []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(value)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return s.aead.Seal(nonce, nonce, value, []byte(key)), nil
}

// open reverses seal; it fails when sealed was not made by seal for key with
// this sealer's key, or was altered.
func (s *sealer) open(key string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(key))
}

// loadOrCreateKey reads the secrets key at path, or creates it (mode 0600,
// in a directory created with mode 0700) when there is none. Creation is
// atomic and never replaces a key: the new key is written and synced to a
// temporary file that is then hard-linked to path, which fails if path
// appeared meanwhile, in which case that key is used. A key file that exists
// but cannot be read or has the wrong size is an error: silently replacing it
// would make every stored secret unreadable.
func loadOrCreateKey(path string) (key []byte, created bool, err error) {
	key, err = readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create secrets key directory: %w", err)
	}
	key = make([]byte, SecretKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate secrets key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("create secrets key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write secrets key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		// Another process created it first; both must use that one.
		key, err = readKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("create secrets key %s: %w", path, err)
	}
	// Make the new directory entry durable before any secret depends on it.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return key, true, nil
}

// readKey reads and checks an existing key file.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key %s exists but cannot be read: %w", path, err)
	}
	if len(b) != SecretKeySize {
		return nil, fmt.Errorf("secrets key %s holds %d bytes, want %d: restore the original key file (it is needed to read stored secrets)",
			path, len(b), SecretKeySize)
	}
	return b, nil
}
