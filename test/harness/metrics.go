package harness

import (
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/labels"
)

// Metrics is a parsed Prometheus text exposition, by family name.
type Metrics map[string]*dto.MetricFamily

// ParseMetrics reads a Prometheus text exposition.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// ScrapeMetrics reads the exposition served at url (a /metrics endpoint on loopback).
func ScrapeMetrics(url string) (Metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// SumBy adds the samples of family name whose labels include every pair of match, by the value
// of label (all under "" when label is "").
func (m Metrics) SumBy(name, label string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	want := labels.SelectorFromSet(match)
	for _, s := range m[name].GetMetric() {
		have := labels.Set{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if !want.Matches(have) {
			continue
		}
		out[have[label]] += s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
	}
	return out
}
