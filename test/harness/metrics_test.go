package harness

import (
	"strings"
	"testing"
)

// Metrics are summed by a label, over the samples whose labels match.
func TestMetricsSumBy(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(`# TYPE reconciles counter
reconciles{controller="canary",result="success"} 3
reconciles{controller="canary",result="requeue_after"} 4
reconciles{controller="other",result="success"} 100
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.SumBy("reconciles", "", map[string]string{"controller": "canary"})[""]; got != 7 {
		t.Errorf("canary reconciles %v, want 7", got)
	}
	if got := m.SumBy("reconciles", "result", nil); got["success"] != 103 || got["requeue_after"] != 4 {
		t.Errorf("by result %v", got)
	}
	if got := m.SumBy("missing", "", nil); len(got) != 0 {
		t.Errorf("a missing family sums to %v", got)
	}
}
