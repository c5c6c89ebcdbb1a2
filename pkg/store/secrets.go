package store

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
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

// secretsBucket holds one secretRecord per "namespace/name".
var secretsBucket = []byte("secrets")

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

func decodeSecret(key string, v []byte) (secretRecord, error) {
	var rec secretRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return secretRecord{}, fmt.Errorf("secret %q: decode: %w", key, err)
	}
	return rec, nil
}

func loadSecret(t table, key string) (secretRecord, error) {
	v := t.Get([]byte(key))
	if v == nil {
		return secretRecord{}, fmt.Errorf("secret %q: %w", key, ErrNotFound)
	}
	return decodeSecret(key, v)
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

// saveSecret seals value into rec under the next revision and stores it.
func saveSecret(t table, c *sealer, rec secretRecord, value []byte) (SecretInfo, error) {
	key := rec.Key()
	rev, err := t.NextSequence()
	if err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: next revision: %w", key, err)
	}
	rec.Revision = rev
	rec.KeyID = c.id
	if rec.Sealed, err = c.seal(key, value); err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: encrypt: %w", key, err)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: encode: %w", key, err)
	}
	if err := t.Put([]byte(key), v); err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: put: %w", key, err)
	}
	// Decoded from the stored bytes, so the times are exactly what a later
	// List returns.
	stored, err := decodeSecret(key, v)
	return stored.SecretInfo, err
}

func createSecretIn(t table, c *sealer, namespace, name string, value []byte, now time.Time) (SecretInfo, error) {
	key := Key(namespace, name)
	if t.Get([]byte(key)) != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: %w", key, ErrConflict)
	}
	return saveSecret(t, c, secretRecord{SecretInfo: SecretInfo{
		Namespace: namespace, Name: name, CreatedAt: now, UpdatedAt: now,
	}}, value)
}

// updateSecretIn replaces the value of an existing secret; changed is false,
// and nothing is written, when the value is the one already stored.
func updateSecretIn(t table, c *sealer, namespace, name string, value []byte, now time.Time) (SecretInfo, bool, error) {
	rec, err := loadSecret(t, Key(namespace, name))
	if err != nil {
		return SecretInfo{}, false, err
	}
	// A value that cannot be opened (sealed with a lost key) is simply
	// replaced: that is how such a secret is repaired.
	if old, err := openSecret(c, rec); err == nil && len(old) == len(value) && subtle.ConstantTimeCompare(old, value) == 1 {
		return rec.SecretInfo, false, nil
	}
	rec.UpdatedAt = now
	info, err := saveSecret(t, c, rec, value)
	return info, err == nil, err
}

// deleteSecretIn removes an existing secret, consuming a revision like every
// other write.
func deleteSecretIn(t table, namespace, name string) error {
	key := Key(namespace, name)
	if t.Get([]byte(key)) == nil {
		return fmt.Errorf("secret %q: %w", key, ErrNotFound)
	}
	if err := t.Delete([]byte(key)); err != nil {
		return fmt.Errorf("secret %q: delete: %w", key, err)
	}
	if _, err := t.NextSequence(); err != nil {
		return fmt.Errorf("secret %q: next revision: %w", key, err)
	}
	return nil
}

func getSecretIn(t table, c *sealer, namespace, name string) (Secret, error) {
	rec, err := loadSecret(t, Key(namespace, name))
	if err != nil {
		return Secret{}, err
	}
	v, err := openSecret(c, rec)
	if err != nil {
		return Secret{}, err
	}
	return Secret{SecretInfo: rec.SecretInfo, Value: v}, nil
}

// secretPrefix is the key prefix of a namespace's secrets ("" for all).
func secretPrefix(namespace string) []byte {
	if namespace == "" {
		return nil
	}
	return []byte(namespace + "/")
}

// initSecrets creates the secrets bucket; files written before secrets
// existed simply gain it.
func initSecrets(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(secretsBucket); err != nil {
		return fmt.Errorf("create secrets bucket: %w", err)
	}
	return nil
}

