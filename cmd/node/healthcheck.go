package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

// healthcheck asks a local node whether it is ready and exits 0 if so, 1 if
// not: the container image has no shell or curl, so the binary checks
// itself.
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	addr := fs.String("http-addr", envOr("CAIRN_HTTP_ADDR", "127.0.0.1:8080"), "the node's HTTP address")
	path := fs.String("path", "/readyz", "endpoint to ask: /readyz (every shard has a leader) or /healthz (process up)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get("http://" + *addr + *path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck:", *path, "answered", resp.Status)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
