// Package metrics holds Herald's Prometheus collectors. Names and labels follow Flagger's
// (flagger_*), so dashboards and alerts written for Flagger keep working; Herald's own
// measurements use the herald_ prefix. Everything is registered on controller-runtime's
// registry and served by the manager's /metrics endpoint.
package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Version is Herald's version, reported by flagger_info; set at link time.
var Version = "dev"

var info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "flagger_info",
	Help: "Herald version and default mesh provider (Flagger-compatible name).",
}, []string{"version", "mesh_provider"})

// Register adds Herald's collectors to controller-runtime's registry. reader lists Canaries
// (an informer-backed cache in the manager) for flagger_canary_total, which is computed at
// scrape time so that it can never drift from the cluster.
func Register(reader client.Reader, meshProvider string) {
	info.WithLabelValues(Version, meshProvider).Set(1)
	ctrlmetrics.Registry.MustRegister(info, &canaryTotal{reader: reader})
}

var canaryTotalDesc = prometheus.NewDesc("flagger_canary_total",
	"Number of canaries per namespace (Flagger-compatible name).", []string{"namespace"}, nil)

// canaryTotal counts Canaries per namespace from the cache on each scrape.
type canaryTotal struct{ reader client.Reader }

func (c *canaryTotal) Describe(ch chan<- *prometheus.Desc) { ch <- canaryTotalDesc }

func (c *canaryTotal) Collect(ch chan<- prometheus.Metric) {
	var list flaggerv1.CanaryList
	if err := c.reader.List(context.Background(), &list); err != nil {
		// A scrape must not fail because the cache is not synced yet; report nothing instead.
		ctrllog.Log.WithName("metrics").V(1).Info("Cannot list canaries for flagger_canary_total", "error", err.Error())
		return
	}
	perNamespace := map[string]int{}
	for i := range list.Items {
		perNamespace[list.Items[i].Namespace]++
	}
	for ns, n := range perNamespace {
		ch <- prometheus.MustNewConstMetric(canaryTotalDesc, prometheus.GaugeValue, float64(n), ns)
	}
}
