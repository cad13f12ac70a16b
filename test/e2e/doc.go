// Package e2e holds Sekisho's end-to-end tests: they build the real
// `sekisho` binary once, start it on loopback with a configuration generated
// per test, and drive it as a client, an upstream and an operator would —
// plain HTTP, raw TCP for what well-behaved clients never send, TLS with
// certificates generated in the test, signals and the admin API.
//
// Run with: go test -race -count=1 ./test/e2e/
// Set SEKISHO_E2E_RACE=1 to also build the binary under test with -race.
// -short skips the package.
package e2e
