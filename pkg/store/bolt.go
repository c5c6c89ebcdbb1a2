package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is the layout of the state file this code reads and writes.
// It is recorded on Open so a future layout can be migrated, and so an older
// binary refuses a newer file instead of misreading it.
const schemaVersion = 1

// lockTimeout bounds how long Open waits for the file lock: long enough to
// ride out a predecessor that is still shutting down, short enough that a
// second daemon on the same file fails with a clear error instead of hanging.
const lockTimeout = 3 * time.Second

var (
	functionsBucket = []byte("functions")
	metaBucket      = []byte("meta")
	schemaKey       = []byte("schema")
)

// Bolt is a Store kept in a bbolt file. Each write is one bbolt transaction,
// fsynced on commit, and watchers hear of it only after that commit.
type Bolt struct {
	db       *bolt.DB
	watchers watchers
	sealer   *sealer // encrypts secret values (secrets.go)
}

var _ Store = (*Bolt)(nil)

// Open opens the state file at path, creating it (mode 0600) and its parent
// directory (mode 0700) when missing. It fails after a few seconds when
// another process holds the file. Secret values are encrypted with the key
// in DefaultKeyFile(path), created on first open (see OpenWithKeyFile).
func Open(path string) (*Bolt, error) {
	return open(path, lockTimeout)
}

func open(path string, timeout time.Duration) (*Bolt, error) {
	return openWith(path, DefaultKeyFile(path), timeout)
}

func openWith(path, keyFile string, timeout time.Duration) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// NoSync stays false: an acknowledged write must survive a crash.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open state file %s: state file locked by another dockerfaasd? (waited %s): %w", path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	sl, err := useSecretsKey(db, keyFile)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return &Bolt{db: db, sealer: sl}, nil
}

// initSchema creates the buckets and records, or checks, the schema version.
func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	if v := meta.Get(schemaKey); v != nil {
		got, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil || got != schemaVersion {
			return fmt.Errorf("unsupported schema version %q (this dockerfaasd knows %d)", v, schemaVersion)
		}
	} else if err := meta.Put(schemaKey, []byte(strconv.Itoa(schemaVersion))); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	if _, err := tx.CreateBucketIfNotExists(functionsBucket); err != nil {
		return fmt.Errorf("create functions bucket: %w", err)
	}
	if err := initSecrets(tx); err != nil {
		return err
	}
	return initNamespaces(tx)
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, key string) (Function, error) {
	if err := ctx.Err(); err != nil {
		return Function{}, fmt.Errorf("function %q: %w", key, err)
	}
	var (
		f     Function
		opErr error
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		f, opErr = load(tx.Bucket(functionsBucket), key)
		return opErr
	})
	switch {
	case err == nil:
		return f, nil
	case err == opErr:
		return Function{}, err
	default:
		return Function{}, fmt.Errorf("function %q: %w", key, err)
	}
}

// List implements Store. Keys are stored in byte order, which is the order
// List promises, so a namespace is one contiguous range of the bucket.
func (s *Bolt) List(ctx context.Context, namespace string) ([]Function, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", namespace, err)
	}
	var prefix []byte
	if namespace != "" {
		prefix = []byte(namespace + "/")
	}
	fns := make([]Function, 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(functionsBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			f, err := decode(string(k), v)
			if err != nil {
				return err
			}
			fns = append(fns, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", namespace, err)
	}
	return fns, nil
}

// Create implements Store.
func (s *Bolt) Create(ctx context.Context, spec types.FunctionDeployment, replicas uint64) (Function, error) {
	ns, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	return s.write(ctx, key, func(tx *bolt.Tx) (Function, bool, error) {
		if err := namespaceIn(tx.Bucket(namespacesBucket), ns); err != nil {
			return Function{}, false, err
		}
		f, err := createIn(tx.Bucket(functionsBucket), spec, replicas, now())
		return f, err == nil, err
	})
}

// Update implements Store.
func (s *Bolt) Update(ctx context.Context, spec types.FunctionDeployment, clamp func(current uint64) uint64) (Function, error) {
	ns, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	return s.write(ctx, key, func(tx *bolt.Tx) (Function, bool, error) {
		if err := namespaceIn(tx.Bucket(namespacesBucket), ns); err != nil {
			return Function{}, false, err
		}
		return updateIn(tx.Bucket(functionsBucket), spec, clamp, now())
	})
}

// Scale implements Store.
func (s *Bolt) Scale(ctx context.Context, key string, replicas uint64) (Function, error) {
	return s.write(ctx, key, func(tx *bolt.Tx) (Function, bool, error) {
		return scaleIn(tx.Bucket(functionsBucket), key, replicas, now())
	})
}

// Delete implements Store.
func (s *Bolt) Delete(ctx context.Context, key string) error {
	_, err := s.write(ctx, key, func(tx *bolt.Tx) (Function, bool, error) {
		return Function{}, true, deleteIn(tx.Bucket(functionsBucket), key)
	})
	return err
}

// Watch implements Store.
func (s *Bolt) Watch(ctx context.Context, opts ...WatchOption) *Watcher {
	return s.watchers.add(ctx, opts)
}

// Close closes the state file. Writes in flight finish first.
func (s *Bolt) Close() error { return s.db.Close() }

// write runs op in one write transaction; op reaches every bucket it needs
// through tx, so a check across buckets (does the namespace exist?) commits
// atomically with the write. When op changed something, the transaction
// commits (and fsyncs) and watchers are told about key from the commit
// handler, so they never see uncommitted state; bbolt runs that handler in
// the writer's goroutine, which is why notify must not block. When op
// changed nothing the transaction is rolled back: no write at all.
func (s *Bolt) write(ctx context.Context, key string, op func(tx *bolt.Tx) (Function, bool, error)) (Function, error) {
	if err := ctx.Err(); err != nil {
		return Function{}, fmt.Errorf("function %q: %w", key, err)
	}
	var (
		f     Function
		opErr error
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var changed bool
		f, changed, opErr = op(tx)
		switch {
		case opErr != nil:
			return opErr
		case !changed:
			return errUnchanged
		}
		tx.OnCommit(func() { s.watchers.notify(key) })
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errUnchanged):
		return f, nil
	case err == opErr:
		return Function{}, err
	default:
		return Function{}, fmt.Errorf("function %q: write: %w", key, err)
	}
}
