package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Role is what a token may do.
type Role string

// The roles of API.md.
const (
	RoleAdmin     Role = "admin"     // everything, including cluster membership
	RoleReadWrite Role = "readwrite" // read and write data and namespace config
	RoleReadOnly  Role = "readonly"  // read only
)

// Tokens is the set of bearer tokens a node accepts.
type Tokens struct {
	// byHash maps sha256(token) to its grant: lookups hash the presented
	// token first, so the map's comparisons leak nothing of a real token.
	byHash map[[sha256.Size]byte]grant
}

type grant struct {
	role       Role
	namespaces []string // empty: every namespace
}

// tokensFile is the JSON form of a tokens file.
type tokensFile struct {
	Tokens []struct {
		Token      string   `json:"token"`
		Role       Role     `json:"role"`
		Namespaces []string `json:"namespaces"`
	} `json:"tokens"`
}

// LoadTokens reads a tokens file (API.md, "Authentication").
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: tokens file: %w", err)
	}
	return ParseTokens(b)
}

// ParseTokens parses the JSON of a tokens file.
func ParseTokens(b []byte) (*Tokens, error) {
	var f tokensFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("api: tokens file: %w", err)
	}
	if rest := strings.TrimSpace(string(b[dec.InputOffset():])); rest != "" {
		return nil, fmt.Errorf("api: tokens file: unexpected data after the JSON object")
	}
	if len(f.Tokens) == 0 {
		return nil, fmt.Errorf("api: tokens file lists no tokens")
	}
	t := &Tokens{byHash: map[[sha256.Size]byte]grant{}}
	for i, e := range f.Tokens {
		if len(e.Token) < 16 {
			return nil, fmt.Errorf("api: tokens file: token %d is shorter than 16 characters", i)
		}
		switch e.Role {
		case RoleAdmin, RoleReadWrite, RoleReadOnly:
		default:
			return nil, fmt.Errorf("api: tokens file: token %d: role must be admin, readwrite or readonly, got %q", i, e.Role)
		}
		for _, ns := range e.Namespaces {
			if err := validNamespace(ns); err != nil {
				return nil, fmt.Errorf("api: tokens file: token %d: %v", i, err)
			}
		}
		h := sha256.Sum256([]byte(e.Token))
		if _, dup := t.byHash[h]; dup {
			return nil, fmt.Errorf("api: tokens file: token %d appears twice", i)
		}
		t.byHash[h] = grant{role: e.Role, namespaces: e.Namespaces}
	}
	return t, nil
}

// writes reports whether the request changes state, for the readonly role.
// A tx or SQL request that turns out to write is checked again once its
// body is parsed (see requireWrite).
func writes(r *http.Request, req *request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return false
	case http.MethodPost:
		// unique-id writes nothing; tx and sql are judged once parsed.
		return req.route != "tx" && req.route != "sql" && req.route != "unique-id"
	}
	return true
}

type grantKey struct{}

// authorize checks the request's bearer token, if tokens are configured, and
// returns the request with the token's grant in its context.
func (s *Server) authorize(r *http.Request, req *request) (*http.Request, error) {
	if s.tokens == nil || req.route == "healthz" || req.route == "readyz" {
		return r, nil
	}
	auth := r.Header.Get("Authorization")
	// The scheme is case-insensitive (RFC 9110, 11.1): "bearer" is Bearer.
	scheme, token, ok := strings.Cut(auth, " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	if !ok || token == "" {
		return r, newError(http.StatusUnauthorized, codeUnauthorized, "this node requires Authorization: Bearer <token>")
	}
	g, ok := s.tokens.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return r, newError(http.StatusUnauthorized, codeUnauthorized, "the token is not valid")
	}
	if req.ns != "" && len(g.namespaces) > 0 && !slices.Contains(g.namespaces, req.ns) {
		return r, newError(http.StatusForbidden, codeForbidden, "the token may not access namespace "+req.ns)
	}
	if g.role == RoleReadOnly && writes(r, req) {
		return r, newError(http.StatusForbidden, codeForbidden, "a readonly token may not write")
	}
	return r.WithContext(context.WithValue(r.Context(), grantKey{}, g)), nil
}

// requireWrite refuses a write by a readonly token; for requests (tx, SQL)
// whose body decides whether they write.
func requireWrite(r *http.Request) error {
	if g, ok := r.Context().Value(grantKey{}).(grant); ok && g.role == RoleReadOnly {
		return newError(http.StatusForbidden, codeForbidden, "a readonly token may not write")
	}
	return nil
}

// visibleNamespace reports whether the request's token may see ns.
func visibleNamespace(r *http.Request, ns string) bool {
	g, ok := r.Context().Value(grantKey{}).(grant)
	return !ok || len(g.namespaces) == 0 || slices.Contains(g.namespaces, ns)
}

// requireAdmin refuses a request whose token is not admin.
func requireAdmin(r *http.Request) error {
	if g, ok := r.Context().Value(grantKey{}).(grant); ok && g.role != RoleAdmin {
		return newError(http.StatusForbidden, codeForbidden, "only an admin token may change cluster membership")
	}
	return nil
}
