package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMigrationsReachSchemaVersion(t *testing.T) {
	if got := len(migrations) + 1; got != schemaVersion {
		t.Fatalf("migrations reach schema %d, schemaVersion is %d: add the step, or bump the version", got, schemaVersion)
	}
}

// schemaOf reads the schema version recorded in the file at path.
func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	mustOK(t, err)
	defer db.Close()
	var v uint64
	mustOK(t, db.View(func(tx *bolt.Tx) error { v, err = readSchema(tx); return err }))
	return v
}

// plantVersion writes a schema version into the file at path.
func plantVersion(t *testing.T, path string, v string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	mustOK(t, err)
	defer db.Close()
	mustOK(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(schemaKey, []byte(v)) }))
}

// TestMigrate runs fake migration tables over a real file: each step runs
// once, in order, in its own transaction, and a failing step leaves the
// file at the version before it.
func TestMigrate(t *testing.T) {
	marker := []byte("migrated")
	step := func(n int, calls *[]int) migration {
		return func(tx *bolt.Tx) error {
			*calls = append(*calls, n)
			b, err := tx.CreateBucketIfNotExists(marker)
			if err != nil {
				return err
			}
			return b.Put([]byte(strconv.Itoa(n)), []byte("done"))
		}
	}
	failing := func(tx *bolt.Tx) error { return errors.New("step failed") }

	tests := []struct {
		name      string
		start     string // schema planted before migrate
		steps     func(calls *[]int) []migration
		wantCalls []int
		wantErr   string
		wantAfter uint64
	}{
		{"current: nothing to do", "1", func(c *[]int) []migration { return nil }, nil, "", 1},
		{"one step", "1", func(c *[]int) []migration { return []migration{step(1, c)} }, []int{1}, "", 2},
		{"two steps in order", "1", func(c *[]int) []migration { return []migration{step(1, c), step(2, c)} }, []int{1, 2}, "", 3},
		{"from the middle", "2", func(c *[]int) []migration { return []migration{step(1, c), step(2, c)} }, []int{2}, "", 3},
		{"failing step keeps the version before", "1", func(c *[]int) []migration { return []migration{step(1, c), failing} }, []int{1}, "migrate state file schema 2 to 3", 2},
		{"newer file refused", "7", func(c *[]int) []migration { return []migration{step(1, c)} }, nil,
			"state file schema 7 is newer than this dockerfaasd (knows up to 2): upgrade dockerfaasd or restore a backup", 7},
		{"garbage version", "x", func(c *[]int) []migration { return nil }, nil, "unreadable schema version", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path)
			mustOK(t, err)
			mustOK(t, s.Close())
			plantVersion(t, path, tc.start)

			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			mustOK(t, err)
			var calls []int
			_, _, err = migrate(db, tc.steps(&calls))
			mustOK(t, db.Close())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("migrate = %v, want error %q", err, tc.wantErr)
			}
			if !equalInts(calls, tc.wantCalls) {
				t.Errorf("steps run %v, want %v", calls, tc.wantCalls)
			}
			if tc.wantAfter != 0 {
				if got := schemaOf(t, path); got != tc.wantAfter {
					t.Errorf("schema after = %d, want %d", got, tc.wantAfter)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOpenRefusesNewerSchema: the exact message, and the file is not
// modified at all.
func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	mustOK(t, err)
	mustOK(t, s.Close())
	plantVersion(t, path, strconv.Itoa(schemaVersion+6))
	before, err := os.ReadFile(path)
	mustOK(t, err)
	st0, err := os.Stat(path)
	mustOK(t, err)

	_, err = Open(path)
	want := "state file schema " + strconv.Itoa(schemaVersion+6) + " is newer than this dockerfaasd (knows up to " + strconv.Itoa(schemaVersion) + "): upgrade dockerfaasd or restore a backup"
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew saying %q", err, want)
	}
	after, err := os.ReadFile(path)
	mustOK(t, err)
	st1, err := os.Stat(path)
	mustOK(t, err)
	if !bytes.Equal(before, after) || !st0.ModTime().Equal(st1.ModTime()) {
		t.Error("Open modified a file of a newer schema")
	}
}

// TestOpenRefusesCorruptFile: a damaged state file stops Open with a
// message naming it and suggesting restore, and is left byte for byte.
func TestOpenRefusesCorruptFile(t *testing.T) {
	valid := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path)
		mustOK(t, err)
		for i := range 50 {
			must(s.Create(t.Context(), jspec("", "fn-"+strconv.Itoa(i), strings.Repeat("i", 500)), 1))(t)
		}
		mustOK(t, s.Close())
		b, err := os.ReadFile(path)
		mustOK(t, err)
		return b
	}
	tests := []struct {
		name    string
		content func(t *testing.T) []byte
	}{
		{"empty", func(t *testing.T) []byte { return nil }},
		{"garbage", func(t *testing.T) []byte { return bytes.Repeat([]byte("garbage!"), 2048) }},
		{"truncated", func(t *testing.T) []byte { b := valid(t); return b[:len(b)/2] }},
		{"short", func(t *testing.T) []byte { return valid(t)[:100] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			content := tc.content(t)
			mustOK(t, os.WriteFile(path, content, 0o600))
			s, err := Open(path)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open of a damaged file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "dockerfaasd restore") {
				t.Errorf("Open = %v, want ErrCorrupt naming %s and suggesting restore", err, path)
			}
			after, rerr := os.ReadFile(path)
			mustOK(t, rerr)
			if !bytes.Equal(after, content) {
				t.Error("Open changed the damaged file")
			}
		})
	}
}

// failingKV is a backend whose commits fail after the transaction ran,
// as a full disk makes bbolt's fail: the write is rolled back.
type failingKV struct {
	kv
	err error
}

func (f failingKV) update(fn func(kvTx) error) error {
	return f.kv.update(func(tx kvTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return f.err
	})
}

func (f failingKV) batch(fn func(kvTx) error) error { return f.update(fn) }

func TestWriteFailureIsNotStored(t *testing.T) {
	m := NewMemory()
	must(m.Create(t.Context(), jspec("", "before", "img"), 1))(t)
	inner := m.kv
	fail := &failingKV{kv: inner, err: &os.PathError{Op: "write", Path: "state.db", Err: syscall.ENOSPC}}
	m.kv = fail

	_, err := m.Create(t.Context(), jspec("", "after", "img"), 1)
	if !errors.Is(err, ErrNotStored) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create on a full disk = %v, want ErrNotStored wrapping ENOSPC", err)
	}
	if err := m.Delete(t.Context(), Key(DefaultNamespace, "before")); !errors.Is(err, ErrNotStored) {
		t.Fatalf("Delete on a full disk = %v, want ErrNotStored", err)
	}
	if _, err := m.Get(t.Context(), Key(DefaultNamespace, "after")); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed Create left a record: %v", err)
	}
	if _, err := m.Get(t.Context(), Key(DefaultNamespace, "before")); err != nil {
		t.Errorf("the failed Delete lost a record: %v", err)
	}
	// Other failures keep their own meaning.
	fail.err = ErrNotJournaled
	if _, err := m.Create(t.Context(), jspec("", "after", "img"), 1); errors.Is(err, ErrNotStored) || !errors.Is(err, ErrNotJournaled) {
		t.Errorf("Create with the journal down = %v, want ErrNotJournaled only", err)
	}
	// Space freed: writes work again.
	m.kv = inner
	must(m.Create(t.Context(), jspec("", "after", "img"), 1))(t)
}
