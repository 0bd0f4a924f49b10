package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/client"
)

// allSentinels is every sentinel with the code it stands for.
var allSentinels = map[string]error{
	"invalid_name": client.ErrInvalidName, "invalid_key": client.ErrInvalidKey,
	"invalid_json": client.ErrInvalidJSON, "invalid_parameter": client.ErrInvalidParameter,
	"invalid_header": client.ErrInvalidHeader, "sql_error": client.ErrSQL,
	"sql_transaction_control": client.ErrSQLTransactionControl, "sql_timeout": client.ErrSQLTimeout,
	"unauthorized": client.ErrUnauthorized, "forbidden": client.ErrForbidden,
	"sql_forbidden": client.ErrSQLForbidden, "not_found": client.ErrNotFound,
	"method_not_allowed": client.ErrMethodNotAllowed, "conflict": client.ErrConflict,
	"not_a_number": client.ErrNotANumber, "idempotency_key_reused": client.ErrIdempotencyKeyReused,
	"precondition_failed": client.ErrPreconditionFailed, "too_large": client.ErrTooLarge,
	"overloaded": client.ErrOverloaded, "internal": client.ErrInternal,
	"unavailable": client.ErrUnavailable, "commit_unknown": client.ErrCommitUnknown,
	"object_full": client.ErrObjectFull, "not_modified": client.ErrNotModified,
}

// checkCode asserts that err is an *Error with status and code, and that
// it matches the sentinel of its code and no other.
func checkCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v (%T), want a *client.Error %d %s", what, err, err, status, code)
	}
	if ce.Status != status || ce.Code != code {
		t.Fatalf("%s: %d %s (%v), want %d %s", what, ce.Status, ce.Code, err, status, code)
	}
	if status != 0 && ce.Title != http.StatusText(status) {
		t.Fatalf("%s: title %q", what, ce.Title)
	}
	for c, s := range allSentinels {
		if got := errors.Is(err, s); got != (c == code) {
			t.Fatalf("%s: errors.Is(err, sentinel of %s) = %v", what, c, got)
		}
	}
}

