package canary

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// A target's status-only update wakes its Canary only while a phase reads the target's status;
// a spec or label change always does.
func TestTargetStatusWakesOnlyPhasesThatReadIt(t *testing.T) {
	target := func(gen int64, ready int32) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Generation = "podinfo", gen
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = ready, ready
		return d
	}
	for _, tc := range []struct {
		phase    flaggerv1.CanaryPhase
		old, new *appsv1.Deployment
		wakes    bool
	}{
		{flaggerv1.CanaryPhaseSucceeded, target(2, 0), target(2, 1), false},
		{flaggerv1.CanaryPhaseInitialized, target(2, 1), target(2, 0), false},
		{flaggerv1.CanaryPhaseFailed, target(2, 1), target(2, 0), false},
		{flaggerv1.CanaryPhaseSucceeded, target(2, 0), target(3, 0), true}, // a new revision
		{flaggerv1.CanaryPhaseProgressing, target(2, 0), target(2, 1), true},
		{flaggerv1.CanaryPhaseInitializing, target(2, 0), target(2, 1), true},
		{flaggerv1.CanaryPhasePromoting, target(2, 1), target(2, 0), true},
		{flaggerv1.CanaryPhaseWaiting, target(2, 0), target(2, 1), true},
	} {
		p := statusWatchedBy(func(client.Object) bool { return !targetIdle(tc.phase) })
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.wakes {
			t.Errorf("%s, generation %d→%d, ready %d→%d: wakes = %v, want %v", tc.phase,
				tc.old.Generation, tc.new.Generation, tc.old.Status.ReadyReplicas, tc.new.Status.ReadyReplicas, got, tc.wakes)
		}
	}
	if !notCreated().Delete(event.DeleteEvent{Object: target(1, 0)}) || notCreated().Create(event.CreateEvent{Object: target(1, 0)}) {
		t.Error("notCreated must drop creations and keep deletions")
	}
}
