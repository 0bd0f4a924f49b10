package alarms

import (
	"github.com/cairndb/cairn/objectstore"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	pending   prometheus.GaugeFunc
	delivered prometheus.Counter
	retried   prometheus.Counter
	dropped   prometheus.Counter
	lateness  prometheus.Histogram
	// ackBatch is the size of the batches of outcomes proposed; ackRetries
	// counts proposals of a batch made again after one failed.
	ackBatch   prometheus.Histogram
	ackRetries prometheus.Counter
	// headReads counts reads of a due index from its head.
	headReads prometheus.Counter
}

func newMetrics(s *Scheduler) *metrics {
	return &metrics{
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_alarms_pending",
			Help: "Alarms set and not yet delivered or dropped, in the shards this node leads.",
		}, func() float64 {
			var n uint64
			for _, shard := range s.cfg.Node.LedShards() {
				c, err := objectstore.AlarmCount(s.cfg.Node.DB(), shard)
				if err == nil {
					n += c
				}
			}
			return float64(n)
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_alarms_delivered_total",
			Help: "Alarm deliveries the webhook answered with 2xx.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_alarms_retried_total",
			Help: "Failed alarm deliveries scheduled for a retry.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_alarms_dropped_total",
			Help: "Alarms dropped after their last retry failed.",
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_alarm_lateness_seconds",
			Help:    "Time from an alarm's scheduled time to its first delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		ackBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_alarm_ack_batch_size",
			Help:    "Delivery outcomes recorded per Raft entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		ackRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_alarm_ack_retries_total",
			Help: "Batches of delivery outcomes proposed again after a proposal failed.",
		}),
		headReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_alarm_index_head_reads_total",
			Help: "Reads of a shard's due index from its head, after a change that may lie behind the read position; the other reads resume where the last stopped.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.pending, m.delivered, m.retried, m.dropped, m.lateness, m.ackBatch, m.ackRetries, m.headReads} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
