package store

import (
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// A migration rewrites a state file of one schema version into the next
// one, inside one write transaction: migrations[i] takes schema i+1 to i+2.
// It must leave every record in the shape the next version reads; the
// schema key is bumped by migrate in the same transaction, so a crash
// leaves the file either wholly before or wholly after one step.
type migration func(tx *bolt.Tx) error

// migrations are the forward steps from schema 1 to schemaVersion, in
// order. Schema 1 is the first recorded one, so there are none yet; the
// next layout change appends its step here and bumps schemaVersion
// (TestMigrationsReachSchemaVersion keeps the two in step).
var migrations []migration

// ErrSchemaTooNew means the state file was written by a newer dockerfaasd
// whose layout this one does not know. The file is left untouched.
var ErrSchemaTooNew = errors.New("state file schema is newer than this dockerfaasd")

// schemaTooNewError says which versions are involved and what to do.
type schemaTooNewError struct{ got, known uint64 }

func (e schemaTooNewError) Error() string {
	return fmt.Sprintf("state file schema %d is newer than this dockerfaasd (knows up to %d): upgrade dockerfaasd or restore a backup", e.got, e.known)
}

func (e schemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// readSchema returns the schema version recorded in tx, 0 when none is (a
// file just created, whose schema initSchema writes).
func readSchema(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(schemaKey)
	if v == nil {
		return 0, nil
	}
	got, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || got == 0 {
		return 0, fmt.Errorf("unreadable schema version %q in the state file (this dockerfaasd knows up to %d)", v, schemaVersion)
	}
	return got, nil
}

// checkSchema fails with ErrSchemaTooNew when version is beyond known.
func checkSchema(version, known uint64) error {
	if version > known {
		return schemaTooNewError{got: version, known: known}
	}
	return nil
}

// migrate brings the file in db to the schema steps lead to (len(steps)+1),
// one transaction per step. A file of a newer schema is refused before
// anything is written, and a file with no schema yet is left for
// initSchema. It returns the version found and the version now recorded.
func migrate(db *bolt.DB, steps []migration) (from, to uint64, err error) {
	known := uint64(len(steps)) + 1
	if err := db.View(func(tx *bolt.Tx) error {
		from, err = readSchema(tx)
		return err
	}); err != nil {
		return 0, 0, err
	}
	if err := checkSchema(from, known); err != nil {
		return from, from, err
	}
	if from == 0 {
		return 0, 0, nil
	}
	for v := from; v < known; v++ {
		err := db.Update(func(tx *bolt.Tx) error {
			if err := steps[v-1](tx); err != nil {
				return err
			}
			return tx.Bucket(metaBucket).Put(schemaKey, []byte(strconv.FormatUint(v+1, 10)))
		})
		if err != nil {
			return from, v, fmt.Errorf("migrate state file schema %d to %d: %w", v, v+1, err)
		}
	}
	return from, known, nil
}
