package store

// LoadOrCreateKey exposes the key file logic to the external tests.
var LoadOrCreateKey = loadOrCreateKey

// SecretsBucket names the bbolt bucket secrets live in, for tests that
// tamper with the file.
var SecretsBucket = secretRecords.name
