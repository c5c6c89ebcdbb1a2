package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the whole state file in one read transaction: bbolt's own
// consistency check of pages and free lists, then every record the daemon
// reads on start. Each function must decode and sit under its own key, each
// secret must decode and decrypt with the current key, each namespace must
// decode. It returns every problem found, joined, or nil. Operators and the
// fault tests run it on a file a killed daemon left behind; it never writes.
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, fmt.Errorf("bbolt: %w", err))
		}
		if len(errs) > 0 {
			// Reading records from damaged pages could fault; the page
			// errors say enough.
			return errors.Join(errs...)
		}
		errs = append(errs, checkBucket(tx, functionsBucket, func(k, v []byte) error {
			f, err := decode(string(k), v)
			if err == nil && f.Key() != string(k) {
				err = fmt.Errorf("function %q: record is for %q", k, f.Key())
			}
			return err
		}))
		errs = append(errs, checkBucket(tx, secretsBucket, func(k, v []byte) error {
			rec, err := decodeSecret(string(k), v)
			if err != nil {
				return err
			}
			if rec.Key() != string(k) {
				return fmt.Errorf("secret %q: record is for %q", k, rec.Key())
			}
			_, err = openSecret(s.sealer, rec)
			return err
		}))
		errs = append(errs, checkBucket(tx, namespacesBucket, func(k, v []byte) error {
			ns, err := decodeNamespace(string(k), v)
			if err == nil && ns.Name != string(k) {
				err = fmt.Errorf("namespace %q: record is for %q", k, ns.Name)
			}
			return err
		}))
		return errors.Join(errs...)
	})
}

// checkBucket runs check on every key of the named bucket, which must exist.
func checkBucket(tx *bolt.Tx, name []byte, check func(k, v []byte) error) error {
	b := tx.Bucket(name)
	if b == nil {
		return fmt.Errorf("bucket %s is missing", name)
	}
	var errs []error
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket, not a record
		}
		if err := check(k, v); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}
