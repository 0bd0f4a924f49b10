package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

func (req *request) object() objectstore.Object {
	return objectstore.Object{Shard: req.shard, Namespace: req.ns, Name: req.obj}
}

func etag(v uint64) string { return `"` + version(v) + `"` }

// getKV answers GET …/kv/{key}: the raw value, its content type and ETag.
// If-None-Match with the current version answers 304.
func (s *Server) getKV(w http.ResponseWriter, r *http.Request, req *request) error {
	var v objectstore.Value
	var found bool
	err := s.read(r, req.shard, func(rd pebble.Reader) (err error) {
		v, found, err = objectstore.GetValue(rd, req.object(), req.key)
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return newError(http.StatusNotFound, codeNotFound, "key "+strconv.Quote(truncate(req.key))+" does not exist")
	}
	h := w.Header()
	h.Set("ETag", etag(v.Version))
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			if t := strings.TrimSpace(tag); t == etag(v.Version) || t == "*" {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
		}
	}
	h.Set("Content-Type", v.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(v.Data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(v.Data)
	return nil
}

// putKV answers PUT …/kv/{key}: the body is the value.
func (s *Server) putKV(w http.ResponseWriter, r *http.Request, req *request) error {
	ct, err := normalizeContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	conds, err := preconditions(r, req.key)
	if err != nil {
		return err
	}
	body := req.body
	if ct == objectstore.ContentTypeJSON && !json.Valid(body) {
		return badRequest(codeInvalidJSON, "the body is sent as application/json but is not valid JSON")
	}
	tx := &objectstore.Tx{If: conds, Ops: []objectstore.Op{{
		Kind: objectstore.OpPut,
		Puts: []objectstore.Entry{{Key: req.key, Value: objectstore.Value{Data: body, ContentType: ct}}},
	}}}
	res, err := s.proposeTx(w, r, req, tx)
	if err != nil {
		return err
	}
	v := version(res.Version)
	w.Header()["Etag"] = []string{`"` + v + `"`}
	writeJSON(w, http.StatusOK, versionJSON{v})
	return nil
}

// versionJSON is the answer of a single-key write.
type versionJSON struct {
	Version string `json:"version"`
}

// deleteKV answers DELETE …/kv/{key}.
func (s *Server) deleteKV(w http.ResponseWriter, r *http.Request, req *request) error {
	conds, err := preconditions(r, req.key)
	if err != nil {
		return err
	}
	tx := &objectstore.Tx{If: conds, Ops: []objectstore.Op{{Kind: objectstore.OpDelete, Keys: []string{req.key}}}}
	res, err := s.proposeTx(w, r, req, tx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": res.Results[0].Count == 1, "version": version(res.Version)})
	return nil
}

// listKV answers GET …/kv with Durable Objects' list options as query
// parameters.
func (s *Server) listKV(w http.ResponseWriter, r *http.Request, req *request) error {
	opts, err := listOptionsFromQuery(r)
	if err != nil {
		return err
	}
	var res *objectstore.ListResult
	err = s.read(r, req.shard, func(rd pebble.Reader) (err error) {
		res, err = objectstore.List(rd, req.object(), opts)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderList(res, opts.KeysOnly))
	return nil
}

func listOptionsFromQuery(r *http.Request) (objectstore.ListOptions, error) {
	q := r.URL.Query()
	var l listOptionsJSON
	l.Prefix, l.Start, l.StartAfter, l.End, l.Cursor = q.Get("prefix"), q.Get("start"), q.Get("startAfter"), q.Get("end"), q.Get("cursor")
	var err error
	if l.Reverse, err = boolParam(q.Get("reverse"), "reverse"); err != nil {
		return objectstore.ListOptions{}, err
	}
	if l.KeysOnly, err = boolParam(q.Get("keysOnly"), "keysOnly"); err != nil {
		return objectstore.ListOptions{}, err
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return objectstore.ListOptions{}, badRequest(codeInvalidParameter, "limit must be an integer, got "+strconv.Quote(truncate(s)))
		}
		l.Limit = &n
	}
	return l.options()
}

func boolParam(s, name string) (bool, error) {
	switch s {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badRequest(codeInvalidParameter, name+" must be true or false, got "+strconv.Quote(truncate(s)))
}

// preconditions turns If-Match and If-None-Match into tx conditions on key.
func preconditions(r *http.Request, key string) ([]objectstore.Cond, error) {
	var conds []objectstore.Cond
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" {
		if im == "*" {
			conds = append(conds, objectstore.Cond{Kind: objectstore.CondExists, Key: key})
		} else {
			v, err := parseETag(im, "If-Match")
			if err != nil {
				return nil, err
			}
			conds = append(conds, objectstore.Cond{Kind: objectstore.CondVersionIs, Key: key, Version: v})
		}
	}
	if inm := strings.TrimSpace(r.Header.Get("If-None-Match")); inm != "" {
		if inm == "*" {
			conds = append(conds, objectstore.Cond{Kind: objectstore.CondMissing, Key: key})
		} else {
			v, err := parseETag(inm, "If-None-Match")
			if err != nil {
				return nil, err
			}
			conds = append(conds, objectstore.Cond{Kind: objectstore.CondVersionIsNot, Key: key, Version: v})
		}
	}
	return conds, nil
}

// parseETag reads one entity tag: "123" (quoted, as sent in ETag) or 123.
func parseETag(s, header string) (uint64, error) {
	t := strings.TrimPrefix(s, "W/")
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, badRequest(codeInvalidHeader, header+" must be * or one version such as \"42\", got "+strconv.Quote(truncate(s)))
	}
	return v, nil
}

// proposeTx commits tx on req's object and returns its result.
func (s *Server) proposeTx(w http.ResponseWriter, r *http.Request, req *request, tx *objectstore.Tx) (*objectstore.TxResult, error) {
	if err := tx.Validate(); err != nil {
		return nil, err
	}
	resp, err := s.propose(w, r, req, req.shard, &fsm.Command{Type: fsm.TypeTx, Namespace: req.ns, Object: req.obj, Tx: tx})
	if err != nil {
		return nil, err
	}
	return resp.Tx, nil
}
