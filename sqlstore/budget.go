package sqlstore

import (
	"context"
	"errors"
	"time"
)

// Statement limits. The SQLite library checks its interrupt context's Err
// at every Step, every Prepare and, from its progress handler, every 1000
// VM instructions; a non-nil Err interrupts the statement (SQLITE_INTERRUPT).
//
// A write runs on every replica and must fail on all of them or on none, so
// its limit cannot be wall time: it is a budget of Err calls (stepBudget),
// spent identically wherever the same statements run on the same pages. A
// read runs on one node only and gets a wall-clock deadline.

// errBudget is what a spent stepBudget returns.
var errBudget = errors.New("sqlstore: statement step budget spent")

// stepBudget is a context.Context whose Err starts failing after a fixed
// number of calls. Only the goroutine holding the connection calls it.
type stepBudget struct {
	left int64
}

var _ context.Context = (*stepBudget)(nil)

func (b *stepBudget) Err() error {
	if b.left <= 0 {
		return errBudget
	}
	b.left--
	return nil
}

func (*stepBudget) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*stepBudget) Done() <-chan struct{}       { return nil }
func (*stepBudget) Value(any) any               { return nil }
