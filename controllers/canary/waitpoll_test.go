package canary

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// waitingPass is a pass of a Canary with a 120 s progress deadline that started waiting at start.
func waitingPass() (p *pass, c *flaggerv1.Canary, start time.Time) {
	start = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	deadline := int32(120)
	c = &flaggerv1.Canary{Spec: flaggerv1.CanarySpec{ProgressDeadlineSeconds: &deadline}}
	c.Status.LastTransitionTime = metav1.NewTime(start)
	return &pass{r: &Reconciler{Options: Options{PodPollInterval: 2 * time.Second}}, c: c}, c, start
}

func TestWaitPollStretchesWithTheWaitAndStopsAtTheDeadline(t *testing.T) {
	p, c, start := waitingPass()
	for _, tc := range []struct {
		waited, want time.Duration
	}{
		{0, 2 * time.Second},                                       // a fresh wait polls at PodPollInterval
		{4 * time.Second, 2 * time.Second},                         // still at the floor
		{40 * time.Second, 10 * time.Second},                       // a quarter of the wait
		{100 * time.Second, 20*time.Second + 100*time.Millisecond}, // not past the deadline at 120 s
		{119 * time.Second, 1*time.Second + 100*time.Millisecond},
		{200 * time.Second, 30 * time.Second}, // deadline passed (judged already): at most maxWaitPoll
	} {
		p.now = start.Add(tc.waited)
		if got := p.waitPoll(); got != tc.want {
			t.Errorf("after %s of waiting: next look in %s, want %s", tc.waited, got, tc.want)
		}
	}

	// Without a deadline in reach the poll tops out at maxWaitPoll.
	long := int32(3600)
	c.Spec.ProgressDeadlineSeconds = &long
	p.now = start.Add(10 * time.Minute)
	if got := p.waitPoll(); got != maxWaitPoll {
		t.Errorf("after 10 minutes: %s, want %s", got, maxWaitPoll)
	}
	// A PodPollInterval above maxWaitPoll (a test's setting) is kept.
	p.r.Options.PodPollInterval = time.Minute
	if got := p.waitPoll(); got != time.Minute {
		t.Errorf("with PodPollInterval 1m: %s", got)
	}
}

// Waiting for the primary needs no poll but the progress deadline: its status events wake the
// Canary.
func TestPrimaryPollWakesOnlyAtTheDeadline(t *testing.T) {
	p, c, start := waitingPass()
	for _, tc := range []struct {
		waited, want time.Duration
	}{
		{0, 120*time.Second + 100*time.Millisecond},
		{100 * time.Second, 20*time.Second + 100*time.Millisecond},
		{200 * time.Second, maxWaitPoll}, // past the deadline, which the Deployment's condition may still not show
	} {
		p.now = start.Add(tc.waited)
		if got := p.primaryPoll(); got != tc.want {
			t.Errorf("after %s of waiting: next look in %s, want %s", tc.waited, got, tc.want)
		}
	}
	long := int32(3600)
	c.Spec.ProgressDeadlineSeconds = &long
	p.now = start
	if got := p.primaryPoll(); got != maxPrimaryPoll {
		t.Errorf("an hour's deadline: next look in %s, want the safety net %s", got, maxPrimaryPoll)
	}
}
