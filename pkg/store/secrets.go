package store

import (
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Secrets is the part of Store that keeps secrets under "namespace/name"
// (an empty namespace means DefaultNamespace). Values are encrypted at rest
// and only GetSecret, which the controller uses to hand them to function
// containers, ever returns one. Every write wakes watchers with
// SecretWatchKey, so the functions using a secret can be rolled.
type Secrets interface {
	// CreateSecret stores a new secret; ErrConflict when it exists,
	// ErrNamespaceNotFound when its namespace does not, and an error
	// matching no sentinel for an empty name or a '/' in either part.
	CreateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error)
	// UpdateSecret replaces the value of an existing secret (ErrNotFound
	// otherwise). Revision changes with every update; an update to the value
	// the secret already has writes nothing and wakes no one.
	UpdateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error)
	// DeleteSecret removes a secret (ErrNotFound when absent).
	DeleteSecret(ctx context.Context, namespace, name string) error
	// ListSecrets describes the secrets of namespace, or of all namespaces
	// when namespace is "", sorted by key. It never returns values.
	ListSecrets(ctx context.Context, namespace string) ([]SecretInfo, error)
	// GetSecret returns a secret with its decrypted value, or an error
	// wrapping ErrNotFound.
	GetSecret(ctx context.Context, namespace, name string) (Secret, error)
}

// SecretInfo describes a stored secret without its value.
type SecretInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revision is the secrets bucket's sequence number at the last write of
	// the secret; it changes with every change of the value, so it can stand
	// for the value in a function's spec hash without revealing anything.
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Key returns the secret's store key.
func (s SecretInfo) Key() string { return Key(s.Namespace, s.Name) }

// Secret is a secret with its value. Never log it.
type Secret struct {
	SecretInfo
	Value []byte
}

// String keeps the value out of anything that formats a Secret.
func (s Secret) String() string {
	return fmt.Sprintf("secret %s (revision %d, value redacted)", s.Key(), s.Revision)
}

// GoString is String for %#v.
func (s Secret) GoString() string { return s.String() }

// secretWatchPrefix sets secret keys apart from function keys ("ns/name")
// in what watchers receive. Namespaces never contain ':' (they are DNS
// labels), so no function key starts with it.
const secretWatchPrefix = "secret:"

// SecretWatchKey is the key watchers receive when the secret namespace/name
// changes.
func SecretWatchKey(namespace, name string) string {
	return secretWatchPrefix + Key(namespace, name)
}

// SplitSecretWatchKey reports whether key came from SecretWatchKey and, if
// so, which secret changed.
func SplitSecretWatchKey(key string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, secretWatchPrefix)
	if !ok {
		return "", "", false
	}
	namespace, name, err := SplitKey(rest)
	return namespace, name, err == nil
}

// secretRecords is the secrets bucket: one secretRecord per
// "namespace/name", revisioned, and every write wakes watchers with
// SecretWatchKey.
var secretRecords = &bucket[secretRecord]{
	name:     []byte("secrets"),
	kind:     "secret",
	key:      secretRecord.Key,
	revision: func(rec *secretRecord) *uint64 { return &rec.Revision },
	watchKey: func(key string) string { return secretWatchPrefix + key },
}

// secretRecord is what the secrets bucket holds. Only Sealed depends on the
// value; everything else is plain metadata.
type secretRecord struct {
	SecretInfo
	// KeyID names the key Sealed was made with (see sealer.id).
	KeyID string `json:"keyId"`
	// Sealed is nonce ‖ AES-256-GCM(value), with the store key as
	// additional data.
	Sealed []byte `json:"sealed"`
}

// secretKeyOf returns the effective namespace and the store key, refusing
// names that would not survive SplitKey.
func secretKeyOf(namespace, name string) (string, string, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	key := Key(namespace, name)
	switch {
	case name == "":
		return "", "", fmt.Errorf("secret %q: empty name", key)
	case strings.Contains(name, "/"):
		return "", "", fmt.Errorf("secret %q: name contains '/'", key)
	case strings.Contains(namespace, "/"):
		return "", "", fmt.Errorf("secret %q: namespace contains '/'", key)
	}
	return namespace, key, nil
}

// openSecret decrypts rec's value.
func openSecret(c *sealer, rec secretRecord) ([]byte, error) {
	key := rec.Key()
	if rec.KeyID != c.id {
		return nil, fmt.Errorf("secret %q was encrypted with key %s, but the secrets key file holds key %s: restore the original key file",
			key, rec.KeyID, c.id)
	}
	v, err := c.open(key, rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("secret %q: decrypt: %w", key, err)
	}
	return v, nil
}

// sealIn seals value into rec and stores it under the next revision.
func sealIn(tx *txn, c *sealer, rec secretRecord, value []byte) (SecretInfo, error) {
	key := rec.Key()
	var err error
	rec.KeyID = c.id
	if rec.Sealed, err = c.seal(key, value); err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: encrypt: %w", key, err)
	}
	stored, err := secretRecords.put(tx, key, rec)
	return stored.SecretInfo, err
}

