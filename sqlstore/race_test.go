//go:build race

package sqlstore

// raceEnabled is set when the tests run under the race detector, which makes
// the SQLite library (Go translated from WebAssembly) some 30 times slower.
const raceEnabled = true
