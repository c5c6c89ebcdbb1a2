package store

// Hooks for the external tests in package store_test. Those cannot live in
// package store itself: they import storetest, which imports store.

// OpenWithTimeout is Open with a chosen lock timeout, so tests of a locked
// file need not wait the full default.
var OpenWithTimeout = open

// MetaBucket and SchemaKey locate the schema version, for tests that plant
// an unsupported one.
var MetaBucket, SchemaKey = metaBucket, schemaKey
