package e2e

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Bounds of the SQL and alarm workloads' checks.
const (
	setupTimeout = 60 * time.Second // tables and the webhook, on a fresh cluster
	// alarmWait bounds the wait for the acknowledged alarms to be
	// delivered once traffic and faults have stopped; the wait ends as
	// soon as all have been.
	alarmWait = 60 * time.Second
)

// sideWorkloads are the SQL and the alarm workload, which a scenario runs
// beside the register workload or on their own. A nil config leaves one
// out.
type sideWorkloads struct {
	sql    *SQLTrafficConfig
	alarms *AlarmTrafficConfig

	sqlHist   *SQLHistory
	alarmHist *AlarmHistory
	recv      *AlarmReceiver
}

// newSideWorkloads returns the workloads asked for, on rec's clock.
func newSideWorkloads(rec *Recorder, sql *SQLTrafficConfig, alarms *AlarmTrafficConfig) *sideWorkloads {
	w := &sideWorkloads{sql: sql, alarms: alarms}
	if sql != nil {
		*w.sql = sql.withDefaults()
		w.sqlHist = NewSQLHistory(rec)
	}
	if alarms != nil {
		*w.alarms = alarms.withDefaults()
		w.alarmHist = NewAlarmHistory(rec)
	}
	return w
}

// webhookAddrs returns where the alarm receiver listens and the address
// the nodes reach it at: loopback for processes; for containers, the
// host's address on the cluster network (its gateway), so that the
// receiver is reachable from the project's network only.
func webhookAddrs(t *testing.T, c Cluster) (listen, advertise string) {
	t.Helper()
	dc, ok := c.(*DockerCluster)
	if !ok {
		return "127.0.0.1:0", "127.0.0.1"
	}
	gw, err := dc.Gateway()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(gw, "0"), gw
}

// setup creates the SQL tables, starts the webhook receiver and points the
// alarm namespace at it.
func (w *sideWorkloads) setup(t *testing.T, c Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if w.sql != nil {
		if err := SetupSQL(ctx, c.Endpoints(), *w.sql); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	if w.alarms != nil {
		listen, advertise := webhookAddrs(t, c)
		r, err := StartAlarmReceiver(t.Cleanup, listen, advertise)
		if err != nil && listen != "127.0.0.1:0" {
			// The gateway's address is the host's, but where the engine
			// is not on this host it cannot be bound: listen everywhere.
			t.Logf("e2e: listening on %s: %v; listening on every address instead", listen, err)
			r, err = StartAlarmReceiver(t.Cleanup, "0.0.0.0:0", advertise)
		}
		if err != nil {
			t.Fatalf("e2e: starting the alarm webhook: %v", err)
		}
		w.recv = r
		if err := ConfigureWebhook(ctx, c.Endpoints(), *w.alarms, r.URL); err != nil {
			t.Fatalf("e2e: %v", err)
		}
		t.Logf("e2e: alarm webhook %s", r.URL)
	}
}

// run runs the workloads against endpoints until ctx ends or their
// durations pass.
func (w *sideWorkloads) run(ctx context.Context, endpoints []string) {
	var wg sync.WaitGroup
	if w.sql != nil {
		wg.Add(1)
		go func() { defer wg.Done(); RunSQLTraffic(ctx, endpoints, w.sqlHist, *w.sql) }()
	}
	if w.alarms != nil {
		wg.Add(1)
		go func() { defer wg.Done(); RunAlarmTraffic(ctx, endpoints, w.alarmHist, *w.alarms) }()
	}
	wg.Wait()
}

// check reads the final state and adds the workloads' verdicts, counts and
// histories to rep. With recovered false (the cluster did not come back)
// only the checks that need no final read run. The alarms come first: once
// the last ones are delivered the cluster is quiet, and the SQL replicas'
// applied indexes stop moving.
func (w *sideWorkloads) check(c Cluster, rep *Report, recovered bool) {
	if rep.Histories == nil {
		rep.Histories = map[string]any{}
	}
	if w.alarms != nil {
		w.checkAlarms(rep, recovered)
	}
	if w.sql != nil {
		w.checkSQL(c, rep, recovered)
	}
}

func (w *sideWorkloads) checkSQL(c Cluster, rep *Report, recovered bool) {
	var finals map[string]map[string][]string
	if recovered {
		ctx, cancel := context.WithTimeout(context.Background(), finalReadWait)
		var err error
		finals, err = ReadSQLFinal(ctx, c, w.sqlHist, *w.sql)
		cancel()
		if err != nil {
			rep.Verdicts = append(rep.Verdicts, Verdict{Name: "sql-final-read", Detail: err.Error()})
			finals = nil
		}
	}
	ops := w.sqlHist.Ops()
	rep.Workloads = append(rep.Workloads, fmt.Sprintf("sql:            %s", CountSQL(ops)))
	rep.Histories["sql"] = ops
	rep.Verdicts = append(rep.Verdicts, CheckSQLReads(ops))
	if finals != nil {
		rep.Verdicts = append(rep.Verdicts,
			CheckSQLDurability(ops, finals, w.sql.Objects),
			CheckSQLReplicas(c, *w.sql, firstFinal(finals), replicasTimeout))
	}
}

func (w *sideWorkloads) checkAlarms(rep *Report, recovered bool) {
	ops := w.alarmHist.Ops()
	var waited time.Duration
	if recovered {
		waited = WaitAlarms(w.recv, ExpectedAlarms(ops), alarmWait)
	}
	ds := w.recv.Deliveries()
	n := AlarmCounts(ops)
	rep.Workloads = append(rep.Workloads, fmt.Sprintf("alarm sets:     %d ok, %d refused, %d unknown; %d deliveries", n.OK, n.Refused, n.Unknown, len(ds)))
	rep.Histories["alarms"] = map[string]any{"sets": ops, "deliveries": ds}
	rep.Verdicts = append(rep.Verdicts,
		CheckAlarmsDelivered(ops, ds, waited),
		CheckAlarmsOnTime(ds),
		CheckAlarmDeliveries(ops, ds, w.alarms.Client.Namespace))
}
