package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHealthcheck checks the exit codes of the image's healthcheck: 0 only
// when the asked endpoint answers 200.
func TestHealthcheck(t *testing.T) {
	var ready atomic.Bool
	var asked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		if r.URL.Path == "/readyz" && !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")

	if got := healthcheck([]string{"-http-addr", addr}); got != 1 {
		t.Fatalf("not ready: exit %d, want 1", got)
	}
	if got := asked.Load(); got != "/readyz" {
		t.Fatalf("asked %v, want /readyz by default", got)
	}
	if got := healthcheck([]string{"-http-addr", addr, "-path", "/healthz"}); got != 0 {
		t.Fatalf("/healthz of a live process: exit %d, want 0", got)
	}
	ready.Store(true)
	if got := healthcheck([]string{"-http-addr", addr}); got != 0 {
		t.Fatalf("ready: exit %d, want 0", got)
	}
	t.Setenv("CAIRN_HTTP_ADDR", addr)
	if got := healthcheck(nil); got != 0 {
		t.Fatalf("address from CAIRN_HTTP_ADDR: exit %d, want 0", got)
	}
	srv.Close()
	if got := healthcheck([]string{"-http-addr", addr, "-timeout", "1s"}); got != 1 {
		t.Fatalf("no node listening: exit %d, want 1", got)
	}
	if got := healthcheck([]string{"-bogus"}); got != 2 {
		t.Fatalf("bad flag: exit %d, want 2", got)
	}
}
