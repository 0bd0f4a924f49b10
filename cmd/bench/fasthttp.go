package main

// The fast client (-http-client fast, the default): valyala/fasthttp.
//
// On a small machine the load generator competes with the node for CPU,
// and net/http's client costs a lot per request: every connection has a
// reader and a writer goroutine, and a request crosses several channels
// between them and the caller. fasthttp, the client most Go load
// generators are built on, does a request on the caller's goroutine over
// a pool of kept-alive connections and reuses its buffers, so more of the
// machine is left to the cluster being measured.

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// newFastClient makes the client of a run: at most conns connections per
// endpoint (one per worker is enough: each keeps one request in flight).
func newFastClient(conns int, timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		Name:                          "cairn-bench",
		MaxConnsPerHost:               max(1, conns),
		MaxIdleConnDuration:           30 * time.Second,
		MaxConnWaitTimeout:            timeout,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true, // send each path as the workload built it
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
}

// doFast is do with the fast client. Its results mean what net/http's do:
// status 0 and a transport class when no answer arrived (a dial failure
// included), the answer's status and class otherwise. A request may take
// until the earlier of the client's timeout and ctx's deadline; when ctx
// ends mid-request the request still ends by then, and counts as canceled.
func (d *doer) doFast(ctx context.Context, base string, rq request) result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + rq.path)
	req.Header.SetMethod(rq.method)
	if rq.contentType != "" {
		req.Header.SetContentType(rq.contentType)
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	if rq.body != nil {
		req.SetBodyRaw(rq.body)
	}
	d.attempts.Add(1)
	start := time.Now()
	deadline := start.Add(d.timeout)
	ctxDeadline := false
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline, ctxDeadline = dl, true
	}
	err := d.fast.DoDeadline(req, resp, deadline)
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) {
			if ctxDeadline {
				// The run's deadline ended it; ctx's own timer may not
				// have fired yet, so do not ask ctx.Err.
				return result{canceled: true}
			}
			err = context.DeadlineExceeded
		}
		return d.failed(ctx, start, 0, err)
	}
	d.responses.Add(1)
	status := resp.StatusCode()
	r := result{latency: time.Since(start), status: status}
	if status >= 300 {
		body := resp.Body()
		r.class = httpErrorClass(status, body[:min(len(body), 8<<10)])
	}
	return r
}
