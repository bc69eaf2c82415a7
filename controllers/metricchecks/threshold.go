/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"fmt"
	"strconv"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// checkThreshold compares a value with the metric's thresholdRange, or, without one, with
// the deprecated threshold: a minimum when legacyMin is set (the success rate), a maximum
// otherwise. As in Flagger, an unset threshold is 0, so a max-type metric without any
// bound fails on every positive value.
func checkThreshold(c *flaggerv1.Canary, m flaggerv1.CanaryMetric, val float64, legacyMin bool) error {
	var lo, hi *float64
	if tr := m.ThresholdRange; tr != nil {
		lo, hi = tr.Min, tr.Max
	} else if legacyMin {
		lo = &m.Threshold
	} else {
		hi = &m.Threshold
	}
	switch {
	case lo != nil && val < *lo:
		return outOfRange(c, m.Name, val, "<", *lo)
	case hi != nil && val > *hi:
		return outOfRange(c, m.Name, val, ">", *hi)
	}
	return nil
}

func outOfRange(c *flaggerv1.Canary, name string, val float64, op string, bound float64) error {
	return &failure{
		kind: ErrOutOfRange,
		msg: fmt.Sprintf("Halt %s.%s advancement %s %.2f %s %s",
			c.Name, c.Namespace, name, val, op, strconv.FormatFloat(bound, 'f', -1, 64)),
	}
}
