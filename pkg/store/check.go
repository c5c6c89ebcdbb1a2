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
// decode, and execution records must agree with their index. It returns
// every problem found, joined, or nil. Operators and the fault tests run
// it on a file a killed daemon left behind; it never writes.
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
		t := &txn{kv: boltTx{tx}}
		return errors.Join(
			functionRecords.check(t, nil),
			secretRecords.check(t, func(rec secretRecord) error {
				_, err := openSecret(s.sealer, rec)
				return err
			}),
			namespaceRecords.check(t, nil),
			callRecords.check(t, nil),
			callPayloads.check(t, nil),
			executionRecords.check(t, nil),
			checkExecutions(t),
			imageRecords.check(t, nil),
			addressRecords.check(t, nil),
			buildRecords.check(t, nil),
		)
	})
}
