package store

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A backup is a gzipped tar of three entries, in this order: a manifest
// (BackupManifest as JSON), the state file as of one read transaction
// (bbolt's consistent copy, taken while writers go on) and the secrets
// key, without which the secret values in the state file cannot be read.
// It holds that key in the clear: keep backups as private as STATE_DIR.
const (
	backupFormat       = 1
	backupManifestName = "manifest.json"
	backupStateName    = "state.db"
	backupKeyName      = SecretKeyFile
)

// BackupManifest describes a backup.
type BackupManifest struct {
	// Format is the layout of the archive itself (1).
	Format int `json:"format"`
	// Schema is the state file's schema version.
	Schema uint64 `json:"schema"`
	// CreatedAt is when the read transaction the copy comes from began.
	CreatedAt time.Time `json:"createdAt"`
	// Version is the dockerfaasd that took the backup.
	Version string `json:"version"`
	// StateBytes is the size of the state file copy.
	StateBytes int64 `json:"stateBytes"`
	// SecretsKey says whether the archive holds the secrets key.
	SecretsKey bool `json:"secretsKey"`
}

// WriteBackup writes a backup of the open store to w: a hot, consistent
// copy taken in one read transaction, so writes go on meanwhile (those
// that grow the file wait for it to end: copy to something fast, a local
// file, rather than straight to a slow client). version is recorded in the
// manifest.
func (s *Bolt) WriteBackup(ctx context.Context, w io.Writer, version string) (BackupManifest, error) {
	return writeBackup(ctx, s.db, s.keyFile, w, version)
}

// BackupFile writes a backup of the state file at path, with the secrets
// key at keyFile, while no daemon runs on it: the file is opened read-only
// and never written. A daemon holding the file makes it fail within a few
// seconds with an error matching ErrLocked.
func BackupFile(ctx context.Context, path, keyFile string, w io.Writer, version string) (BackupManifest, error) {
	if _, err := os.Stat(path); err != nil {
		return BackupManifest{}, fmt.Errorf("state file: %w", err)
	}
	db, err := safeOpen(path, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return BackupManifest{}, fmt.Errorf("state file %s: %w: back it up through the running daemon instead", path, ErrLocked)
	case err != nil:
		return BackupManifest{}, corrupt(path, err)
	}
	defer db.Close()
	if err := checkTruncated(db); err != nil {
		return BackupManifest{}, corrupt(path, err)
	}
	return writeBackup(ctx, db, keyFile, w, version)
}

// ErrLocked means a running dockerfaasd holds the state file.
var ErrLocked = errors.New("the state file is locked by a running dockerfaasd")

