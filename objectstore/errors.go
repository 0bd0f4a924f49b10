package objectstore

import (
	"errors"
	"fmt"
)

// Errors of this package. A request that fails carries one of them, wrapped
// in an *Error with the detail a client needs.
var (
	// ErrCorrupt means a stored record could not be decoded.
	ErrCorrupt = errors.New("objectstore: corrupt record")
	// ErrInvalidKey means a key is empty, too long or not UTF-8.
	ErrInvalidKey = errors.New("objectstore: invalid key")
	// ErrInvalidArgument means an option or operand of a request is invalid.
	ErrInvalidArgument = errors.New("objectstore: invalid argument")
	// ErrTooLarge means a request exceeds a size or count limit.
	ErrTooLarge = errors.New("objectstore: too large")
	// ErrPreconditionFailed means a condition of a transaction did not hold.
	ErrPreconditionFailed = errors.New("objectstore: precondition failed")
	// ErrNotANumber means incr met a value that is not a JSON number, or a
	// sum that cannot be represented.
	ErrNotANumber = errors.New("objectstore: value is not a number")
)

// Error is a failed request: the sentinel it is an instance of, a detail for
// the client and, for a failed precondition, which condition failed.
type Error struct {
	Err       error  // one of the sentinels above
	Detail    string // human-readable, safe to show a client
	Condition int    // index into Tx.If of the failed condition; -1 if none
}

func (e *Error) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Detail) }
func (e *Error) Unwrap() error { return e.Err }

func errorf(sentinel error, format string, args ...any) *Error {
	return &Error{Err: sentinel, Detail: fmt.Sprintf(format, args...), Condition: -1}
}
