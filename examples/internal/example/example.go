// Package example holds what every example program does the same way:
// connect to the cluster named by the environment, make the run's object
// names unique, and stop with "FAIL: …" and exit status 1 when a promise
// did not hold.
package example

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cairndb/cairn/client"
)

// Connect returns a client of the cluster at CAIRN_URL (comma-separated
// endpoints; default http://127.0.0.1:8080), with CAIRN_TOKEN if set.
// WithIdempotency makes every write safe to retry after a lost answer: a
// retried write is not applied twice.
func Connect() *client.Client {
	url := os.Getenv("CAIRN_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	c, err := client.New(strings.Split(url, ","), client.WithToken(os.Getenv("CAIRN_TOKEN")), client.WithIdempotency())
	Check(err)
	return c
}

// Suffix makes a run's object names unique (newUniqueId), so an example
// can run again and again against the same cluster.
func Suffix(ctx context.Context, ns *client.Namespace) string {
	o, err := ns.UniqueID(ctx)
	Check(err)
	return o.Name()[:12]
}

// Check stops the program when err is not nil.
func Check(err error) {
	if err != nil {
		Fail("%v", err)
	}
}

// Fail prints "FAIL: " and the message on stderr and exits with status 1.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}
