/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"fmt"
	"strconv"
	"time"

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

// outOfRange says that a metric is out of range in Flagger's words: "success rate 98.50% < 99%"
// and "request duration 612ms > 500ms" for the builtins, "<name> 4.20 > 1" for the others.
func outOfRange(c *flaggerv1.Canary, name string, val float64, op string, bound float64) error {
	var what string
	switch name {
	case RequestSuccessRate:
		what = fmt.Sprintf("success rate %.2f%% %s %s%%", val, op, strconv.FormatFloat(bound, 'f', -1, 64))
	case RequestDuration:
		ms := func(v float64) time.Duration {
			return time.Duration(v * float64(time.Millisecond)).Round(time.Microsecond)
		}
		what = fmt.Sprintf("request duration %v %s %v", ms(val), op, ms(bound))
	default:
		what = fmt.Sprintf("%s %.2f %s %s", name, val, op, strconv.FormatFloat(bound, 'f', -1, 64))
	}
	return &failure{kind: ErrOutOfRange, msg: fmt.Sprintf("Halt %s.%s advancement %s", c.Name, c.Namespace, what)}
}
