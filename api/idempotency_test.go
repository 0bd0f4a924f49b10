package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestIdempotencyKey checks API.md's promise: a retry with the same
// Idempotency-Key on the same object returns the first response and applies
// nothing again.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "idem"
	post := func(e *env, obj, key, body string) *resp {
		return e.do("POST", objPath(ns, obj, "/tx"), []byte(body), "Content-Type", "application/json", "Idempotency-Key", key)
	}

	t.Run("tx retried", func(t *testing.T) {
		e := e.at(t)
		first := post(e, "o1", "k-1", `{"ops":[{"incr":{"key":"hits"}}]}`).want(t, http.StatusOK)
		if first.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("first answer marked as replayed")
		}
		for range 2 {
			again := post(e, "o1", "k-1", `{"ops":[{"incr":{"key":"hits"}}]}`).want(t, http.StatusOK)
			if string(again.body) != string(first.body) {
				t.Fatalf("retry answered %s, first %s", again.body, first.body)
			}
			if again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("retry not marked as replayed: %v", again.header)
			}
		}
		e.wantValue(ns, "o1", "hits", "1", first.json(t)["version"].(string))
		// Another key is another request.
		post(e, "o1", "k-2", `{"ops":[{"incr":{"key":"hits"}}]}`).want(t, http.StatusOK)
		e.wantValue(ns, "o1", "hits", "2", "")
		// The same key on another object is another request too.
		post(e, "o2", "k-1", `{"ops":[{"incr":{"key":"hits"}}]}`).want(t, http.StatusOK)
		e.wantValue(ns, "o2", "hits", "1", "")
	})

	t.Run("PUT and DELETE retried", func(t *testing.T) {
		e := e.at(t)
		first := e.do("PUT", kvPath(ns, "o3", "k"), []byte("one"), "Idempotency-Key", "put-1").want(t, http.StatusOK)
		v1 := first.json(t)["version"].(string)
		v2 := e.put(ns, "o3", "k", []byte("two"), "")
		again := e.do("PUT", kvPath(ns, "o3", "k"), []byte("one"), "Idempotency-Key", "put-1").want(t, http.StatusOK)
		if string(again.body) != string(first.body) || again.header.Get("ETag") != quote(v1) {
			t.Fatalf("retried PUT answered %s (ETag %s), first %s", again.body, again.header.Get("ETag"), first.body)
		}
		e.wantValue(ns, "o3", "k", "two", v2)

		del := e.do("DELETE", kvPath(ns, "o3", "k"), nil, "Idempotency-Key", "del-1").want(t, http.StatusOK)
		if m := del.json(t); m["deleted"] != true {
			t.Fatalf("DELETE answered %v", m)
		}
		delAgain := e.do("DELETE", kvPath(ns, "o3", "k"), nil, "Idempotency-Key", "del-1").want(t, http.StatusOK)
		if string(delAgain.body) != string(del.body) {
			t.Fatalf("retried DELETE answered %s, first %s", delAgain.body, del.body)
		}
		e.wantKeys(ns, "o3")
	})

	t.Run("a failed write is answered the same", func(t *testing.T) {
		e := e.at(t)
		body := `{"if":[{"key":"flag","exists":true}],"ops":[{"put":{"done":true}}]}`
		first := post(e, "o4", "cond-1", body)
		first.wantProblem(t, http.StatusPreconditionFailed, "precondition_failed")
		e.put(ns, "o4", "flag", []byte("1"), "")
		again := post(e, "o4", "cond-1", body)
		if p := again.wantProblem(t, http.StatusPreconditionFailed, "precondition_failed"); p.Condition == nil || *p.Condition != 0 {
			t.Fatalf("replayed 412 lost its condition: %s", again.body)
		}
		e.wantKeys(ns, "o4", "flag")
	})

	t.Run("key reused for another request", func(t *testing.T) {
		e := e.at(t)
		post(e, "o5", "reuse", `{"ops":[{"put":{"a":1}}]}`).want(t, http.StatusOK)
		post(e, "o5", "reuse", `{"ops":[{"put":{"a":2,"b":2}}]}`).wantProblem(t, http.StatusConflict, "idempotency_key_reused")
		e.wantKeys(ns, "o5", "a")
		e.wantValue(ns, "o5", "a", "1", "")
	})

	t.Run("key limits", func(t *testing.T) {
		e := e.at(t)
		post(e, "o6", strings.Repeat("k", 128), `{"ops":[{"put":{"a":1}}]}`).want(t, http.StatusOK)
		for _, key := range []string{strings.Repeat("k", 129), "tab\there", "ünï"} {
			post(e, "o6", key, `{"ops":[{"put":{"b":1}}]}`).wantProblem(t, http.StatusBadRequest, "invalid_header")
			e.do("PUT", kvPath(ns, "o6", "c"), []byte("x"), "Idempotency-Key", key).wantProblem(t, http.StatusBadRequest, "invalid_header")
		}
		e.wantKeys(ns, "o6", "a")
	})
}
