package store

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// kvBackends are the backends every engine runs on. The conformance suite
// tests them through Store; these tests pin down the kv contract itself,
// which the one write path relies on: all or nothing, hooks only after a
// commit and outside the writer lock, byte-ordered scans.
func kvBackends(t *testing.T) map[string]kv {
	t.Helper()
	b, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return map[string]kv{"bolt": b.kv, "memory": NewMemory().kv}
}

var testBucket = functionRecords.name

// getIn reads key from testBucket in its own read transaction.
func getIn(t *testing.T, k kv, key string) []byte {
	t.Helper()
	var v []byte
	if err := k.view(func(tx kvTx) error {
		v = append(v, tx.bucket(testBucket).Get([]byte(key))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// seqIn returns the sequence testBucket hands out next, in a write that is
// then rolled back.
func seqIn(t *testing.T, k kv) uint64 {
	t.Helper()
	var seq uint64
	errRollback := errors.New("rollback")
	err := k.update(func(tx kvTx) error {
		var err error
		if seq, err = tx.bucket(testBucket).NextSequence(); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	return seq
}

func TestKVUpdateIsAllOrNothing(t *testing.T) {
	errOp := errors.New("op failed")
	cases := []struct {
		name  string
		fail  func() error // how the transaction ends after its writes
		panic bool
	}{
		{"Error", func() error { return errOp }, false},
		{"Panic", func() error { panic(errOp) }, true},
	}
	for _, c := range cases {
		for name, k := range kvBackends(t) {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				if err := k.update(func(tx kvTx) error { return tx.bucket(testBucket).Put([]byte("kept"), []byte("1")) }); err != nil {
					t.Fatal(err)
				}
				before := seqIn(t, k)
				hooked := false
				func() {
					defer func() {
						if r := recover(); (r != nil) != c.panic {
							t.Errorf("recovered %v, want a panic: %v", r, c.panic)
						}
					}()
					err := k.update(func(tx kvTx) error {
						b := tx.bucket(testBucket)
						tx.onCommit(func() { hooked = true })
						if _, err := b.NextSequence(); err != nil {
							return err
						}
						if err := b.Put([]byte("new"), []byte("2")); err != nil {
							return err
						}
						if err := b.Delete([]byte("kept")); err != nil {
							return err
						}
						return c.fail()
					})
					if !errors.Is(err, errOp) {
						t.Errorf("update = %v, want %v", err, errOp)
					}
				}()
				// A panic must not leave the writer lock held: this would hang.
				if got := seqIn(t, k); got != before {
					t.Errorf("sequence after a failed update: next %d, want %d", got, before)
				}
				if getIn(t, k, "new") != nil || string(getIn(t, k, "kept")) != "1" {
					t.Errorf("a failed update left changes behind")
				}
				if hooked {
					t.Errorf("commit hook ran for a failed update")
				}
			})
		}
	}
}

// TestKVCommitHooks: hooks see the committed state and run outside the
// writer lock (a hook that reads would otherwise deadlock on memKV).
func TestKVCommitHooks(t *testing.T) {
	for name, k := range kvBackends(t) {
		t.Run(name, func(t *testing.T) {
			var seen []byte
			err := k.update(func(tx kvTx) error {
				tx.onCommit(func() { seen = getIn(t, k, "k") })
				return tx.bucket(testBucket).Put([]byte("k"), []byte("v"))
			})
			if err != nil || string(seen) != "v" {
				t.Fatalf("update = %v; hook saw %q, want %q", err, seen, "v")
			}
		})
	}
}

func TestKVReadOnly(t *testing.T) {
	writes := map[string]func(b kvBucket) error{
		"Put":          func(b kvBucket) error { return b.Put([]byte("k"), []byte("v")) },
		"Delete":       func(b kvBucket) error { return b.Delete([]byte("k")) },
		"NextSequence": func(b kvBucket) error { _, err := b.NextSequence(); return err },
	}
	for name, k := range kvBackends(t) {
		for op, write := range writes {
			t.Run(name+"/"+op, func(t *testing.T) {
				err := k.view(func(tx kvTx) error { return write(tx.bucket(testBucket)) })
				if err == nil {
					t.Errorf("%s in a read transaction succeeded", op)
				}
			})
		}
	}
}

func TestKVScanAndBuckets(t *testing.T) {
	keys := []string{"b/2", "a/1", "b/1", "ba/1", "b0", "c"}
	cases := []struct {
		prefix string
		limit  int // stop after this many; 0 for all
		want   []string
	}{
		{"", 0, []string{"a/1", "b/1", "b/2", "b0", "ba/1", "c"}},
		{"b/", 0, []string{"b/1", "b/2"}},
		{"b", 0, []string{"b/1", "b/2", "b0", "ba/1"}},
		{"b", 1, []string{"b/1"}},
		{"z", 0, nil},
	}
	for name, k := range kvBackends(t) {
		err := k.update(func(tx kvTx) error {
			for _, key := range keys {
				if err := tx.bucket(testBucket).Put([]byte(key), []byte("v:"+key)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			var got []string
			_ = k.view(func(tx kvTx) error {
				var prefix []byte
				if c.prefix != "" {
					prefix = []byte(c.prefix)
				}
				tx.bucket(testBucket).scan(prefix, func(k, v []byte) bool {
					if string(v) != "v:"+string(k) {
						t.Errorf("%s: scan gave %q for %q", name, v, k)
					}
					got = append(got, string(k))
					return c.limit == 0 || len(got) < c.limit
				})
				return nil
			})
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: scan(%q, limit %d) = %q, want %q", name, c.prefix, c.limit, got, c.want)
			}
		}
		_ = k.view(func(tx kvTx) error {
			if tx.bucket([]byte("no-such-bucket")) != nil {
				t.Errorf("%s: a missing bucket is not nil", name)
			}
			for _, b := range bucketNames {
				if tx.bucket(b) == nil {
					t.Errorf("%s: bucket %s missing", name, b)
				}
			}
			return nil
		})
	}
}
