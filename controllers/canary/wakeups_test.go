package canary

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// A target's status-only update wakes its Canary only while a pass reads the target's status;
// a spec or label change always does.
func TestTargetStatusWakesOnlyCanariesThatReadIt(t *testing.T) {
	target := func(gen int64, ready int32) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Generation = "podinfo", gen
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = ready, ready
		return d
	}
	for _, tc := range []struct {
		phase    flaggerv1.CanaryPhase
		weight   int
		old, new *appsv1.Deployment
		wakes    bool
	}{
		{flaggerv1.CanaryPhaseSucceeded, 0, target(2, 0), target(2, 1), false},
		{flaggerv1.CanaryPhaseInitialized, 0, target(2, 1), target(2, 0), false},
		{flaggerv1.CanaryPhaseFailed, 0, target(2, 1), target(2, 0), false},
		// A rollback that left the users on the canary hands them back when its pods go.
		{flaggerv1.CanaryPhaseFailed, 100, target(2, 1), target(2, 0), true},
		{flaggerv1.CanaryPhaseSucceeded, 0, target(2, 0), target(3, 0), true}, // a new revision
		{flaggerv1.CanaryPhaseProgressing, 10, target(2, 0), target(2, 1), true},
		{flaggerv1.CanaryPhaseInitializing, 0, target(2, 0), target(2, 1), true},
		{flaggerv1.CanaryPhasePromoting, 100, target(2, 1), target(2, 0), true},
		{flaggerv1.CanaryPhaseWaiting, 0, target(2, 0), target(2, 1), true},
	} {
		c := flaggerv1.Canary{}
		c.Status.Phase, c.Status.CanaryWeight = tc.phase, tc.weight
		p := statusWatchedBy(func(client.Object) bool { return readsTargetStatus(&c) })
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.wakes {
			t.Errorf("%s at canary weight %d, generation %d→%d, ready %d→%d: wakes = %v, want %v", tc.phase, tc.weight,
				tc.old.Generation, tc.new.Generation, tc.old.Status.ReadyReplicas, tc.new.Status.ReadyReplicas, got, tc.wakes)
		}
	}
	if !notCreated().Delete(event.DeleteEvent{Object: target(1, 0)}) || !notCreated().Update(event.UpdateEvent{ObjectOld: target(1, 0), ObjectNew: target(2, 0)}) {
		t.Error("notCreated must keep deletions and changes")
	}
}

// The counting wrapper counts each request it queues and keeps the queue a priority queue, so
// that the initial list's requests still go in at low priority (a restart serves fresh events
// first).
func TestCountedKeepsPriorities(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("wakeups-test")
	defer q.ShutDown()
	counts := map[string]int{}
	h := counted("canary", func(s string) { counts[s]++ }, &handler.EnqueueRequestForObject{})
	c := &flaggerv1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	h.Create(context.Background(), event.CreateEvent{Object: c, IsInInitialList: true}, q)
	if counts["canary"] != 1 || q.Len() != 1 {
		t.Fatalf("counted %v, queue length %d; want 1 and 1", counts, q.Len())
	}
	item, priority, _ := q.GetWithPriority()
	if item.Name != "podinfo" || priority != handler.LowPriority {
		t.Errorf("queued %v at priority %d, want podinfo at the initial list's %d", item, priority, handler.LowPriority)
	}
}

// Right after a scale-up the cache still shows the Canary idle; what the pass left decides.
func TestWatchesTargetTrustsThePassOverTheCache(t *testing.T) {
	r := &Reconciler{}
	c := flaggerv1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Status.Phase = flaggerv1.CanaryPhaseSucceeded
	if r.watchesTarget(c) {
		t.Error("an idle Canary no pass has seen watches its target")
	}
	r.readsTarget.Store(types.NamespacedName{Namespace: "test", Name: "podinfo"}, true) // scaleUp
	if !r.watchesTarget(c) {
		t.Error("a Canary whose pass scaled its target up, cached as idle, does not watch its target")
	}
	c.Status.Phase = flaggerv1.CanaryPhaseProgressing
	r.readsTarget.Store(types.NamespacedName{Namespace: "test", Name: "podinfo"}, false) // finalised
	if r.watchesTarget(c) {
		t.Error("a Canary whose pass finalised it, cached as Progressing, still watches its target")
	}
}

// Each pass records whether its Canary reads the target's status, and scaleUp does so before
// its patch: the cache still shows the idle Canary when the target's first status updates come.
func TestPassesRecordWhetherTheyReadTheTarget(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, &flaggerv1.CanaryAnalysis{Interval: testInterval.String(), Threshold: 2, Iterations: 1})
	w.initialise()
	idle := *w.canary() // what the cache shows until the release's status write comes back
	if w.r.watchesTarget(idle) {
		t.Fatal("an Initialized Canary wakes on its target's status")
	}
	duringScaleUp := false
	w.r.Client = interceptor.NewClient(w.cl, interceptor.Funcs{
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if d, ok := obj.(*appsv1.Deployment); ok && d.Name == testName && d.Spec.Replicas != nil && *d.Spec.Replicas > 0 {
				duringScaleUp = w.r.watchesTarget(idle)
			}
			return cl.Patch(ctx, obj, patch, opts...)
		},
	})
	w.release(imageV2)
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	if !duringScaleUp {
		t.Error("while the target was scaled up, its status updates would not wake the Canary the cache shows idle")
	}
	states := w.runToEnd()
	if last := states[len(states)-1]; !strings.HasPrefix(last, string(flaggerv1.CanaryPhaseSucceeded)) {
		t.Fatalf("run ended %q", last)
	}
	progressing := idle
	progressing.Status.Phase = flaggerv1.CanaryPhaseProgressing // a cache behind the last pass
	if w.r.watchesTarget(progressing) {
		t.Error("after the promotion, the target's scale-down wakes the Canary")
	}
	if err := w.cl.Delete(w.ctx, w.canary()); err != nil {
		t.Fatal(err)
	}
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.r.readsTarget.Load(types.NamespacedName{Namespace: testNS, Name: testName}); ok {
		t.Error("a deleted Canary's entry is kept")
	}
}

// A primary or Service names its Canary by label; a Service also by its Canary controller
// owner, and only one of flagger.app.
func TestCanaryOf(t *testing.T) {
	owned := func(apiVersion string) *corev1.Service {
		s := &corev1.Service{}
		s.Namespace = testNS
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: "Canary", Name: "podinfo", Controller: ptr.To(true)}}
		return s
	}
	labelled := &corev1.Service{}
	labelled.Namespace, labelled.Labels = testNS, map[string]string{contract.LabelPrimaryOf: "podinfo"}
	for name, tc := range map[string]struct {
		o         client.Object
		withOwner bool
		want      int
	}{
		"label":                  {labelled, false, 1},
		"flagger.app owner":      {owned("flagger.app/v1beta1"), true, 1},
		"owner not asked for":    {owned("flagger.app/v1beta1"), false, 0},
		"another group's Canary": {owned("example.com/v1"), true, 0},
	} {
		got := canaryOf(tc.o, tc.withOwner)
		if len(got) != tc.want || (tc.want == 1 && got[0].NamespacedName != (types.NamespacedName{Namespace: testNS, Name: "podinfo"})) {
			t.Errorf("%s: %v", name, got)
		}
	}
}
