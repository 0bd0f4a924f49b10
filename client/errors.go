package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a failed call: an answer of the server that is not 2xx (an RFC
// 9457 problem, whose Code is the stable, machine-readable part), or a
// failure the client itself reports, which has Status 0:
//
//   - Code "commit_unknown": a write may have reached a server but no
//     answer came back (the connection broke, the deadline passed), so it
//     may or may not have been applied;
//   - Code "unavailable": no endpoint could be reached, or none answered a
//     read; nothing was applied.
//
// Compare with the sentinels: errors.Is(err, client.ErrNotFound) is true
// when err is (or wraps) an *Error whose Code is "not_found".
type Error struct {
	// Status is the HTTP status, or 0 for an error the client reports.
	Status int
	// Code is the problem's "code" ("precondition_failed", …); empty when
	// the answer was not a Cairn problem (a proxy's error page).
	Code string
	// Title is the problem's "title" (the status text).
	Title string
	// Detail is the problem's "detail": what went wrong, for a human.
	Detail string
	// Condition is, for a 412 answer to a transaction, the index in
	// TxRequest.If of the condition that failed; nil otherwise.
	Condition *int
	// RetryAfter is the server's Retry-After (429 and 503), or 0.
	RetryAfter time.Duration
	// IdempotencyKey is the key the write was sent with, if any (one the
	// client generated included). When the outcome is unknown, repeating
	// the call with the option IdempotencyKey(key) returns the first
	// outcome if it was applied, and applies it now if it was not.
	IdempotencyKey string
	// Op is the request, as "METHOD /path".
	Op string
	// Err is the underlying failure of an error the client reports (a
	// network error, context.DeadlineExceeded); nil for a server answer.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cairn: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	switch {
	case e.Status != 0 && e.Code != "":
		fmt.Fprintf(&b, "%d %s", e.Status, e.Code)
	case e.Status != 0:
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	default:
		b.WriteString(e.Code)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Condition != nil {
		fmt.Fprintf(&b, " (condition %d)", *e.Condition)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's Code.
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && e.Code != "" && s.code == e.Code
}

// Unwrap returns the underlying failure of an error the client reports.
func (e *Error) Unwrap() error { return e.Err }

// sentinel is the error value of one problem code, for errors.Is.
type sentinel struct{ code string }

func (s *sentinel) Error() string { return "cairn: " + s.code }

// Sentinels, one per problem code of the HTTP API (docs/api.md, "Error
// codes"). An *Error matches the one of its Code.
var (
	// ErrInvalidName: a namespace or object name breaks the naming rules (400).
	ErrInvalidName error = &sentinel{"invalid_name"}
	// ErrInvalidKey: a key is empty, too long or not UTF-8 (400).
	ErrInvalidKey error = &sentinel{"invalid_key"}
	// ErrInvalidJSON: a body or a value is not the JSON expected (400).
	ErrInvalidJSON error = &sentinel{"invalid_json"}
	// ErrInvalidParameter: a parameter is out of range or malformed (400).
	ErrInvalidParameter error = &sentinel{"invalid_parameter"}
	// ErrInvalidHeader: a header (Idempotency-Key, Content-Type, If-Match)
	// is malformed (400).
	ErrInvalidHeader error = &sentinel{"invalid_header"}
	// ErrSQL: SQLite refused a statement; nothing was applied (400).
	ErrSQL error = &sentinel{"sql_error"}
	// ErrSQLTransactionControl: BEGIN, COMMIT, ROLLBACK, SAVEPOINT or
	// RELEASE; a request already is one transaction (400).
	ErrSQLTransactionControl error = &sentinel{"sql_transaction_control"}
	// ErrSQLTimeout: a statement ran too long and was interrupted (400).
	ErrSQLTimeout error = &sentinel{"sql_timeout"}
	// ErrUnauthorized: no token, or an unknown one (401).
	ErrUnauthorized error = &sentinel{"unauthorized"}
	// ErrForbidden: the token's role or namespaces do not allow the call (403).
	ErrForbidden error = &sentinel{"forbidden"}
	// ErrSQLForbidden: a pragma, ATTACH, DETACH, VACUUM or a _cairn name (403).
	ErrSQLForbidden error = &sentinel{"sql_forbidden"}
	// ErrNotFound: the key (or endpoint) does not exist (404).
	ErrNotFound error = &sentinel{"not_found"}
	// ErrMethodNotAllowed: the endpoint does not take the method (405).
	ErrMethodNotAllowed error = &sentinel{"method_not_allowed"}
	// ErrConflict: the request conflicts with the cluster's state (409).
	ErrConflict error = &sentinel{"conflict"}
	// ErrNotANumber: incr on a value that is not a number, or an integer
	// overflow (409).
	ErrNotANumber error = &sentinel{"not_a_number"}
	// ErrIdempotencyKeyReused: the Idempotency-Key was used on the same
	// object for a different request (409).
	ErrIdempotencyKeyReused error = &sentinel{"idempotency_key_reused"}
	// ErrPreconditionFailed: a condition (IfVersion, IfAbsent, a tx's If)
	// did not hold; nothing was applied (412). Error.Condition says which
	// condition of a tx failed.
	ErrPreconditionFailed error = &sentinel{"precondition_failed"}
	// ErrTooLarge: a value, body, batch or result is over a limit (413).
	ErrTooLarge error = &sentinel{"too_large"}
	// ErrOverloaded: the shard's write queue is full; nothing was applied
	// (429). The client retries it (see the package doc).
	ErrOverloaded error = &sentinel{"overloaded"}
	// ErrInternal: the server failed unexpectedly (500).
	ErrInternal error = &sentinel{"internal"}
	// ErrUnavailable: no leader could be reached, or (Status 0) no endpoint
	// answered; nothing was applied (503). The client retries it.
	ErrUnavailable error = &sentinel{"unavailable"}
	// ErrCommitUnknown: the write may or may not have been applied (504,
	// or Status 0 when the client sent it and got no answer). Treat it as
	// maybe-applied; see Error.IdempotencyKey.
	ErrCommitUnknown error = &sentinel{"commit_unknown"}
	// ErrObjectFull: the object's SQL database reached its size limit (507).
	ErrObjectFull error = &sentinel{"object_full"}
	// ErrNotModified: a read with IfNoneMatch found the value unchanged
	// (304). Reported by the client; not a problem code of the server.
	ErrNotModified error = &sentinel{"not_modified"}
)

// Errors of the client itself, which are not *Error: no server answered.
var (
	// ErrNoRows is returned by Rows.One when the result has no row.
	ErrNoRows = errors.New("cairn: no rows in the result")
	// ErrInvalidCall: the client refused a call before sending anything:
	// an option the call does not take, an argument or value it cannot
	// encode, ReadOnly on a Tx with a write op. errors.Is matches it; the
	// error's text says what was wrong.
	ErrInvalidCall = errors.New("cairn: invalid call")
)

// callError is a call the client refused before sending anything.
type callError struct{ err error }

func (e *callError) Error() string        { return e.err.Error() }
func (e *callError) Unwrap() error        { return e.err }
func (e *callError) Is(target error) bool { return target == ErrInvalidCall }

// invalidCall formats the error of a call refused before sending anything.
func invalidCall(format string, args ...any) error {
	return &callError{fmt.Errorf(format, args...)}
}

// problemJSON is an RFC 9457 problem as the server writes it.
type problemJSON struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	Condition *int   `json:"condition"`
}

// maxDetail bounds the body quoted in the Detail of a non-problem answer.
const maxDetail = 512

// errorFromResponse turns a non-2xx answer into an *Error.
func errorFromResponse(op string, res *response) *Error {
	e := &Error{Status: res.status, Op: op, Title: http.StatusText(res.status)}
	if res.status == http.StatusNotModified {
		e.Code = "not_modified"
		return e
	}
	var p problemJSON
	if json.Unmarshal(res.body, &p) == nil && p.Code != "" {
		e.Code, e.Detail, e.Condition = p.Code, p.Detail, p.Condition
		if p.Title != "" {
			e.Title = p.Title
		}
	} else {
		d := strings.TrimSpace(string(res.body))
		if len(d) > maxDetail {
			d = d[:maxDetail] + "…"
		}
		e.Detail = d
	}
	e.RetryAfter = parseRetryAfter(res.header.Get("Retry-After"), time.Now())
	return e
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