func writeBackup(ctx context.Context, db *bolt.DB, keyFile string, w io.Writer, version string) (BackupManifest, error) {
	if err := ctx.Err(); err != nil {
		return BackupManifest{}, err
	}
	var key []byte
	if keyFile != "" {
		k, err := readKey(keyFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// No secret was ever stored: nothing needs the key.
		case err != nil:
			return BackupManifest{}, err
		default:
			key = k
		}
	}
	var m BackupManifest
	err := db.View(func(tx *bolt.Tx) error {
		schema, err := readSchema(tx)
		if err != nil {
			return err
		}
		m = BackupManifest{
			Format: backupFormat, Schema: schema, CreatedAt: time.Now().UTC(),
			Version: version, StateBytes: tx.Size(), SecretsKey: key != nil,
		}
		if key == nil && (tx.Bucket(secretRecords.name) != nil && tx.Bucket(secretRecords.name).Stats().KeyN > 0) {
			return fmt.Errorf("secrets key %s is missing but the state file holds secrets: a backup without it could not read them", keyFile)
		}
		gz := gzip.NewWriter(w)
		tw := tar.NewWriter(gz)
		mb, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if err := addEntry(tw, backupManifestName, int64(len(mb)), m.CreatedAt, func(w io.Writer) error {
			_, err := w.Write(mb)
			return err
		}); err != nil {
			return err
		}
		if err := addEntry(tw, backupStateName, m.StateBytes, m.CreatedAt, func(w io.Writer) error {
			_, err := tx.WriteTo(w)
			return err
		}); err != nil {
			return err
		}
		if key != nil {
			if err := addEntry(tw, backupKeyName, int64(len(key)), m.CreatedAt, func(w io.Writer) error {
				_, err := w.Write(key)
				return err
			}); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
	if err != nil {
		return BackupManifest{}, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

func addEntry(tw *tar.Writer, name string, size int64, at time.Time, body func(io.Writer) error) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: at, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := body(tw); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// extracted is a backup unpacked next to where it will be restored.
type extracted struct {
	manifest  BackupManifest
	statePath string // temporary file in the state file's directory
	keyPath   string // temporary file in the key's directory; "" if none
}

func (e *extracted) remove() {
	_ = os.Remove(e.statePath)
	if e.keyPath != "" {
		_ = os.Remove(e.keyPath)
	}
}

// extract unpacks the backup in r into temporary files in the directories
// of path and keyFile, so each can later be renamed into place.
func extract(r io.Reader, path, keyFile string) (_ *extracted, err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a dockerfaasd backup (gzip): %w", err)
	}
	tr := tar.NewReader(gz)
	e := &extracted{}
	defer func() {
		if err != nil {
			e.remove()
		}
	}()
	var seenManifest bool
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a dockerfaasd backup (tar): %w", err)
		}
		switch h.Name {
		case backupManifestName:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&e.manifest); err != nil {
				return nil, fmt.Errorf("backup manifest: %w", err)
			}
			seenManifest = true
		case backupStateName:
			if e.statePath, err = writeTemp(filepath.Dir(path), filepath.Base(path), tr); err != nil {
				return nil, err
			}
		case backupKeyName:
			if e.keyPath, err = writeTemp(filepath.Dir(keyFile), filepath.Base(keyFile), io.LimitReader(tr, SecretKeySize+1)); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case !seenManifest:
		return nil, errors.New("not a dockerfaasd backup: no manifest")
	case e.manifest.Format != backupFormat:
		return nil, fmt.Errorf("backup format %d: this dockerfaasd reads format %d", e.manifest.Format, backupFormat)
	case e.statePath == "":
		return nil, errors.New("backup holds no state file")
	case e.manifest.SecretsKey && e.keyPath == "":
		return nil, errors.New("backup manifest lists a secrets key the archive does not hold")
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("backup archive: %w", err)
	}
	return e, nil
}

// writeTemp copies r into a new synced file (mode 0600) in dir.
func writeTemp(dir, base string, r io.Reader) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+base+".restore-*")
	if err != nil {
		return "", fmt.Errorf("restore %s: %w", base, err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("restore %s: %w", base, err)
	}
	return f.Name(), nil
}

// verify opens the extracted state file read-only and checks it the way
// the daemon would read it: a schema this dockerfaasd knows, every record
// decoding, every secret opening with the extracted key.
func (e *extracted) verify() error {
	db, err := safeOpen(e.statePath, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("the state file in the backup cannot be read: %w", err)
	}
	defer db.Close()
	if err := checkTruncated(db); err != nil {
		return fmt.Errorf("the state file in the backup: %w", err)
	}
	var schema uint64
	if err := db.View(func(tx *bolt.Tx) error {
		schema, err = readSchema(tx)
		return err
	}); err != nil {
		return err
	}
	if schema == 0 {
		return errors.New("the state file in the backup records no schema version")
	}
	if err := checkSchema(schema, schemaVersion); err != nil {
		return err
	}
	s := newBolt(db, nil)
	if e.keyPath != "" {
		key, err := readKey(e.keyPath)
		if err != nil {
			return fmt.Errorf("the secrets key in the backup: %w", err)
		}
		if s.sealer, err = newSealer(key); err != nil {
			return err
		}
	} else {
		s.sealer = randomSealer() // any secret then fails Check, as it should
	}
	if err := checkSecretsKey(&s.engine, s.sealer, "in the backup", false); err != nil {
		return err
	}
	if err := s.Check(); err != nil {
		return fmt.Errorf("the state file in the backup fails its check: %w", err)
	}
	return nil
}

// RestoreResult says what Restore replaced.
type RestoreResult struct {
	Manifest BackupManifest
	// StateBackup and KeyBackup are where the files replaced were kept
	// ("" when there was none).
	StateBackup, KeyBackup string
}

// Restore replaces the state file at path and the secrets key at keyFile
// with those of the backup in r. The backup is unpacked next to them and
// checked first (a schema newer than this dockerfaasd, or a record that
// does not read, refuses it, with nothing changed); then each file is
// swapped in with a rename, the one it replaces kept as NAME.bak-<now>. A
// daemon running on path makes it fail with ErrLocked: stop it first.
func Restore(ctx context.Context, r io.Reader, path, keyFile string, now time.Time) (RestoreResult, error) {
	unlock, err := lockFile(path, lockTimeout)
	if err != nil {
		return RestoreResult{}, err
	}
	defer unlock()
	e, err := extract(r, path, keyFile)
	if err != nil {
		return RestoreResult{}, err
	}
	defer e.remove() // after the renames, nothing is left to remove
	if err := e.verify(); err != nil {
		return RestoreResult{}, fmt.Errorf("backup refused: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult{Manifest: e.manifest}
	stamp := now.UTC().Format("20060102T150405Z")
	if res.StateBackup, err = swapIn(e.statePath, path, stamp); err != nil {
		return res, err
	}
	if e.keyPath != "" {
		if res.KeyBackup, err = swapIn(e.keyPath, keyFile, stamp); err != nil {
			return res, fmt.Errorf("the state file was restored, but not its secrets key: %w", err)
		}
	}
	return res, nil
}

// swapIn renames tmp to dst, keeping dst's previous content as a hard
// link dst.bak-stamp, and syncs the directory so the swap is durable.
func swapIn(tmp, dst, stamp string) (kept string, err error) {
	if _, err := os.Lstat(dst); err == nil {
		kept = dst + ".bak-" + stamp
		if err := os.Link(dst, kept); err != nil {
			return "", fmt.Errorf("keep %s: %w", dst, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return kept, fmt.Errorf("restore %s: %w", dst, err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return kept, nil
}

// lockFile takes the lock a daemon holds on the state file at path
// (bbolt's flock), waiting up to timeout, so that Restore never swaps the
// file under a running daemon. A missing file needs no lock.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("state file %s: %w: stop it before restoring", path, ErrLocked)
			}
			return nil, fmt.Errorf("lock state file %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// VerifyBackup reads the backup in r and checks it as Restore would,
// changing nothing: a client that downloaded one knows it is whole before
// keeping it.
func VerifyBackup(r io.Reader) (BackupManifest, error) {
	dir, err := os.MkdirTemp("", "dockerfaasd-verify-*")
	if err != nil {
		return BackupManifest{}, err
	}
	defer os.RemoveAll(dir)
	e, err := extract(r, filepath.Join(dir, backupStateName), filepath.Join(dir, backupKeyName))
	if err != nil {
		return BackupManifest{}, err
	}
	defer e.remove()
	if err := e.verify(); err != nil {
		return BackupManifest{}, err
	}
	return e.manifest, nil
}