// TestErrorCodes provokes every error code a client call can meet on a
// real node. (429, 503 and 504 are provoked in retry_test.go and
// multinode_test.go.)
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	o := object(t, c)
	if _, err := o.Put(ctx, "s", "str"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put(ctx, "k", 1, client.IdempotencyKey("reused-key")); err != nil {
		t.Fatal(err)
	}
	small, err := client.New([]string{shared.smallURL})
	if err != nil {
		t.Fatal(err)
	}
	smallObj := small.Namespace("t").Object(o.Name() + "-small")
	if _, err := smallObj.SQL(ctx, "CREATE TABLE big(b BLOB)"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"invalid_name", func() error { return c.Namespace("Not Valid").Object("o").Get(ctx, "k", new(int)) }, 400, "invalid_name"},
		{"invalid_name/object", func() error { return c.Namespace("t").Object("").Get(ctx, "k", new(int)) }, 400, "invalid_name"},
		{"invalid_key/empty", func() error { return o.Get(ctx, "", new(int)) }, 400, "invalid_key"},
		{"invalid_key/utf8", func() error { _, err := o.Put(ctx, "\xff\xfe", 1); return err }, 400, "invalid_key"},
		{"invalid_json", func() error { _, err := o.PutBytes(ctx, "j", []byte("{nope"), "application/json"); return err }, 400, "invalid_json"},
		{"invalid_parameter/limit", func() error { _, err := o.List(ctx, client.ListOptions{Limit: 20000}); return err }, 400, "invalid_parameter"},
		{"invalid_parameter/start", func() error { _, err := o.List(ctx, client.ListOptions{Start: "a", StartAfter: "b"}); return err }, 400, "invalid_parameter"},
		{"invalid_parameter/config", func() error {
			_, err := c.Namespace("t").SetConfig(ctx, client.NamespaceConfig{AlarmTimeout: time.Hour})
			return err
		}, 400, "invalid_parameter"},
		{"invalid_header/idempotency", func() error {
			_, err := o.Put(ctx, "x", 1, client.IdempotencyKey(strings.Repeat("k", 129)))
			return err
		}, 400, "invalid_header"},
		{"invalid_header/content-type", func() error { _, err := o.PutBytes(ctx, "x", []byte("1"), "not a/media;;type"); return err }, 400, "invalid_header"},
		{"sql_error", func() error { _, err := o.SQL(ctx, "SELEKT 1"); return err }, 400, "sql_error"},
		{"sql_transaction_control", func() error { _, err := o.SQL(ctx, "BEGIN"); return err }, 400, "sql_transaction_control"},
		{"sql_timeout", func() error {
			// Own objects: a statement that times out holds its object's
			// database until it is interrupted.
			_, err := c.Namespace("t").Object(o.Name()+"-spin-write").SQL(ctx, "CREATE TABLE spin(x); WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) INSERT INTO spin SELECT i FROM r")
			return err
		}, 400, "sql_timeout"},
		{"sql_timeout/read", func() error {
			_, err := c.Namespace("t").Object(o.Name()+"-spin-read").Query(ctx, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r")
			return err
		}, 400, "sql_timeout"},
		{"sql_forbidden/attach", func() error { _, err := o.SQL(ctx, "ATTACH DATABASE 'x' AS y"); return err }, 403, "sql_forbidden"},
		{"sql_forbidden/pragma", func() error { _, err := o.Query(ctx, "PRAGMA journal_mode"); return err }, 403, "sql_forbidden"},
		{"not_found", func() error { return o.Get(ctx, "missing", new(int)) }, 404, "not_found"},
		{"not_a_number", func() error { _, err := o.Incr(ctx, "s", 1); return err }, 409, "not_a_number"},
		{"idempotency_key_reused", func() error { _, err := o.Put(ctx, "k", 2, client.IdempotencyKey("reused-key")); return err }, 409, "idempotency_key_reused"},
		{"precondition_failed", func() error { _, err := o.Put(ctx, "s", 1, client.IfAbsent()); return err }, 412, "precondition_failed"},
		{"too_large/value", func() error { _, err := o.PutBytes(ctx, "big", make([]byte, 2<<20), ""); return err }, 413, "too_large"},
		{"too_large/ops", func() error {
			ops := make([]client.Op, 129)
			for i := range ops {
				ops[i] = client.OpGet("k")
			}
			_, err := o.Tx(ctx, client.TxRequest{Ops: ops})
			return err
		}, 413, "too_large"},
		{"object_full", func() error {
			_, err := smallObj.SQL(ctx, "INSERT INTO big VALUES (zeroblob(?))", smallObjLimit+1)
			return err
		}, 507, "object_full"},
		{"not_modified", func() error {
			v, err := o.GetBytes(ctx, "s")
			if err != nil {
				return err
			}
			_, err = o.GetBytes(ctx, "s", client.IfNoneMatch(v.Version))
			return err
		}, 304, "not_modified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			checkCode(t, tc.name, err, tc.status, tc.code)
			var ce *client.Error
			errors.As(err, &ce)
			if tc.status != 304 && ce.Detail == "" {
				t.Fatalf("no detail: %v", err)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Error() = %q lacks the code", err.Error())
			}
		})
	}
}

