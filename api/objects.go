package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
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
	for shard := uint32(0); shard < uint32(s.b.ShardCount()); shard++ {
		err := s.read(r, shard, func(rd pebble.Reader) error {
			got, m, err := objectstore.ListObjects(rd, shard, req.ns, prefix, after, limit)
			names = append(names, got...)
			more = more || m
			return err
		})
		if err != nil {
			return err
		}
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
	res, err := s.proposeTx(r, req, tx)
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
