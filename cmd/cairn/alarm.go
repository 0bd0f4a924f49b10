package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
)

// alarmGet prints the object's alarm; none exits 2.
func (a *app) alarmGet(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("alarm get")
	pos, err := a.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	t, err := obj.GetAlarm(ctx, a.readOpts()...)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, map[string]*int64{"scheduledTime": msOrNull(t)})
	} else if !t.IsZero() {
		fmt.Fprintln(a.stdout, showTime(t))
	}
	if t.IsZero() {
		return &notFoundError{fmt.Sprintf("object %q has no alarm", pos[0])}
	}
	return nil
}

// parseWhen reads a time: milliseconds since the epoch, RFC 3339, or a
// delay from now (30s, +5m, 1h30m).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, usagef("%q is not a time: give milliseconds since the epoch, RFC 3339 (2026-01-02T15:04:05Z) or a delay (30s, +5m)", s)
}

func (a *app) alarmSet(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("alarm set")
	var w writeOpts
	w.register(fs)
	pos, err := a.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := parseWhen(pos[1], time.Now())
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	if err := obj.SetAlarm(ctx, t, w.options()...); err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, map[string]int64{"scheduledTime": t.UnixMilli()})
		return nil
	}
	fmt.Fprintf(a.stdout, "alarm set for %s\n", showTime(t))
	return nil
}

func (a *app) alarmDelete(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("alarm delete")
	var w writeOpts
	w.register(fs)
	pos, err := a.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	if err := obj.DeleteAlarm(ctx, w.options()...); err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, struct{}{})
		return nil
	}
	fmt.Fprintln(a.stdout, "alarm deleted")
	return nil
}

// pendingAlarmJSON is an alarm of GET /v1/ns/{ns}/alarms.
type pendingAlarmJSON struct {
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	NextAttempt   *int64 `json:"nextAttempt"`
}

func (a *app) alarmList(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("alarm list")
	from := fs.String("from", "", "only alarms at or after this time")
	to := fs.String("to", "", "only alarms before this time")
	limit := fs.Int("limit", 0, "most alarms of one page (server default 1000)")
	cursor := fs.String("cursor", "", "continue after a previous page")
	all := fs.Bool("all", false, "follow the cursor to the last alarm")
	if _, err := a.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	opts := client.AlarmsOptions{Limit: *limit, Cursor: *cursor}
	now := time.Now()
	var err error
	if *from != "" {
		if opts.From, err = parseWhen(*from, now); err != nil {
			return err
		}
	}
	if *to != "" {
		if opts.To, err = parseWhen(*to, now); err != nil {
			return err
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ns := c.Namespace(a.ns)
	var alarms []client.PendingAlarm
	next := ""
	if *all {
		for al, err := range ns.AllAlarms(ctx, opts, a.readOpts()...) {
			if err != nil {
				return err
			}
			alarms = append(alarms, al)
		}
	} else {
		page, err := ns.Alarms(ctx, opts, a.readOpts()...)
		if err != nil {
			return err
		}
		alarms, next = page.Alarms, page.Cursor
	}
	if a.jsonOut {
		out := struct {
			Alarms []pendingAlarmJSON `json:"alarms"`
			Cursor *string            `json:"cursor"`
		}{Alarms: []pendingAlarmJSON{}}
		for _, al := range alarms {
			out.Alarms = append(out.Alarms, pendingAlarmJSON{al.Object, al.ObjectID, al.ScheduledTime.UnixMilli(), al.RetryCount, msOrNull(al.NextAttempt)})
		}
		if next != "" {
			out.Cursor = &next
		}
		writeJSONLine(a.stdout, out)
		return nil
	}
	rows := make([][]string, 0, len(alarms))
	for _, al := range alarms {
		rows = append(rows, []string{al.Object, showTime(al.ScheduledTime), strconv.Itoa(al.RetryCount), showTime(al.NextAttempt)})
	}
	table(a.stdout, []string{"OBJECT", "SCHEDULED", "RETRIES", "NEXT ATTEMPT"}, rows)
	if next != "" {
		fmt.Fprintf(a.stderr, "more alarms: add --cursor %s (or --all)\n", next)
	}
	return nil
}