// TestAuthErrors uses the node's front end with tokens.
func TestAuthErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	anon := newClientAt(t, []string{shared.authURL})
	rw := newClientAt(t, []string{shared.authURL}, client.WithToken(tokenRW))
	ro := newClientAt(t, []string{shared.authURL}, client.WithToken(tokenRO))
	limited := newClientAt(t, []string{shared.authURL}, client.WithToken(tokenLimited))
	wrong := newClientAt(t, []string{shared.authURL}, client.WithToken("not-a-token-at-all"))
	name := fmt.Sprintf("%s-%d", t.Name(), objSeq.Add(1))

	if _, err := rw.Namespace("t").Object(name).Put(ctx, "k", 1); err != nil {
		t.Fatalf("readwrite Put: %v", err)
	}
	if _, err := rw.Namespace("t").Object(name).SQL(ctx, "CREATE TABLE x(a)"); err != nil {
		t.Fatalf("readwrite SQL: %v", err)
	}
	var n int
	if err := ro.Namespace("t").Object(name).Get(ctx, "k", &n); err != nil || n != 1 {
		t.Fatalf("readonly Get = %d, %v", n, err)
	}
	if _, err := ro.Namespace("t").Object(name).Query(ctx, "SELECT count(*) FROM x"); err != nil {
		t.Fatalf("readonly Query: %v", err)
	}
	// /healthz and /readyz are open.
	if err := anon.Healthz(ctx); err != nil {
		t.Fatalf("anonymous Healthz: %v", err)
	}
	if err := anon.Readyz(ctx); err != nil {
		t.Fatalf("anonymous Readyz: %v", err)
	}
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"no token", func() error { return anon.Namespace("t").Object(name).Get(ctx, "k", &n) }, 401, "unauthorized"},
		{"wrong token", func() error { _, err := wrong.Namespaces(ctx); return err }, 401, "unauthorized"},
		{"readonly put", func() error { _, err := ro.Namespace("t").Object(name).Put(ctx, "k", 2); return err }, 403, "forbidden"},
		{"readonly sql write", func() error {
			_, err := ro.Namespace("t").Object(name).SQL(ctx, "INSERT INTO x VALUES (1)")
			return err
		}, 403, "forbidden"},
		{"readonly alarm", func() error { return ro.Namespace("t").Object(name).SetAlarm(ctx, time.Now()) }, 403, "forbidden"},
		{"readonly config", func() error { _, err := ro.Namespace("t").SetConfig(ctx, client.NamespaceConfig{}); return err }, 403, "forbidden"},
		{"other namespace", func() error { return limited.Namespace("t").Object(name).Get(ctx, "k", &n) }, 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCode(t, tc.name, tc.call(), tc.status, tc.code) })
	}
	if _, err := limited.Namespace("allowed").Object(name).Put(ctx, "k", 1); err != nil {
		t.Fatalf("limited token in its namespace: %v", err)
	}
}

// TestErrorDecoding decodes every code from a problem answer, and answers
// that are not problems.
func TestErrorDecoding(t *testing.T) {
	t.Parallel()
	statusOf := map[string]int{"unauthorized": 401, "forbidden": 403, "sql_forbidden": 403, "not_found": 404,
		"method_not_allowed": 405, "conflict": 409, "not_a_number": 409, "idempotency_key_reused": 409,
		"precondition_failed": 412, "too_large": 413, "internal": 500, "object_full": 507}
	for code := range allSentinels {
		if code == "not_modified" || code == "overloaded" || code == "unavailable" || code == "commit_unknown" {
			continue // answered by the client or retried; see retry_test.go
		}
		status := statusOf[code]
		if status == 0 {
			status = 400
		}
		t.Run(code, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(status)
				fmt.Fprint(w, problem(status, code))
			}))
			defer ts.Close()
			c := newClientAt(t, []string{ts.URL})
			_, err := c.Namespace("t").Object("o").Put(context.Background(), "k", 1)
			checkCode(t, code, err, status, code)
		})
	}
	// A 412 of a tx carries the failing condition; Retry-After is read.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(412)
		fmt.Fprint(w, `{"type":"about:blank","title":"Precondition Failed","status":412,"code":"precondition_failed","detail":"d","condition":3}`)
	}))
	defer ts.Close()
	_, err := newClientAt(t, []string{ts.URL}).Namespace("t").Object("o").Tx(context.Background(), client.TxRequest{Ops: []client.Op{client.OpPut("k", 1)}})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Condition == nil || *ce.Condition != 3 || ce.RetryAfter != 7*time.Second || ce.Detail != "d" {
		t.Fatalf("tx 412 = %+v", ce)
	}
	// An answer that is not a problem (a proxy's page) keeps its status and
	// text, with no code.
	ts2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(418)
		fmt.Fprint(w, "<html>teapot</html>")
	}))
	defer ts2.Close()
	_, err = newClientAt(t, []string{ts2.URL}).Namespace("t").Object("o").Put(context.Background(), "k", 1)
	if !errors.As(err, &ce) || ce.Status != 418 || ce.Code != "" || ce.Detail != "<html>teapot</html>" {
		t.Fatalf("non-problem answer = %+v", ce)
	}
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			t.Fatalf("a non-problem answer matches %v", s)
		}
	}
}
