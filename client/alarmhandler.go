package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// AlarmEvent is one delivery of a due alarm to a namespace's alarmWebhook:
// the Durable Objects alarm() call.
type AlarmEvent struct {
	Namespace string
	// Object is the object's name; Client.Namespace(Namespace).Object(Object)
	// is a handle on it.
	Object   string
	ObjectID string
	// ScheduledTime is the time the alarm was set for.
	ScheduledTime time.Time
	// RetryCount is the number of earlier deliveries that failed; IsRetry
	// is RetryCount > 0.
	RetryCount int
	IsRetry    bool
	// IdempotencyKey is "<objectId>:<scheduledTime>": the same for every
	// delivery of one alarm, since delivery is at least once.
	IdempotencyKey string
}

// maxAlarmBody bounds the webhook body AlarmHandler reads.
const maxAlarmBody = 64 << 10

// AlarmHandler returns the http.Handler of an alarm webhook: it decodes
// the POST a node sends when an alarm is due and calls fn with it and the
// request's context (which ends at the namespace's alarmTimeout, when the
// node stops waiting). It answers 200 when fn returns nil, so the alarm is
// cleared; 500 with the error's text otherwise, so the node retries it
// with backoff. Anything but POST is 405; a body that is not an alarm
// event is 400.
//
// Delivery is at least once: fn may see an alarm again (after a lost
// answer or a leader change) and should be idempotent, for instance by
// writing with IdempotencyKey(ev.IdempotencyKey).
func AlarmHandler(fn func(ctx context.Context, ev AlarmEvent) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "an alarm webhook takes POST", http.StatusMethodNotAllowed)
			return
		}
		ev, err := decodeAlarmEvent(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := fn(r.Context(), ev); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok\n")
	})
}

func decodeAlarmEvent(r *http.Request) (AlarmEvent, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAlarmBody+1))
	if err != nil {
		return AlarmEvent{}, errors.New("reading the body: " + err.Error())
	}
	if len(b) > maxAlarmBody {
		return AlarmEvent{}, errors.New("the body is larger than an alarm event")
	}
	// Unknown fields are allowed: a newer server may send more.
	var in struct {
		Namespace     string `json:"namespace"`
		Object        string `json:"object"`
		ObjectID      string `json:"objectId"`
		ScheduledTime *int64 `json:"scheduledTime"`
		RetryCount    int    `json:"retryCount"`
		IsRetry       bool   `json:"isRetry"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return AlarmEvent{}, errors.New("the body is not an alarm event: " + err.Error())
	}
	if in.Namespace == "" || in.Object == "" || in.ScheduledTime == nil {
		return AlarmEvent{}, errors.New(`an alarm event needs "namespace", "object" and "scheduledTime"`)
	}
	return AlarmEvent{
		Namespace: in.Namespace, Object: in.Object, ObjectID: in.ObjectID,
		ScheduledTime: time.UnixMilli(*in.ScheduledTime), RetryCount: in.RetryCount, IsRetry: in.IsRetry,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}, nil
}
