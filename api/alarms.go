package api

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cockroachdb/pebble/v2"
)

// alarmJSON is an object's alarm as GET …/alarm shows it.
type alarmJSON struct {
	ScheduledTime *int64 `json:"scheduledTime"`
}

// getAlarm answers GET …/alarm.
func (s *Server) getAlarm(w http.ResponseWriter, r *http.Request, req *request) error {
	var out alarmJSON
	err := s.read(r, req.shard, func(rd pebble.Reader) error {
		a, found, err := objectstore.GetAlarm(rd, req.object())
		if found {
			out.ScheduledTime = &a.ScheduledTime
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putAlarm answers PUT …/alarm: {"scheduledTime": ms}. One alarm per
// object: setting it again replaces it.
func (s *Server) putAlarm(w http.ResponseWriter, r *http.Request, req *request) error {
	var in struct {
		ScheduledTime *int64 `json:"scheduledTime"`
	}
	if err := strictUnmarshal(req.body, &in, "the alarm body"); err != nil {
		return err
	}
	if in.ScheduledTime == nil {
		return badRequest(codeInvalidParameter, `the body needs "scheduledTime" (milliseconds since the epoch)`)
	}
	tx := &objectstore.Tx{Ops: []objectstore.Op{{Kind: objectstore.OpSetAlarm, ScheduledTime: *in.ScheduledTime}}}
	res, err := s.proposeTx(w, r, req, tx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"scheduledTime": *in.ScheduledTime, "version": version(res.Version)})
	return nil
}

// deleteAlarm answers DELETE …/alarm.
func (s *Server) deleteAlarm(w http.ResponseWriter, r *http.Request, req *request) error {
	tx := &objectstore.Tx{Ops: []objectstore.Op{{Kind: objectstore.OpDeleteAlarm}}}
	res, err := s.proposeTx(w, r, req, tx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": version(res.Version)})
	return nil
}

// pendingAlarmJSON is one alarm of GET /v1/ns/{ns}/alarms.
type pendingAlarmJSON struct {
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	NextAttempt   int64  `json:"nextAttempt"`
}

type shardAlarmsJSON struct {
	Alarms []pendingAlarmJSON `json:"alarms"`
	More   bool               `json:"more"`
}

// alarmCursor is the position after the last alarm of a page.
func alarmCursor(t int64, name string) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(t))
	return base64.RawURLEncoding.EncodeToString(append(b, name...))
}

func parseAlarmCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 9 {
		return 0, "", badRequest(codeInvalidParameter, "cursor is not one this server issued")
	}
	return int64(binary.BigEndian.Uint64(b)), string(b[8:]), nil
}

// alarmRange reads from, to and limit of an alarm listing.
func alarmRange(q url.Values) (from, to int64, limit int, err error) {
	limit = defaultObjectsLimit
	for name, dst := range map[string]*int64{"from": &from, "to": &to} {
		if v := q.Get(name); v != "" {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < 0 {
				return 0, 0, 0, badRequest(codeInvalidParameter, name+" must be milliseconds since the epoch")
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > maxObjectsLimit {
			return 0, 0, 0, badRequest(codeInvalidParameter, "limit must be an integer between 1 and "+strconv.Itoa(maxObjectsLimit))
		}
		limit = n
	}
	return from, to, limit, nil
}

// listAlarms answers GET /v1/ns/{ns}/alarms: the namespace's pending alarms
// by scheduled time, across every shard (from and to in ms, to exclusive;
// limit; cursor).
func (s *Server) listAlarms(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	from, to, limit, err := alarmRange(q)
	if err != nil {
		return err
	}
	sub := url.Values{"ns": {req.ns}, "from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}, "limit": {strconv.Itoa(limit)}}
	if c := q.Get("cursor"); c != "" {
		if _, _, err := parseAlarmCursor(c); err != nil {
			return err
		}
		sub.Set("cursor", c)
	}
	if c := q.Get("consistency"); c != "" {
		sub.Set("consistency", c)
	}
	var all []pendingAlarmJSON
	more := false
	for shard := 0; shard < s.b.ShardCount(); shard++ {
		var page shardAlarmsJSON
		if err := s.localCall(r, http.MethodGet, fmt.Sprintf("/v1/internal/shards/%d/alarms?%s", shard, sub.Encode()), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Alarms...)
		more = more || page.More
	}
	slices.SortFunc(all, func(a, b pendingAlarmJSON) int {
		if a.ScheduledTime != b.ScheduledTime {
			return int(min(max(a.ScheduledTime-b.ScheduledTime, -1), 1))
		}
		return strings.Compare(a.Object, b.Object)
	})
	if len(all) > limit {
		all, more = all[:limit], true
	}
	out := struct {
		Alarms []pendingAlarmJSON `json:"alarms"`
		Cursor *string            `json:"cursor"`
	}{Alarms: all}
	if out.Alarms == nil {
		out.Alarms = []pendingAlarmJSON{}
	}
	if more && len(all) > 0 {
		last := all[len(all)-1]
		c := alarmCursor(last.ScheduledTime, last.Object)
		out.Cursor = &c
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// shardAlarms answers GET /v1/internal/shards/{id}/alarms: one shard's part
// of an alarm listing.
func (s *Server) shardAlarms(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	ns := q.Get("ns")
	if err := validNamespace(ns); err != nil {
		return err
	}
	if !visibleNamespace(r, ns) {
		return newError(http.StatusForbidden, codeForbidden, "the token may not access namespace "+ns)
	}
	from, to, limit, err := alarmRange(q)
	if err != nil {
		return err
	}
	var afterTime int64
	var afterName string
	if c := q.Get("cursor"); c != "" {
		if afterTime, afterName, err = parseAlarmCursor(c); err != nil {
			return err
		}
	}
	out := shardAlarmsJSON{Alarms: []pendingAlarmJSON{}}
	err = s.read(r, req.shard, func(rd pebble.Reader) error {
		list, more, err := objectstore.ListNamespaceAlarms(rd, req.shard, ns, from, to, afterTime, afterName, limit)
		for _, a := range list {
			out.Alarms = append(out.Alarms, pendingAlarmJSON{
				Object: a.Name, ObjectID: placement.ObjectID(ns, a.Name),
				ScheduledTime: a.Alarm.ScheduledTime, RetryCount: a.Alarm.RetryCount, NextAttempt: a.Alarm.NextAttempt,
			})
		}
		out.More = more
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
