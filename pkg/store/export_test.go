package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Hooks for the external tests in package store_test. Those cannot live in
// package store itself: they import storetest, which imports store.

// OpenWithTimeout is Open with a chosen lock timeout, so tests of a locked
// file need not wait the full default.
var OpenWithTimeout = open

// MetaBucket and SchemaKey locate the schema version, for tests that plant
// an unsupported one.
var MetaBucket, SchemaKey = metaBucket, schemaKey

// Check runs bbolt's consistency check over the whole file and joins every
// problem it reports.
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
