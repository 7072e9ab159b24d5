package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// metrics are the gateway's Prometheus metrics, served at /metrics.
type metrics struct {
	registry *prometheus.Registry
	accept   prometheus.Histogram
}

// unindexedCounter counts the tracking records waiting for the search
// indexer (sqlite.TrackingStore).
type unindexedCounter interface {
	Unindexed(ctx context.Context) (int, error)
}

// spoolStater reports the spool's group commits (sqlite.Spool).
type spoolStater interface {
	Stats() sqlite.SpoolStats
}

func newMetrics(smtp *smtpd.Server, q *queue.Queue, spool spoolStater, tracks unindexedCounter) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		accept: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sightline_smtp_accept_seconds",
			Help:    "Time from the end of DATA to the durable acceptance of a message (the 250 reply).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
	}
	unindexed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_tracking_unindexed_messages",
		Help: "Tracking records saved but not yet in the substring (trigram) index; searches scan them meanwhile.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := tracks.Unindexed(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	commits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sightline_spool_commits_total",
		Help: "Durable (fsynced) spool transactions; each carries the operations concurrent sessions submitted meanwhile.",
	}, func() float64 { return float64(spool.Stats().Commits) })
	ops := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sightline_spool_operations_total",
		Help: "Spool operations (accept, screened, delivery update, removal) made durable.",
	}, func() float64 { return float64(spool.Stats().Operations) })
	m.registry.MustRegister(m.accept, unindexed, commits, ops, smtpCollector{smtp}, queueCollector{q})
	return m
}

// timedQueue measures Enqueue, which is what stands between the end of DATA
// and the 250 reply.
type timedQueue struct {
	q *queue.Queue
	m *metrics
}

func (t timedQueue) Enqueue(ctx context.Context, env *mailflow.Envelope, data []byte) error {
	start := time.Now()
	err := t.q.Enqueue(ctx, env, data)
	if err == nil {
		t.m.accept.Observe(time.Since(start).Seconds())
	}
	return err
}

var (
	smtpConnections = prometheus.NewDesc("sightline_smtp_connections_total", "SMTP connections accepted.", nil, nil)
	smtpAccepted    = prometheus.NewDesc("sightline_smtp_messages_accepted_total", "Messages acknowledged with 250.", nil, nil)
	smtpRejected    = prometheus.NewDesc("sightline_smtp_rejected_total", "SMTP refusals by reason.", []string{"reason"}, nil)
	queueMessages   = prometheus.NewDesc("sightline_queue_messages", "Messages in the queue by state.", []string{"state"}, nil)
)

type smtpCollector struct{ s *smtpd.Server }

func (smtpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- smtpConnections
	ch <- smtpAccepted
	ch <- smtpRejected
}

func (c smtpCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(smtpConnections, prometheus.CounterValue, float64(st.Connections))
	ch <- prometheus.MustNewConstMetric(smtpAccepted, prometheus.CounterValue, float64(st.Accepted))
	for reason, n := range st.Rejected {
		ch <- prometheus.MustNewConstMetric(smtpRejected, prometheus.CounterValue, float64(n), reason)
	}
}

type queueCollector struct{ q *queue.Queue }

func (queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueMessages }

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.q.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueMessages, err)
		return
	}
	for state, n := range map[string]int{"unscreened": st.Unscreened, "in_delivery": st.InDelivery,
		"deferred": st.Deferred, "quarantined": st.Quarantined, "depth": st.Depth} {
		ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(n), state)
	}
}