// checkSecretsKey refuses a key that did not seal the stored secrets, so a
// replaced or regenerated key file stops the daemon with a clear message
// instead of making every function that uses a secret fail later.
func checkSecretsKey(db *bolt.DB, c *sealer, keyFile string, created bool) error {
	return db.View(func(tx *bolt.Tx) error {
		n := 0
		var foreign string
		err := tx.Bucket(secretsBucket).ForEach(func(k, v []byte) error {
			n++
			rec, err := decodeSecret(string(k), v)
			if err != nil {
				return err
			}
			if rec.KeyID != c.id && foreign == "" {
				foreign = rec.KeyID
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case foreign != "" && created:
			return fmt.Errorf("secrets key %s is missing, but the state file holds %d secret(s) encrypted with key %s: restore the original key file",
				keyFile, n, foreign)
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

// useSecretsKey loads (or creates) the key and checks it against what the
// file holds; it runs once the file lock is held, so two daemons never race
// on the key either.
func useSecretsKey(db *bolt.DB, keyFile string) (*sealer, error) {
	key, created, err := loadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	c, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", keyFile, err)
	}
	if err := checkSecretsKey(db, c, keyFile, created); err != nil {
		if created {
			// Leave no key behind that could be mistaken for the lost one.
			_ = os.Remove(keyFile)
		}
		return nil, err
	}
	return c, nil
}

// CreateSecret implements Secrets.
func (s *Bolt) CreateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return s.writeSecret(ctx, key, func(tx *bolt.Tx) (SecretInfo, bool, error) {
		if err := namespaceIn(tx.Bucket(namespacesBucket), namespace); err != nil {
			return SecretInfo{}, false, err
		}
		info, err := createSecretIn(tx.Bucket(secretsBucket), s.sealer, namespace, name, value, now())
		return info, err == nil, err
	})
}

// UpdateSecret implements Secrets.
func (s *Bolt) UpdateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return s.writeSecret(ctx, key, func(tx *bolt.Tx) (SecretInfo, bool, error) {
		return updateSecretIn(tx.Bucket(secretsBucket), s.sealer, namespace, name, value, now())
	})
}

// DeleteSecret implements Secrets.
func (s *Bolt) DeleteSecret(ctx context.Context, namespace, name string) error {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return err
	}
	_, err = s.writeSecret(ctx, key, func(tx *bolt.Tx) (SecretInfo, bool, error) {
		return SecretInfo{}, true, deleteSecretIn(tx.Bucket(secretsBucket), namespace, name)
	})
	return err
}

// ListSecrets implements Secrets.
func (s *Bolt) ListSecrets(ctx context.Context, namespace string) ([]SecretInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list secrets %q: %w", namespace, err)
	}
	prefix := secretPrefix(namespace)
	list := make([]SecretInfo, 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(secretsBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec, err := decodeSecret(string(k), v)
			if err != nil {
				return err
			}
			list = append(list, rec.SecretInfo)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets %q: %w", namespace, err)
	}
	return list, nil
}

// GetSecret implements Secrets.
func (s *Bolt) GetSecret(ctx context.Context, namespace, name string) (Secret, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return Secret{}, err
	}
	if err := ctx.Err(); err != nil {
		return Secret{}, fmt.Errorf("secret %q: %w", key, err)
	}
	var sec Secret
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		sec, err = getSecretIn(tx.Bucket(secretsBucket), s.sealer, namespace, name)
		return err
	})
	return sec, err
}

// writeSecret is Bolt.write for secrets: one transaction, committed only
// when op changed something, watchers told after the commit.
func (s *Bolt) writeSecret(ctx context.Context, key string, op func(tx *bolt.Tx) (SecretInfo, bool, error)) (SecretInfo, error) {
	if err := ctx.Err(); err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: %w", key, err)
	}
	var (
		info  SecretInfo
		opErr error
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var changed bool
		info, changed, opErr = op(tx)
		switch {
		case opErr != nil:
			return opErr
		case !changed:
			return errUnchanged
		}
		tx.OnCommit(func() { s.watchers.notify(secretWatchPrefix + key) })
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errUnchanged):
		return info, nil
	case err == opErr:
		return SecretInfo{}, err
	default:
		return SecretInfo{}, fmt.Errorf("secret %q: write: %w", key, err)
	}
}

// memSecrets is Memory's secrets bucket: records and their own sequence,
// guarded by Memory.mu.
type memSecrets struct {
	records map[string][]byte
	seq     uint64
	sealer  *sealer
}

func newMemSecrets() memSecrets {
	return memSecrets{records: make(map[string][]byte), sealer: randomSealer()}
}

