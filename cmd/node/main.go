// Command node runs one Cairn node. With no flags it is a working
// single-node cluster: data in ./data, HTTP on 127.0.0.1:8080, 16 shards.
//
// Every flag can also be set by an environment variable CAIRN_<NAME> (upper
// case, "_" for "-"); a flag on the command line wins over the variable.
//
//	go run ./cmd/node                        # a single-node cluster
//	go run ./cmd/node healthcheck            # exit 0 if the local node is ready
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the garbage collector's target unless GOGC says otherwise:
// a node's live heap is small next to the memory it runs in, and at Go's
// default of 100 a write-heavy node spends about a tenth of its CPU
// collecting.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, errHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
