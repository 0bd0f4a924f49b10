package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cockroachdb/pebble/v2"
)

// Namespace configuration defaults and bounds.
const (
	DefaultAlarmTimeout    = 30 * time.Second
	DefaultAlarmMaxRetries = 6
	minAlarmTimeout        = 100 * time.Millisecond
	maxAlarmTimeout        = 5 * time.Minute
	maxAlarmMaxRetries     = 100
	maxWebhookLen          = 2048
)

// namespaceJSON is a namespace's configuration as the API shows and takes it.
type namespaceJSON struct {
	Name            string  `json:"name,omitempty"`
	AlarmWebhook    *string `json:"alarmWebhook"`
	AlarmTimeout    string  `json:"alarmTimeout,omitempty"`
	AlarmMaxRetries *int    `json:"alarmMaxRetries,omitempty"`
}

func defaultNamespaceConfig() objectstore.NamespaceConfig {
	return objectstore.NamespaceConfig{AlarmTimeout: DefaultAlarmTimeout, AlarmMaxRetries: DefaultAlarmMaxRetries}
}

func renderNamespace(ns string, c objectstore.NamespaceConfig) namespaceJSON {
	out := namespaceJSON{Name: ns, AlarmTimeout: c.AlarmTimeout.String(), AlarmMaxRetries: &c.AlarmMaxRetries}
	if c.AlarmWebhook != "" {
		out.AlarmWebhook = &c.AlarmWebhook
	}
	return out
}

// namespaceConfig reads ns's configuration, or the defaults if it has none.
func (s *Server) namespaceConfig(r *http.Request, ns string) (objectstore.NamespaceConfig, error) {
	shard, err := placement.NamespaceShard(ns, s.b.ShardCount())
	if err != nil {
		return objectstore.NamespaceConfig{}, err
	}
	c := defaultNamespaceConfig()
	err = s.read(r, shard, func(rd pebble.Reader) error {
		got, found, err := objectstore.GetNamespaceConfig(rd, shard, ns)
		if found {
			c = got
		}
		return err
	})
	return c, err
}

// getNamespace answers GET /v1/ns/{ns}.
func (s *Server) getNamespace(w http.ResponseWriter, r *http.Request, req *request) error {
	c, err := s.namespaceConfig(r, req.ns)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderNamespace(req.ns, c))
	return nil
}

// putNamespace answers PUT /v1/ns/{ns}: the body replaces the whole
// configuration; a field left out takes its default.
func (s *Server) putNamespace(w http.ResponseWriter, r *http.Request, req *request) error {
	var in namespaceJSON
	if err := strictUnmarshal(req.body, &in, "the namespace body"); err != nil {
		return err
	}
	if in.Name != "" && in.Name != req.ns {
		return badRequest(codeInvalidParameter, "the body names namespace "+in.Name+" but the path names "+req.ns)
	}
	c, err := in.config()
	if err != nil {
		return err
	}
	// The copy in the namespace's own shard is the one clients read; its
	// entry's index becomes the configuration's version, and every other
	// shard gets a copy with that version (alarm delivery on a shard's
	// leader reads the shard's own copy). A copy is replaced only by a newer
	// version, so copies converge whatever order the writes land in.
	resp, err := s.propose(w, r, req, req.shard, &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: req.ns, NamespaceConfig: &c})
	if err != nil {
		return err
	}
	c.Version = resp.Tx.Version
	if err := s.copyNamespaceConfig(r, req, c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderNamespace(req.ns, c))
	return nil
}

// internalNamespaceConfig is the body of PUT
// /v1/internal/shards/{id}/namespace-config?ns=: a versioned copy.
type internalNamespaceConfig struct {
	AlarmWebhook    string `json:"alarmWebhook"`
	AlarmTimeoutNs  int64  `json:"alarmTimeoutNs"`
	AlarmMaxRetries int    `json:"alarmMaxRetries"`
	Version         uint64 `json:"version"`
}

// copyNamespaceConfig writes c to every shard but the namespace's own, in
// parallel.
func (s *Server) copyNamespaceConfig(r *http.Request, req *request, c objectstore.NamespaceConfig) error {
	body, _ := json.Marshal(internalNamespaceConfig{
		AlarmWebhook: c.AlarmWebhook, AlarmTimeoutNs: int64(c.AlarmTimeout), AlarmMaxRetries: c.AlarmMaxRetries, Version: c.Version,
	})
	errs := make(chan error, s.b.ShardCount())
	n := 0
	for shard := 0; shard < s.b.ShardCount(); shard++ {
		if uint32(shard) == req.shard {
			continue
		}
		n++
		go func() {
			path := fmt.Sprintf("/v1/internal/shards/%d/namespace-config?ns=%s", shard, req.ns)
			errs <- s.localCall(r, http.MethodPut, path, body, &struct{}{})
		}()
	}
	var failed error
	for ; n > 0; n-- {
		if err := <-errs; err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		e := newError(http.StatusServiceUnavailable, codeUnavailable,
			"the configuration is saved but not yet copied to every shard (alarms of some objects may still use the old one); repeat the request: "+failed.Error())
		e.retryAfter = 1
		return e
	}
	return nil
}

