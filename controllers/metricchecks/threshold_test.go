/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"errors"
	"testing"

	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestCheckThreshold(t *testing.T) {
	c := canary()
	rng := func(lo, hi *float64) *flaggerv1.CanaryThresholdRange {
		return &flaggerv1.CanaryThresholdRange{Min: lo, Max: hi}
	}
	for _, tc := range []struct {
		name      string
		metric    flaggerv1.CanaryMetric
		val       float64
		legacyMin bool
		want      string // "" = passes
	}{
		{"range min passes at the bound", flaggerv1.CanaryMetric{Name: "sr", ThresholdRange: rng(ptr.To(99.0), nil)}, 99, true, ""},
		{"range min fails below", flaggerv1.CanaryMetric{Name: "sr", ThresholdRange: rng(ptr.To(99.0), nil)}, 42, true,
			"Halt podinfo.test advancement sr 42.00 < 99"},
		{"range max fails above", flaggerv1.CanaryMetric{Name: "d", ThresholdRange: rng(nil, ptr.To(500.0))}, 612.345, false,
			"Halt podinfo.test advancement d 612.35 > 500"},
		{"range min and max, inside", flaggerv1.CanaryMetric{Name: "x", ThresholdRange: rng(ptr.To(10.0), ptr.To(1000.0))}, 10, false, ""},
		{"range min and max, above", flaggerv1.CanaryMetric{Name: "x", ThresholdRange: rng(ptr.To(10.0), ptr.To(1000.0))}, 1000.5, false,
			"Halt podinfo.test advancement x 1000.50 > 1000"},
		{"range beats legacy threshold", flaggerv1.CanaryMetric{Name: "x", Threshold: 1, ThresholdRange: rng(nil, ptr.To(5.0))}, 3, false, ""},
		{"empty range accepts anything", flaggerv1.CanaryMetric{Name: "x", ThresholdRange: rng(nil, nil)}, -7, false, ""},
		{"legacy success-rate threshold is a minimum", flaggerv1.CanaryMetric{Name: "sr", Threshold: 99}, 98.5, true,
			"Halt podinfo.test advancement sr 98.50 < 99"},
		{"legacy success-rate threshold passes above", flaggerv1.CanaryMetric{Name: "sr", Threshold: 99}, 99.5, true, ""},
		{"legacy threshold is a maximum otherwise", flaggerv1.CanaryMetric{Name: "d", Threshold: 500}, 501, false,
			"Halt podinfo.test advancement d 501.00 > 500"},
		{"legacy max passes below", flaggerv1.CanaryMetric{Name: "d", Threshold: 500}, 499, false, ""},
		{"fractional bound printed exactly", flaggerv1.CanaryMetric{Name: "e", Threshold: 0.5}, 0.75, false,
			"Halt podinfo.test advancement e 0.75 > 0.5"},
		{"no bound at all: max 0, as Flagger", flaggerv1.CanaryMetric{Name: "e"}, 0.01, false,
			"Halt podinfo.test advancement e 0.01 > 0"},
		{"no bound at all on the success rate passes", flaggerv1.CanaryMetric{Name: "sr"}, 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkThreshold(c, tc.metric, tc.val, tc.legacyMin)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected failure %q", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("%v is not ErrOutOfRange", err)
			}
		})
	}
}
