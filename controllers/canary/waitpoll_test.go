package canary

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
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
		if got := p.waitPoll(time.Time{}); got != tc.want {
			t.Errorf("after %s of waiting: next look in %s, want %s", tc.waited, got, tc.want)
		}
	}

	// Without a deadline in reach the poll tops out at maxWaitPoll.
	long := int32(3600)
	c.Spec.ProgressDeadlineSeconds = &long
	p.now = start.Add(10 * time.Minute)
	if got := p.waitPoll(time.Time{}); got != maxWaitPoll {
		t.Errorf("after 10 minutes: %s, want %s", got, maxWaitPoll)
	}
	// A PodPollInterval above maxWaitPoll (a test's setting) is kept.
	p.r.Options.PodPollInterval = time.Minute
	if got := p.waitPoll(time.Time{}); got != time.Minute {
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
		if got := p.primaryPoll(time.Time{}); got != tc.want {
			t.Errorf("after %s of waiting: next look in %s, want %s", tc.waited, got, tc.want)
		}
	}
	long := int32(3600)
	c.Spec.ProgressDeadlineSeconds = &long
	p.now = start
	if got := p.primaryPoll(time.Time{}); got != maxPrimaryPoll {
		t.Errorf("an hour's deadline: next look in %s, want the safety net %s", got, maxPrimaryPoll)
	}
}

// A deadline the readiness judgement counts from later than the Canary's last transition (a
// Deployment's, from when it lost its available pods) is where the poll wakes, even once the
// Canary's own deadline has passed: a poll of maxWaitPoll there failed a release 30 s late.
func TestPollsWakeAtTheJudgedDeadline(t *testing.T) {
	p, _, start := waitingPass()
	p.now = start.Add(121 * time.Second) // past the Canary's 120 s
	failsAt := start.Add(125 * time.Second)
	want := 4*time.Second + 100*time.Millisecond
	if got := p.primaryPoll(failsAt); got != want {
		t.Errorf("primary: next look in %s, want %s (just past the judged deadline)", got, want)
	}
	if got := p.waitPoll(failsAt); got != want {
		t.Errorf("canary: next look in %s, want %s (just past the judged deadline)", got, want)
	}
	// Before the Canary's deadline too, the judged one wins when it is later.
	p.now = start.Add(100 * time.Second)
	if got := p.primaryPoll(start.Add(150 * time.Second)); got != 50*time.Second+100*time.Millisecond {
		t.Errorf("primary, judged deadline at 150 s: next look in %s", got)
	}
}

// The waits for the primary and for the canary take their deadline from the readiness
// judgement: a Deployment that lost its pods 10 s into a 120 s wait fails 130 s into it, and
// a pass 121 s into the wait looks again just past that, not maxWaitPoll later.
func TestWaitsLookAgainJustPastTheJudgedDeadline(t *testing.T) {
	ctx := context.Background()
	p, c, start := waitingPass()
	c.Status.LastPromotedSpec = "rev-1"
	unavailable := func(name string) workloads.Workload {
		lost := metav1.NewTime(start.Add(10 * time.Second))
		return workloads.Wrap(&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 1},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse,
					Reason: "MinimumReplicasUnavailable", LastUpdateTime: lost, LastTransitionTime: lost}}},
		})
	}
	p.primary, p.target = unavailable("podinfo-primary"), unavailable("podinfo")
	p.r.APIReader = fake.NewClientBuilder().Build()
	p.label, p.value = "app", "podinfo"
	p.now = start.Add(121 * time.Second)
	want := 9*time.Second + 100*time.Millisecond

	res, halted, err := p.checkPrimaryReady(ctx)
	if err != nil || !halted || res.RequeueAfter != want {
		t.Errorf("waiting for the primary: %+v halted=%v %v; want a look in %s", res, halted, err, want)
	}
	res, halted, err = p.checkCanaryReady(ctx)
	if err != nil || !halted || res.RequeueAfter != want {
		t.Errorf("waiting for the canary: %+v halted=%v %v; want a look in %s", res, halted, err, want)
	}

	// At that instant both have failed (a pass waking there must not find them waiting):
	// the pass would roll back, which this test does not follow.
	p.now = start.Add(130 * time.Second)
	if r := p.primaryReady(); !r.Failed {
		t.Errorf("the primary at its judged deadline: %+v, want failed", r)
	}
	if r, err := p.canaryReady(ctx); err != nil || !r.Failed {
		t.Errorf("the canary at its judged deadline: %+v, %v; want failed", r, err)
	}
}
