package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/objectstore"
)

// Stable, machine-readable error codes of the HTTP API (the "code" member of
// every problem+json answer).
const (
	codeInvalidName      = "invalid_name"
	codeInvalidKey       = "invalid_key"
	codeInvalidJSON      = "invalid_json"
	codeInvalidParameter = "invalid_parameter"
	codeInvalidHeader    = "invalid_header"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeNotANumber       = "not_a_number"
	codePrecondition     = "precondition_failed"
	codeTooLarge         = "too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeOverloaded       = "overloaded"
	codeInternal         = "internal"
	codeNotImplemented   = "not_implemented"
	codeUnavailable      = "unavailable"
	codeCommitUnknown    = "commit_unknown"
	codeIdempotencyReuse = "idempotency_key_reused"
	codeSQLError         = "sql_error"
	codeSQLForbidden     = "sql_forbidden"
	codeSQLTxControl     = "sql_transaction_control"
	codeSQLTimeout       = "sql_timeout"
	codeObjectFull       = "object_full"
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// Condition is the index, in the tx's "if" list, of the condition that
	// failed (412 only).
	Condition *int `json:"condition,omitempty"`
}

// apiError is an error that knows its HTTP answer.
type apiError struct {
	status     int
	code       string
	detail     string
	condition  *int
	retryAfter int // seconds; 0 for no Retry-After header
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

func newError(status int, code, detail string) *apiError {
	return &apiError{status: status, code: code, detail: detail}
}

func badRequest(code, detail string) *apiError { return newError(http.StatusBadRequest, code, detail) }

// writeProblem writes err as problem+json, translating the errors of the
// packages below into HTTP answers. Anything it does not know is a 500
// whose detail is logged, not shown.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	ae := s.toAPIError(r, err)
	if retrySafe(err) {
		// Nothing was proposed: a forwarding node may try elsewhere.
		w.Header().Set(hdrRetry, "safe")
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if ae.status == http.StatusUnauthorized {
		// RFC 9110, 11.6.1: a 401 names the scheme the client must use.
		w.Header().Set("WWW-Authenticate", `Bearer realm="cairn"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:      "about:blank",
		Title:     http.StatusText(ae.status),
		Status:    ae.status,
		Code:      ae.code,
		Detail:    ae.detail,
		Condition: ae.condition,
	})
}

func (s *Server) toAPIError(r *http.Request, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var oe *objectstore.Error
	detail := err.Error()
	if errors.As(err, &oe) {
		detail = oe.Detail
	}
	switch {
	case errors.Is(err, objectstore.ErrPreconditionFailed):
		e := newError(http.StatusPreconditionFailed, codePrecondition, detail)
		if oe != nil && oe.Condition >= 0 {
			c := oe.Condition
			e.condition = &c
		}
		return e
	case errors.Is(err, objectstore.ErrSQL):
		return badRequest(codeSQLError, detail)
	case errors.Is(err, objectstore.ErrSQLForbidden):
		return newError(http.StatusForbidden, codeSQLForbidden, detail)
	case errors.Is(err, objectstore.ErrSQLTransactionControl):
		return badRequest(codeSQLTxControl, detail)
	case errors.Is(err, objectstore.ErrSQLTimeout):
		return badRequest(codeSQLTimeout, detail)
	case errors.Is(err, objectstore.ErrSQLBusy):
		e := newError(http.StatusServiceUnavailable, codeUnavailable, detail+"; retry shortly")
		e.retryAfter = 1
		return e
	case errors.Is(err, objectstore.ErrSQLFull):
		return newError(http.StatusInsufficientStorage, codeObjectFull, detail)
	case errors.Is(err, objectstore.ErrIdempotencyMismatch):
		return newError(http.StatusConflict, codeIdempotencyReuse, detail)
	case errors.Is(err, objectstore.ErrNotANumber):
		return newError(http.StatusConflict, codeNotANumber, detail)
	case errors.Is(err, objectstore.ErrInvalidKey):
		return badRequest(codeInvalidKey, detail)
	case errors.Is(err, objectstore.ErrInvalidArgument):
		return badRequest(codeInvalidParameter, detail)
	case errors.Is(err, objectstore.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, codeTooLarge, detail)
	case errors.Is(err, cluster.ErrCommitUnknown):
		return newError(http.StatusGatewayTimeout, codeCommitUnknown,
			"the write was proposed but its outcome is unknown: it may or may not have been applied")
	case errors.Is(err, cluster.ErrOverloaded):
		e := newError(http.StatusTooManyRequests, codeOverloaded, "the shard's write queue is full; retry later")
		e.retryAfter = 1
		return e
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader),
		errors.Is(err, cluster.ErrShardNotReady), errors.Is(err, cluster.ErrUnknownShard),
		errors.Is(err, cluster.ErrClosed), errors.Is(err, errRetrySafe):
		e := newError(http.StatusServiceUnavailable, codeUnavailable, "the object's shard has no reachable leader right now; retry shortly")
		e.retryAfter = 1
		return e
	case errors.Is(err, errDeadline):
		e := newError(http.StatusServiceUnavailable, codeUnavailable, "the request did not complete within its deadline; retry shortly")
		e.retryAfter = 1
		return e
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	return newError(http.StatusInternalServerError, codeInternal, "internal error")
}

var errDeadline = errors.New("api: deadline exceeded")
