package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cockroachdb/pebble/v2"
)

const (
	defaultObjectsLimit = 1000
	maxObjectsLimit     = 10000
)

type objectJSON struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// listObjects answers GET /v1/ns/{ns}/objects: the objects of the namespace
// that hold storage or an alarm, by name, across every shard.
func (s *Server) listObjects(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	limit := defaultObjectsLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxObjectsLimit {
			return badRequest(codeInvalidParameter, "limit must be an integer between 1 and "+strconv.Itoa(maxObjectsLimit))
		}
		limit = n
	}
	prefix := q.Get("prefix")
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) == 0 {
			return badRequest(codeInvalidParameter, "cursor is not one this server issued")
		}
		after = string(b)
	}
	// Each shard returns its first limit names after the cursor; the
	// smallest limit of all of them are the page.
	var names []string
	more := false
	sub := url.Values{"ns": {req.ns}, "prefix": {prefix}, "after": {after}, "limit": {strconv.Itoa(limit)}}
	if c := q.Get("consistency"); c != "" {
		sub.Set("consistency", c)
	}
	for shard := 0; shard < s.b.ShardCount(); shard++ {
		var page shardObjectsJSON
		if err := s.localCall(r, http.MethodGet, fmt.Sprintf("/v1/internal/shards/%d/objects?%s", shard, sub.Encode()), nil, &page); err != nil {
			return err
		}
		names = append(names, page.Names...)
		more = more || page.More
	}
	slices.Sort(names)
	if len(names) > limit {
		names, more = names[:limit], true
	}
	out := struct {
		Objects []objectJSON `json:"objects"`
		Cursor  *string      `json:"cursor"`
	}{Objects: make([]objectJSON, 0, len(names))}
	for _, n := range names {
		out.Objects = append(out.Objects, objectJSON{Name: n, ID: placement.ObjectID(req.ns, n)})
	}
	if more && len(names) > 0 {
		c := base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
		out.Cursor = &c
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteAll answers DELETE /v1/ns/{ns}/objects/{obj}: every key and the SQL
// database, atomically; the alarm too with ?alarm=true.
func (s *Server) deleteAll(w http.ResponseWriter, r *http.Request, req *request) error {
	alarm, err := boolParam(r.URL.Query().Get("alarm"), "alarm")
	if err != nil {
		return err
	}
	tx := &objectstore.Tx{Ops: []objectstore.Op{{Kind: objectstore.OpDeleteAll, Alarm: alarm}}}
	res, err := s.proposeTx(w, r, req, tx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": version(res.Version)})
	return nil
}

// uniqueID answers POST /v1/ns/{ns}/unique-id: a fresh random object name
// (Durable Objects' newUniqueId).
func (s *Server) uniqueID(w http.ResponseWriter, r *http.Request, req *request) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	name := hex.EncodeToString(b[:])
	writeJSON(w, http.StatusOK, objectJSON{Name: name, ID: placement.ObjectID(req.ns, name)})
	return nil
}

// shardObjectsJSON is one shard's part of an object listing.
type shardObjectsJSON struct {
	Names []string `json:"names"`
	More  bool     `json:"more"`
}

// shardObjects answers GET /v1/internal/shards/{id}/objects: the objects of
// one shard (ns, prefix, after, limit), served by its leader.
func (s *Server) shardObjects(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	ns := q.Get("ns")
	if err := validNamespace(ns); err != nil {
		return err
	}
	if !visibleNamespace(r, ns) {
		return newError(http.StatusForbidden, codeForbidden, "the token may not access namespace "+ns)
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > maxObjectsLimit {
		return badRequest(codeInvalidParameter, "limit must be an integer between 1 and "+strconv.Itoa(maxObjectsLimit))
	}
	out := shardObjectsJSON{Names: []string{}}
	err = s.read(r, req.shard, func(rd pebble.Reader) (err error) {
		out.Names, out.More, err = objectstore.ListObjects(rd, req.shard, ns, q.Get("prefix"), q.Get("after"), limit)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
