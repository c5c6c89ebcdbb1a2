package store

import bolt "go.etcd.io/bbolt"

// NewFakeJournal returns the in-memory Journal of journal_test.go, for the
// external tests.
func NewFakeJournal() Journal { return &fakeJournal{} }

// StateOps is every bucket's records and sequence in s, byte for byte, as
// a snapshot would hold them.
func StateOps(s *Bolt) ([]Op, error) {
	var ops []Op
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ops, err = stateOps(tx)
		return err
	})
	return ops, err
}
