package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"time"
)

// NamespaceConfig is a namespace's configuration. A zero field means the
// server's default.
type NamespaceConfig struct {
	// Name is the namespace's name (set on the configurations the server
	// returns; ignored by SetConfig).
	Name string
	// AlarmWebhook is the absolute http(s) URL due alarms are POSTed to
	// (see AlarmHandler); "" for none: alarms then wait until one is set.
	AlarmWebhook string
	// AlarmTimeout is how long a webhook call may take (100ms–5m;
	// default 30s).
	AlarmTimeout time.Duration
	// AlarmMaxRetries is how often a failed delivery is retried before the
	// alarm is dropped (0–100; nil means the default, 6). A pointer because
	// 0 (never retry) is a setting of its own.
	AlarmMaxRetries *int
}

type namespaceJSON struct {
	Name            string  `json:"name,omitempty"`
	AlarmWebhook    *string `json:"alarmWebhook,omitempty"`
	AlarmTimeout    string  `json:"alarmTimeout,omitempty"`
	AlarmMaxRetries *int    `json:"alarmMaxRetries,omitempty"`
}

func (j namespaceJSON) config() (NamespaceConfig, error) {
	c := NamespaceConfig{Name: j.Name, AlarmMaxRetries: j.AlarmMaxRetries}
	if j.AlarmWebhook != nil {
		c.AlarmWebhook = *j.AlarmWebhook
	}
	if j.AlarmTimeout != "" {
		d, err := time.ParseDuration(j.AlarmTimeout)
		if err != nil {
			return c, fmt.Errorf("client: namespace %s: alarmTimeout: %w", j.Name, err)
		}
		c.AlarmTimeout = d
	}
	return c, nil
}

// Config returns the namespace's configuration (the defaults if it was
// never configured).
func (n *Namespace) Config(ctx context.Context) (NamespaceConfig, error) {
	var out namespaceJSON
	if _, err := n.c.call(ctx, n.c.newRequest(http.MethodGet, n.path(), classRead, callOptions{}), &out); err != nil {
		return NamespaceConfig{}, err
	}
	return out.config()
}

// SetConfig replaces the namespace's configuration (fields left zero take
// their defaults) and returns it as stored. It is idempotent by nature, so
// the client retries it freely; ErrUnavailable after the retries means the
// configuration may be saved but not yet copied to every shard: call
// SetConfig again.
func (n *Namespace) SetConfig(ctx context.Context, cfg NamespaceConfig) (NamespaceConfig, error) {
	in := namespaceJSON{AlarmMaxRetries: cfg.AlarmMaxRetries}
	if cfg.AlarmWebhook != "" {
		in.AlarmWebhook = &cfg.AlarmWebhook
	}
	if cfg.AlarmTimeout != 0 {
		in.AlarmTimeout = cfg.AlarmTimeout.String()
	}
	r := n.c.newRequest(http.MethodPut, n.path(), classIdempotentWrite, callOptions{})
	if err := r.setJSON(in); err != nil {
		return NamespaceConfig{}, err
	}
	var out namespaceJSON
	if _, err := n.c.call(ctx, r, &out); err != nil {
		return NamespaceConfig{}, err
	}
	return out.config()
}

// UniqueID returns a handle on a new object with a fresh random 64-hex
// name (Durable Objects' newUniqueId).
func (n *Namespace) UniqueID(ctx context.Context) (*Object, error) {
	var out ObjectInfo
	if _, err := n.c.call(ctx, n.c.newRequest(http.MethodPost, n.path()+"/unique-id", classRead, callOptions{}), &out); err != nil {
		return nil, err
	}
	return n.Object(out.Name), nil
}

// ObjectInfo names an object of a listing.
type ObjectInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// ObjectsOptions selects objects of a namespace.
type ObjectsOptions struct {
	// Prefix keeps only names that start with it.
	Prefix string
	// Limit is the most objects of one page (1–10000; 0 means 1000). For
	// AllObjects it is the page size.
	Limit int
	// Cursor continues after a previous page.
	Cursor string
}

// ObjectsPage is one page of objects, by name.
type ObjectsPage struct {
	Objects []ObjectInfo
	// Cursor continues the listing; "" on the last page.
	Cursor string
}