// memSecretsTx stages one write to memSecrets, like memTx does for
// functions; it implements table.
type memSecretsTx struct {
	b      *memSecrets
	seq    uint64
	writes map[string][]byte // nil value: staged delete
}

func (tx *memSecretsTx) Get(key []byte) []byte {
	if v, ok := tx.writes[string(key)]; ok {
		return v
	}
	return tx.b.records[string(key)]
}

func (tx *memSecretsTx) Put(key, value []byte) error {
	tx.writes[string(key)] = value
	return nil
}

func (tx *memSecretsTx) Delete(key []byte) error {
	tx.writes[string(key)] = nil
	return nil
}

func (tx *memSecretsTx) NextSequence() (uint64, error) {
	tx.seq++
	return tx.seq, nil
}

func (tx *memSecretsTx) commit() {
	for k, v := range tx.writes {
		if v == nil {
			delete(tx.b.records, k)
		} else {
			tx.b.records[k] = v
		}
	}
	tx.b.seq = tx.seq
}

// writeSecret applies op atomically under the writer lock and tells
// watchers after releasing it, as Memory.write does.
func (m *Memory) writeSecret(ctx context.Context, key string, op func(t table) (SecretInfo, bool, error)) (SecretInfo, error) {
	if err := ctx.Err(); err != nil {
		return SecretInfo{}, fmt.Errorf("secret %q: %w", key, err)
	}
	m.mu.Lock()
	tx := &memSecretsTx{b: &m.secrets, seq: m.secrets.seq, writes: make(map[string][]byte)}
	info, changed, err := op(tx)
	if err == nil && changed {
		tx.commit()
	}
	m.mu.Unlock()
	if err != nil {
		return SecretInfo{}, err
	}
	if changed {
		m.watchers.notify(secretWatchPrefix + key)
	}
	return info, nil
}

// CreateSecret implements Secrets.
func (m *Memory) CreateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return m.writeSecret(ctx, key, func(t table) (SecretInfo, bool, error) {
		// writeSecret holds m.mu, so the check and the create are one step.
		if err := namespaceIn(mapTable(m.namespaces), namespace); err != nil {
			return SecretInfo{}, false, err
		}
		info, err := createSecretIn(t, m.secrets.sealer, namespace, name, value, now())
		return info, err == nil, err
	})
}

// UpdateSecret implements Secrets.
func (m *Memory) UpdateSecret(ctx context.Context, namespace, name string, value []byte) (SecretInfo, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return m.writeSecret(ctx, key, func(t table) (SecretInfo, bool, error) {
		return updateSecretIn(t, m.secrets.sealer, namespace, name, value, now())
	})
}

// DeleteSecret implements Secrets.
func (m *Memory) DeleteSecret(ctx context.Context, namespace, name string) error {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return err
	}
	_, err = m.writeSecret(ctx, key, func(t table) (SecretInfo, bool, error) {
		return SecretInfo{}, true, deleteSecretIn(t, namespace, name)
	})
	return err
}

// ListSecrets implements Secrets.
func (m *Memory) ListSecrets(ctx context.Context, namespace string) ([]SecretInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list secrets %q: %w", namespace, err)
	}
	prefix := string(secretPrefix(namespace))
	m.mu.RLock()
	recs := make(map[string][]byte)
	for k, v := range m.secrets.records {
		if strings.HasPrefix(k, prefix) {
			recs[k] = v
		}
	}
	m.mu.RUnlock()
	list := make([]SecretInfo, 0, len(recs))
	for k, v := range recs {
		rec, err := decodeSecret(k, v)
		if err != nil {
			return nil, fmt.Errorf("list secrets %q: %w", namespace, err)
		}
		list = append(list, rec.SecretInfo)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key() < list[j].Key() })
	return list, nil
}

// GetSecret implements Secrets.
func (m *Memory) GetSecret(ctx context.Context, namespace, name string) (Secret, error) {
	namespace, key, err := secretKeyOf(namespace, name)
	if err != nil {
		return Secret{}, err
	}
	if err := ctx.Err(); err != nil {
		return Secret{}, fmt.Errorf("secret %q: %w", key, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return getSecretIn(&memSecretsTx{b: &m.secrets, writes: nil}, m.secrets.sealer, namespace, name)
}
