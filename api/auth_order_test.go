package api_test

import (
	"net/http"
	"testing"

	"github.com/cairndb/cairn/api"
)

// With tokens configured, a request without one is refused before its path
// is judged: it learns nothing about which paths exist.
func TestAuthBeforePath(t *testing.T) {
	t.Parallel()
	tokens, err := api.ParseTokens([]byte(`{"tokens":[{"token":"` + roToken + `","role":"readonly"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, tokens)
	for _, path := range []string{"/v1/nope", "/v1/ns/Bad/objects", "/nowhere"} {
		e.at(t).do("GET", path, nil).wantProblem(t, http.StatusUnauthorized, "unauthorized")
	}
	// A readonly token may ask for a unique id: it writes nothing.
	e.as(roToken).at(t).do("POST", "/v1/ns/a/unique-id", nil).want(t, http.StatusOK)
}

// A 405 names the methods the endpoint allows.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	r := e.at(t).do("PATCH", kvPath("a", "o", "k"), nil)
	r.wantProblem(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD, PUT, DELETE" {
		t.Fatalf("Allow = %q", got)
	}
	e.at(t).do("HEAD", "/metrics", nil).want(t, http.StatusOK)
}