// checkSecretsKey refuses a key that did not seal the stored secrets, so a
// replaced or regenerated key file stops the daemon with a clear message
// instead of making every function that uses a secret fail later.
func checkSecretsKey(e *engine, c *sealer, keyFile string, created bool) error {
	return e.kv.view(func(kt kvTx) error {
		recs, err := secretRecords.list(&txn{kv: kt}, nil)
		if err != nil {
			return err
		}
		var foreign string
		for _, rec := range recs {
			if rec.KeyID != c.id {
				foreign = rec.KeyID
				break
			}
		}
		switch {
		case foreign != "" && created:
			return fmt.Errorf("secrets key %s is missing, but the state file holds %d secret(s) encrypted with key %s: restore the original key file",
				keyFile, len(recs), foreign)
		case foreign != "":
			return fmt.Errorf("secrets key %s (key %s) did not encrypt the stored secrets (key %s): restore the original key file",
				keyFile, c.id, foreign)
		}
		return nil
	})
}

// OpenWithKeyFile is Open with the secrets key kept at keyFile instead of
// next to the state file. The key is created (mode 0600) when keyFile does
// not exist; one that exists but is unreadable, has the wrong size or did
// not encrypt the stored secrets is an error.
func OpenWithKeyFile(path, keyFile string) (*Bolt, error) {
	return openWith(path, keyFile, lockTimeout)
}

// DefaultKeyFile is where Open keeps the secrets key for the state file at
// path: SecretKeyFile in the same directory.
func DefaultKeyFile(path string) string {
	return filepath.Join(filepath.Dir(path), SecretKeyFile)
}

// useSecretsKey loads (or creates) the key, checks it against what e
// holds and makes e seal with it; it runs once the file lock is held, so two
// daemons never race on the key either.
func useSecretsKey(e *engine, keyFile string) error {
	key, created, err := loadOrCreateKey(keyFile)
	if err != nil {
		return err
	}
	c, err := newSealer(key)
	if err != nil {
		return fmt.Errorf("secrets key %s: %w", keyFile, err)
	}
	if err := checkSecretsKey(e, c, keyFile, created); err != nil {
		if created {
			// Leave no key behind that could be mistaken for the lost one.
			_ = os.Remove(keyFile)
		}
		return err
	}
	e.sealer = c
	return nil
}

// CreateSecret implements Secrets.
func (e *engine) CreateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return write(ctx, e, secretRecords.about(key), func(tx *txn) (SecretInfo, error) {
		if err := namespaceIn(tx, namespace); err != nil {
			return SecretInfo{}, err
		}
		if secretRecords.exists(tx, key) {
			return SecretInfo{}, secretRecords.about(key).wrap(ErrConflict)
		}
		t := now()
		return sealIn(tx, e.sealer, secretRecord{SecretInfo: SecretInfo{
			Namespace: namespace, Name: name, CreatedAt: t, UpdatedAt: t,
		}}, value)
	})
}

// UpdateSecret implements Secrets. An update to the value already stored
// writes nothing.
func (e *engine) UpdateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	_, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return write(ctx, e, secretRecords.about(key), func(tx *txn) (SecretInfo, error) {
		rec, err := secretRecords.get(tx, key)
		if err != nil {
			return SecretInfo{}, err
		}
		// A value that cannot be opened (sealed with a lost key) is simply
		// replaced: that is how such a secret is repaired.
		if old, err := openSecret(e.sealer, rec); err == nil && len(old) == len(value) && subtle.ConstantTimeCompare(old, value) == 1 {
			return rec.SecretInfo, nil
		}
		rec.UpdatedAt = now()
		return sealIn(tx, e.sealer, rec, value)
	})
}

// DeleteSecret implements Secrets.
func (e *engine) DeleteSecret(ctx context.Context, namespace, name string) error {
	_, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return err
	}
	_, err = write(ctx, e, secretRecords.about(key), func(tx *txn) (struct{}, error) {
		return struct{}{}, secretRecords.delete(tx, key)
	})
	return err
}

// ListSecrets implements Secrets.
func (e *engine) ListSecrets(ctx context.Context, namespace string) ([]SecretInfo, error) {
	recs, err := listIn(ctx, e, subject{what: "list secrets", key: namespace}, secretRecords, prefixOf(namespace))
	if err != nil {
		return nil, err
	}
	list := make([]SecretInfo, 0, len(recs))
	for _, rec := range recs {
		list = append(list, rec.SecretInfo)
	}
	return list, nil
}

// GetSecret implements Secrets.
func (e *engine) GetSecret(ctx context.Context, namespace, name string) (Secret, error) {
	_, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return Secret{}, err
	}
	var sec Secret
	err = e.read(ctx, secretRecords.about(key), func(tx *txn) error {
		rec, err := secretRecords.get(tx, key)
		if err != nil {
			return err
		}
		sec.SecretInfo = rec.SecretInfo
		sec.Value, err = openSecret(e.sealer, rec)
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	return sec, nil
}
