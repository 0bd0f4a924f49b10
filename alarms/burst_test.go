package alarms_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// TestDeliveryBurst measures how fast a burst of alarms due at the same
// moment is delivered. It is a measurement, not a check of the contract,
// and runs only when CAIRN_ALARM_BURST gives the number of alarms:
//
//	CAIRN_ALARM_BURST=20000 go test -run TestDeliveryBurst -v ./alarms/
var errNoLeader = errors.New("no leader")

func TestDeliveryBurst(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CAIRN_ALARM_BURST"))
	if n <= 0 {
		t.Skip("set CAIRN_ALARM_BURST=<alarms> to run this measurement")
	}
	const ns, shards = "burst", 16
	// Production Raft timings: the tests' short ones make leaders change
	// under this much load.
	conc, _ := strconv.Atoi(os.Getenv("CAIRN_ALARM_BURST_CONCURRENCY"))
	c := newCluster(t, 3, shards, func(c *testCluster) {
		c.raft = cluster.RaftConfig{}
		c.alarmCfg.Concurrency = conc // 0: the default
	})

	var calls, unique atomic.Int64
	var lastNs atomic.Int64
	seen := make([]atomic.Bool, n)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b hookBody
		json.NewDecoder(r.Body).Decode(&b)
		calls.Add(1)
		var i int
		fmt.Sscanf(b.Object, "b-%d", &i)
		if i >= 0 && i < n && !seen[i].Swap(true) {
			unique.Add(1)
			lastNs.Store(time.Now().UnixNano())
		}
	}))
	defer hook.Close()
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": hook.URL})

	// Set the alarms by proposing on each shard's leader directly: the
	// HTTP path would take longer than the measurement.
	due := time.Now().Add(time.Duration(n/400+10) * time.Second)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 128 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				proposeAlarm(t, c, ns, fmt.Sprintf("b-%d", i), due.UnixMilli())
			}
		})
	}
	wg.Wait()
	t.Logf("set %d alarms in %v", n, time.Since(start))
	if time.Now().After(due) {
		t.Fatalf("setting took past the due time")
	}
	if path := os.Getenv("CAIRN_ALARM_BURST_PROFILE"); path != "" {
		// A CPU profile of the delivery only, not of the setting.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(due))
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	deadline := due.Add(5 * time.Minute)
	tick := due
	for unique.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if time.Since(tick) >= time.Second && time.Now().After(due) {
			tick = time.Now()
			t.Logf("%5.1fs after due: %d delivered, %d calls", time.Since(due).Seconds(), unique.Load(), calls.Load())
		}
	}
	last := time.Unix(0, lastNs.Load())
	t.Logf("delivered %d of %d (%d calls) in %v after the due time", unique.Load(), n, calls.Load(), last.Sub(due))
	if unique.Load() < int64(n) {
		t.Errorf("%d alarms not delivered", int64(n)-unique.Load())
	}
}