// Objects returns one page of the namespace's objects that hold storage or
// an alarm, by name. Options: Stale.
func (n *Namespace) Objects(ctx context.Context, opts ObjectsOptions, copts ...CallOption) (*ObjectsPage, error) {
	co, err := applyOptions("Objects", copts, readOpts...)
	if err != nil {
		return nil, err
	}
	r := n.c.newRequest(http.MethodGet, n.path()+"/objects", classRead, co)
	if opts.Prefix != "" {
		r.setQuery("prefix", opts.Prefix)
	}
	if opts.Limit != 0 {
		r.setQuery("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		r.setQuery("cursor", opts.Cursor)
	}
	var out struct {
		Objects []ObjectInfo `json:"objects"`
		Cursor  *string      `json:"cursor"`
	}
	if _, err := n.c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	p := &ObjectsPage{Objects: out.Objects}
	if out.Cursor != nil {
		p.Cursor = *out.Cursor
	}
	return p, nil
}

// AllObjects iterates over every object Objects would list, page by page.
// It stops at the first error, which it yields. Options: Stale.
func (n *Namespace) AllObjects(ctx context.Context, opts ObjectsOptions, copts ...CallOption) iter.Seq2[ObjectInfo, error] {
	return pages(func(cursor string) ([]ObjectInfo, string, error) {
		opts.Cursor = cursor
		p, err := n.Objects(ctx, opts, copts...)
		if err != nil {
			return nil, "", err
		}
		return p.Objects, p.Cursor, nil
	}, opts.Cursor)
}

// PendingAlarm is an alarm that has not been delivered yet.
type PendingAlarm struct {
	Object        string
	ObjectID      string
	ScheduledTime time.Time
	// RetryCount is the number of failed deliveries so far.
	RetryCount int
	// NextAttempt is when the next delivery is due: the scheduled time
	// until a delivery fails, then the time of the retry.
	NextAttempt time.Time
}

// AlarmsOptions selects pending alarms by scheduled time.
type AlarmsOptions struct {
	// From (inclusive) and To (exclusive) bound the scheduled time; zero
	// for no bound.
	From, To time.Time
	// Limit is the most alarms of one page (1–10000; 0 means 1000). For
	// AllAlarms it is the page size.
	Limit int
	// Cursor continues after a previous page.
	Cursor string
}

// AlarmsPage is one page of pending alarms, by scheduled time.
type AlarmsPage struct {
	Alarms []PendingAlarm
	// Cursor continues the listing; "" on the last page.
	Cursor string
}

// Alarms returns one page of the namespace's pending alarms, by scheduled
// time. Options: Stale.
func (n *Namespace) Alarms(ctx context.Context, opts AlarmsOptions, copts ...CallOption) (*AlarmsPage, error) {
	co, err := applyOptions("Alarms", copts, readOpts...)
	if err != nil {
		return nil, err
	}
	r := n.c.newRequest(http.MethodGet, n.path()+"/alarms", classRead, co)
	if !opts.From.IsZero() {
		r.setQuery("from", strconv.FormatInt(opts.From.UnixMilli(), 10))
	}
	if !opts.To.IsZero() {
		r.setQuery("to", strconv.FormatInt(opts.To.UnixMilli(), 10))
	}
	if opts.Limit != 0 {
		r.setQuery("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		r.setQuery("cursor", opts.Cursor)
	}
	var out struct {
		Alarms []struct {
			Object        string `json:"object"`
			ObjectID      string `json:"objectId"`
			ScheduledTime int64  `json:"scheduledTime"`
			RetryCount    int    `json:"retryCount"`
			NextAttempt   int64  `json:"nextAttempt"`
		} `json:"alarms"`
		Cursor *string `json:"cursor"`
	}
	if _, err := n.c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	p := &AlarmsPage{Alarms: make([]PendingAlarm, 0, len(out.Alarms))}
	for _, a := range out.Alarms {
		pa := PendingAlarm{Object: a.Object, ObjectID: a.ObjectID, ScheduledTime: time.UnixMilli(a.ScheduledTime), RetryCount: a.RetryCount}
		if a.NextAttempt != 0 {
			pa.NextAttempt = time.UnixMilli(a.NextAttempt)
		}
		p.Alarms = append(p.Alarms, pa)
	}
	if out.Cursor != nil {
		p.Cursor = *out.Cursor
	}
	return p, nil
}

// AllAlarms iterates over every alarm Alarms would list, page by page. It
// stops at the first error, which it yields. Options: Stale.
func (n *Namespace) AllAlarms(ctx context.Context, opts AlarmsOptions, copts ...CallOption) iter.Seq2[PendingAlarm, error] {
	return pages(func(cursor string) ([]PendingAlarm, string, error) {
		opts.Cursor = cursor
		p, err := n.Alarms(ctx, opts, copts...)
		if err != nil {
			return nil, "", err
		}
		return p.Alarms, p.Cursor, nil
	}, opts.Cursor)
}

// pages iterates over the items of the pages fetch returns, from cursor on.
func pages[T any](fetch func(cursor string) ([]T, string, error), cursor string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}
