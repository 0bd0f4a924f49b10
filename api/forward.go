package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// Any node answers any request. A request for a shard this node does not
// lead is forwarded, over HTTP, to the node that does, with its original
// method, path, query, headers and body; the leader's answer goes back as is.
// Leaders change, so the entry node follows them until the request's
// deadline:
//
//   - a forwarded request carries X-Cairn-Hops; a node that cannot serve a
//     request that already took maxHops hops answers 503 with
//     X-Cairn-Retry: safe instead of forwarding it further;
//   - any 503 with X-Cairn-Retry: safe promises that nothing was proposed,
//     so the entry node may send the request again, to whoever leads now;
//   - a write whose forwarded request was sent but whose answer never came
//     back may have been applied: the client gets 504 commit_unknown.
const (
	hdrHops       = "X-Cairn-Hops"
	hdrRetry      = "X-Cairn-Retry"
	hdrReplayed   = "Idempotent-Replayed"
	hdrIdempotent = "Idempotency-Key"
	maxHops       = 2
)

// errRetrySafe is answered by a node that cannot serve a request and did not
// propose it: the sender may try again elsewhere.
var errRetrySafe = errors.New("api: not served here; nothing was proposed")

// hopByHop are the headers a proxy must not pass on (RFC 9110, 7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func newForwardClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		// A forwarded request is answered, never redirected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func hops(r *http.Request) int {
	n, _ := strconv.Atoi(r.Header.Get(hdrHops))
	return n
}

// serveShard serves a request for req.shard here if this node can (it leads
// the shard, or the request is a stale read and it holds a replica), and
// otherwise forwards it to the leader, following leader changes until the
// request's deadline.
func (s *Server) serveShard(w http.ResponseWriter, r *http.Request, req *request, h handlerFunc) error {
	stale := false
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		var err error
		if stale, err = staleParam(r); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.timeout)
	wait := 10 * time.Millisecond
	for {
		rt := s.b.Route(req.shard)
		if rt.OutOfCluster != "" {
			// It stays so until restarted: waiting out the deadline would
			// help nobody. Another node may serve the request.
			e := newError(http.StatusServiceUnavailable, codeUnavailable, "this node is not part of the cluster: "+rt.OutOfCluster)
			return fmt.Errorf("%w: %w", errRetrySafe, e)
		}
		switch {
		case rt.Local || (stale && rt.Hosted):
			err := h(w, r, req)
			if !retrySafe(err) {
				return err
			}
		case hops(r) >= maxHops:
			return errRetrySafe
		default:
			target := rt.LeaderHTTP
			if target == "" && stale && len(rt.Hosts) > 0 {
				target = rt.Hosts[0]
			}
			if target != "" {
				done, err := s.forward(w, r, req, target, deadline)
				if done {
					return err
				}
			}
		}
		if time.Now().Add(wait).After(deadline) {
			e := newError(http.StatusServiceUnavailable, codeUnavailable, "the object's shard has no reachable leader right now; retry shortly")
			e.retryAfter = 1
			return e
		}
		select {
		case <-r.Context().Done():
			return r.Context().Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// retrySafe reports whether err means the request was not proposed here and
// may be served elsewhere.
func retrySafe(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrShardNotReady) || errors.Is(err, cluster.ErrUnknownShard) ||
		errors.Is(err, errRetrySafe)
}

// forward sends r to target and copies the answer to w. done is false when
// the request may be sent again: target could not be reached, or answered
// that it did not propose it.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, req *request, target string, deadline time.Time) (done bool, err error) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://"+target+r.URL.RequestURI(), bytes.NewReader(req.body))
	if err != nil {
		return true, err
	}
	for k, vs := range r.Header {
		out.Header[k] = vs
	}
	for _, h := range hopByHop {
		out.Header.Del(h)
	}
	out.Header.Set(hdrHops, strconv.Itoa(hops(r)+1))
	out.ContentLength = int64(len(req.body))
	resp, err := s.client.Do(out)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return false, nil // never reached it
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return false, nil // a read may simply be asked again
		}
		// The write was sent and may have been applied.
		return true, fmt.Errorf("%w: forwarded to %s: %v", cluster.ErrCommitUnknown, target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(hdrRetry) == "safe" {
		io.Copy(io.Discard, resp.Body)
		return false, nil
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopByHop {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		s.log.Warn("copying a forwarded answer failed", "target", target, "error", err)
	}
	return true, nil
}

// localCall runs an internal request through this node's own handler, as
// if a client had sent it, and decodes its JSON answer into out. It is how
// work that spans every shard reaches each one: the handler serves the
// shard here or forwards it to its leader.
func (s *Server) localCall(r *http.Request, method, path string, body []byte, out any) error {
	in, err := http.NewRequestWithContext(r.Context(), method, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range []string{"Authorization"} {
		if v := r.Header.Get(h); v != "" {
			in.Header.Set(h, v)
		}
	}
	bw := &bufferWriter{header: http.Header{}, status: http.StatusOK}
	s.serve(bw, in)
	if bw.status != http.StatusOK {
		var p problem
		if json.Unmarshal(bw.buf.Bytes(), &p) != nil || p.Code == "" {
			return fmt.Errorf("api: internal %s answered %d", path, bw.status)
		}
		e := newError(bw.status, p.Code, p.Detail)
		e.retryAfter, _ = strconv.Atoi(bw.header.Get("Retry-After"))
		return e
	}
	return json.Unmarshal(bw.buf.Bytes(), out)
}

// bufferWriter is an in-memory http.ResponseWriter.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(code int)        { b.status = code }
