package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

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
	metaBucket = []byte("meta")
	schemaKey  = []byte("schema")
)

// Bolt is a Store kept in a bbolt file: the engine over bbolt. Each write
// is one bbolt transaction, fsynced on commit, and watchers hear of it only
// after that commit. Opened with OpenJournaled, each write is also appended
// to a Journal before it commits.
type Bolt struct {
	engine
	db *bolt.DB
	// keyFile holds the secrets key, which a backup carries along.
	keyFile string
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
	db, err := openFile(path, timeout)
	if err != nil {
		return nil, err
	}
	// Migrate before initSchema, which would otherwise refuse the older
	// version; a newer one is refused here, with nothing written.
	if _, _, err := migrate(db, migrations); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := newBolt(db, nil)
	if err := useSecretsKey(&s.engine, keyFile); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s.keyFile = keyFile
	return s, nil
}

// openFile opens (or creates) the bbolt file at path, waiting up to timeout
// for its lock; an error wraps berrors.ErrTimeout when the lock was held.
func openFile(path string, timeout time.Duration) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// bbolt would initialise an empty file as a new one: an empty state
	// file that exists is a damaged one (a new file is never empty once
	// opened), and must not be overwritten.
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		if st.Size() == 0 {
			return nil, corrupt(path, errors.New("the file is empty"))
		}
		// A read-write open loads the free list, which bbolt panics on
		// when the file is cut short: look first, read-only.
		probe, err := safeOpen(path, &bolt.Options{ReadOnly: true, Timeout: timeout, PreLoadFreelist: false})
		if err == nil {
			err = checkTruncated(probe)
			_ = probe.Close()
		}
		if err != nil {
			return nil, openError(path, timeout, err)
		}
	}
	// NoSync stays false: an acknowledged write must survive a crash.
	db, err := safeOpen(path, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, openError(path, timeout, err)
	}
	return db, nil
}

// safeOpen is bolt.Open turning a panic or fault on a damaged file (bbolt
// trusts the pages it reads) into an error.
func safeOpen(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("damaged pages: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// openError says why the state file at path did not open: held by another
// daemon, not readable by us, or damaged (ErrCorrupt).
func openError(path string, timeout time.Duration, err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("open state file %s: state file locked by another dockerfaasd? (waited %s): %w", path, timeout, err)
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open state file %s: %w", path, err)
	}
	return corrupt(path, err)
}

// ErrCorrupt means the state file could not be read as one: torn, cut
// short or not a state file at all. Open leaves such a file untouched.
var ErrCorrupt = errors.New("state file unreadable or corrupt")

// corrupt wraps why the file at path cannot be read, naming it and the
// way out, and matching ErrCorrupt.
func corrupt(path string, err error) error {
	return fmt.Errorf("open state file %s: %w: %w; the file was left untouched: restore a backup with `dockerfaasd restore FILE` (it keeps this one as %s.bak-<time>), or move the file away to start with an empty state",
		path, ErrCorrupt, err, filepath.Base(path))
}

// checkTruncated fails when the file is shorter than its own meta page
// says: bbolt maps the missing pages anyway, and reading them would crash
// the daemon (SIGBUS) instead of failing cleanly.
func checkTruncated(db *bolt.DB) error {
	st, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		if want := tx.Size(); want > st.Size() {
			return fmt.Errorf("the file is %d bytes, shorter than the %d its pages need (truncated)", st.Size(), want)
		}
		return nil
	})
}

// newBolt is the store over db, appending every write to j unless j is nil.
func newBolt(db *bolt.DB, j *journaler) *Bolt {
	return &Bolt{engine: engine{kv: boltKV{db: db, group: &groupCommitter{db: db, journal: j}, journal: j}}, db: db}
}

// initSchema records, or checks, the schema version and creates the
// buckets; a file written before a bucket existed simply gains it.
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
	for _, name := range bucketNames {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create %s bucket: %w", name, err)
		}
	}
	return nil
}

// boltKV is the kv backend over bbolt: its transactions and buckets are
// bbolt's own, so every commit is bbolt's durable, fsynced one.
type boltKV struct {
	db    *bolt.DB
	group *groupCommitter
	// journal, when set, keeps every write transaction's ops before it
	// commits (OpenJournaled); nil costs the write path nothing.
	journal *journaler
}

func (k boltKV) view(fn func(kvTx) error) error {
	return k.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (k boltKV) update(fn func(kvTx) error) error {
	if k.journal != nil {
		return k.journal.update(k.db, fn)
	}
	return k.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (k boltKV) batch(fn func(kvTx) error) error { return k.group.do(fn) }

func (k boltKV) close() error { return k.db.Close() }

// boltTx is a bbolt transaction as a kvTx. bbolt runs commit handlers after
// releasing its writer lock, as kv.update promises.
type boltTx struct{ tx *bolt.Tx }

func (t boltTx) bucket(name []byte) kvBucket {
	if b := t.tx.Bucket(name); b != nil {
		return boltBucket{b}
	}
	return nil
}

func (t boltTx) onCommit(fn func()) { t.tx.OnCommit(fn) }

// boltBucket is a bbolt bucket as a kvBucket; bbolt keeps keys in byte
// order, so a prefix is one contiguous range a cursor walks.
type boltBucket struct{ *bolt.Bucket }

func (b boltBucket) scan(prefix []byte, fn func(k, v []byte) bool) {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if v != nil && !fn(k, v) { // v is nil for a nested bucket, not a record
			return
		}
	}
}

func (b boltBucket) scanReverse(fn func(k, v []byte) bool) {
	c := b.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if v != nil && !fn(k, v) {
			return
		}
	}
}
