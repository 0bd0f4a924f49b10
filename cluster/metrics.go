package cluster

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	applyLatency prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_raft_apply_duration_seconds",
			Help:    "Time from proposing a Raft entry to its being applied on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer, n *Node) error {
	if err := r.Register(m.applyLatency); err != nil {
		return err
	}
	return r.Register(shardCollector{n})
}

// shardCollector reports per-shard gauges from the live Raft instances.
type shardCollector struct{ n *Node }

var (
	descApplied   = prometheus.NewDesc("cairn_shard_applied_index", "Index of the last Raft entry the shard's state machine applied.", []string{"shard"}, nil)
	descLeader    = prometheus.NewDesc("cairn_shard_is_leader", "1 if this node leads the shard.", []string{"shard"}, nil)
	descSnapBytes = prometheus.NewDesc("cairn_snapshot_bytes_total", "Bytes of shard snapshots this node persisted or restored (installed) since it started, by direction.", []string{"direction"}, nil)
	descReplicas  = prometheus.NewDesc("cairn_replicas_hosted", "Shard replicas this node holds.", nil, nil)
	descLogSize   = prometheus.NewDesc("cairn_raft_log_bytes", "Estimated bytes of the Raft log entries this node holds, all shards together.", nil, nil)
	descLogBytes  = prometheus.NewDesc("cairn_raft_log_appended_bytes_total", "Bytes of Raft log entries this node stored since it started: its own proposals where it leads, what the leaders sent it elsewhere, a new replica's catch-up from the log included.", nil, nil)
)

func (c shardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descApplied
	ch <- descLeader
	ch <- descSnapBytes
	ch <- descReplicas
	ch <- descLogBytes
	ch <- descLogSize
}

func (c shardCollector) Collect(ch chan<- prometheus.Metric) {
	shards := c.n.shardList()
	persisted, restored := c.n.droppedSnapBytes()
	for _, s := range shards {
		p, r := s.fsm.SnapshotBytes()
		persisted += p
		restored += r
	}
	ch <- prometheus.MustNewConstMetric(descSnapBytes, prometheus.CounterValue, float64(persisted), "persisted")
	ch <- prometheus.MustNewConstMetric(descSnapBytes, prometheus.CounterValue, float64(restored), "restored")
	ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(len(shards)))
	ch <- prometheus.MustNewConstMetric(descLogBytes, prometheus.CounterValue, float64(c.n.logAppended.Load()))
	var logSize int64
	for _, s := range shards {
		if b, _, err := s.logs.size(); err == nil {
			logSize += b
		}
	}
	ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(logSize))
	for _, s := range shards {
		id := strconv.FormatUint(uint64(s.id), 10)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.fsm.Applied()), id)
		leader := 0.0
		if s.IsLeader() {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader, id)
	}
}
