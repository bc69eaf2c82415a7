package canary

import (
	"errors"
	"strconv"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
)

// maxCheckMessage bounds a failed metric's reason in status.lastCheck.
const maxCheckMessage = 512

// recordCheck keeps the results of a metric check in status.lastCheck, so that
// `kubectl herald status` can show each metric's value against its thresholds.
func (p *pass) recordCheck(results []metricchecks.Result) {
	check := &flaggerv1.CanaryCheckStatus{Revision: p.c.Status.LastAppliedSpec, Time: p.nowTime()}
	for i, r := range results {
		if i == 64 { // the schema's bound; the spec has no more metrics than that in practice
			break
		}
		m := flaggerv1.CanaryMetricResult{Name: r.Name, Passed: r.Err == nil}
		if r.Err == nil || errors.Is(r.Err, metricchecks.ErrOutOfRange) {
			m.Value = strconv.FormatFloat(r.Value, 'g', 6, 64)
		}
		if r.Err != nil {
			m.Message = r.Err.Error()
			if len(m.Message) > maxCheckMessage {
				m.Message = m.Message[:maxCheckMessage-3] + "..."
			}
		}
		check.Metrics = append(check.Metrics, m)
	}
	p.c.Status.LastCheck = check
}
