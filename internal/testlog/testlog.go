// Package testlog gives tests a logger that writes to t.Log until the test
// ends. Goroutines of a library can outlive a node's Close (memberlist's
// probes do), and a t.Log after the test has completed makes the test
// binary panic; what is logged after the end is dropped.
package testlog

import (
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// New returns a logger of at least level (or of the level CAIRN_TEST_LOG
// names: debug, info, warn, error) writing to t.Log.
func New(t testing.TB, level slog.Level) *slog.Logger {
	if v := os.Getenv("CAIRN_TEST_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Pebble is a pebble.Logger for tests: it drops Pebble's informational
// messages, prints its errors, and panics on a fatal one so that the test
// stops loudly.
type Pebble struct{}

func (Pebble) Infof(string, ...any)           {}
func (Pebble) Errorf(format string, a ...any) { log.Printf("pebble: "+format, a...) }
func (Pebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf("pebble: "+format, a...)) }
