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
	descApplied = prometheus.NewDesc("cairn_shard_applied_index", "Index of the last Raft entry the shard's state machine applied.", []string{"shard"}, nil)
	descLeader  = prometheus.NewDesc("cairn_shard_is_leader", "1 if this node leads the shard.", []string{"shard"}, nil)
)

func (c shardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descApplied
	ch <- descLeader
}

func (c shardCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.n.shardList() {
		id := strconv.FormatUint(uint64(s.id), 10)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.fsm.Applied()), id)
		leader := 0.0
		if s.IsLeader() {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader, id)
	}
}