// shardNamespaceConfig answers PUT /v1/internal/shards/{id}/namespace-config:
// one shard's copy of a namespace's configuration.
func (s *Server) shardNamespaceConfig(w http.ResponseWriter, r *http.Request, req *request) error {
	ns := r.URL.Query().Get("ns")
	if err := validNamespace(ns); err != nil {
		return err
	}
	if !visibleNamespace(r, ns) {
		return newError(http.StatusForbidden, codeForbidden, "the token may not access namespace "+ns)
	}
	var in internalNamespaceConfig
	if err := strictUnmarshal(req.body, &in, "the namespace copy"); err != nil {
		return err
	}
	if in.Version == 0 {
		return badRequest(codeInvalidParameter, "a copy needs a version")
	}
	if in.AlarmWebhook != "" {
		if err := validWebhook(in.AlarmWebhook); err != nil {
			return err
		}
	}
	if d := time.Duration(in.AlarmTimeoutNs); d < minAlarmTimeout || d > maxAlarmTimeout || in.AlarmMaxRetries < 0 || in.AlarmMaxRetries > maxAlarmMaxRetries {
		return badRequest(codeInvalidParameter, "the copy's alarm settings are out of range")
	}
	c := objectstore.NamespaceConfig{AlarmWebhook: in.AlarmWebhook, AlarmTimeout: time.Duration(in.AlarmTimeoutNs), AlarmMaxRetries: in.AlarmMaxRetries, Version: in.Version}
	if _, err := s.propose(w, r, req, req.shard, &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: ns, NamespaceConfig: &c}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// config validates the body and fills in defaults.
func (in namespaceJSON) config() (objectstore.NamespaceConfig, error) {
	c := defaultNamespaceConfig()
	if in.AlarmWebhook != nil && *in.AlarmWebhook != "" {
		if err := validWebhook(*in.AlarmWebhook); err != nil {
			return c, err
		}
		c.AlarmWebhook = *in.AlarmWebhook
	}
	if in.AlarmTimeout != "" {
		d, err := time.ParseDuration(in.AlarmTimeout)
		if err != nil || d < minAlarmTimeout || d > maxAlarmTimeout {
			return c, badRequest(codeInvalidParameter, fmt.Sprintf("alarmTimeout must be a duration between %v and %v, such as \"30s\"", minAlarmTimeout, maxAlarmTimeout))
		}
		c.AlarmTimeout = d
	}
	if in.AlarmMaxRetries != nil {
		if *in.AlarmMaxRetries < 0 || *in.AlarmMaxRetries > maxAlarmMaxRetries {
			return c, badRequest(codeInvalidParameter, fmt.Sprintf("alarmMaxRetries must be between 0 and %d", maxAlarmMaxRetries))
		}
		c.AlarmMaxRetries = *in.AlarmMaxRetries
	}
	return c, nil
}

func validWebhook(s string) error {
	if len(s) > maxWebhookLen {
		return badRequest(codeInvalidParameter, fmt.Sprintf("alarmWebhook is at most %d bytes", maxWebhookLen))
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return badRequest(codeInvalidParameter, "alarmWebhook must be an absolute http:// or https:// URL without credentials or fragment")
	}
	return nil
}

// listNamespaces answers GET /v1/ns: every namespace that is configured or
// holds objects, with its configuration.
func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request, _ *request) error {
	var names []string
	for shard := 0; shard < s.b.ShardCount(); shard++ {
		var page struct {
			Namespaces []string `json:"namespaces"`
		}
		if err := s.localCall(r, http.MethodGet, fmt.Sprintf("/v1/internal/shards/%d/namespaces", shard), nil, &page); err != nil {
			return err
		}
		names = append(names, page.Namespaces...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := struct {
		Namespaces []namespaceJSON `json:"namespaces"`
	}{Namespaces: []namespaceJSON{}}
	for _, ns := range names {
		if !visibleNamespace(r, ns) {
			continue
		}
		var one namespaceJSON
		if err := s.localCall(r, http.MethodGet, "/v1/ns/"+ns, nil, &one); err != nil {
			return err
		}
		out.Namespaces = append(out.Namespaces, one)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// shardNamespaces answers GET /v1/internal/shards/{id}/namespaces: the
// namespaces one shard holds objects or configuration of.
func (s *Server) shardNamespaces(w http.ResponseWriter, r *http.Request, req *request) error {
	var names []string
	err := s.read(r, req.shard, func(rd pebble.Reader) (err error) {
		names, err = objectstore.ListNamespaces(rd, req.shard)
		return err
	})
	if err != nil {
		return err
	}
	visible := []string{}
	for _, ns := range names {
		if visibleNamespace(r, ns) {
			visible = append(visible, ns)
		}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"namespaces": visible})
	return nil
}
