package canary

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/herald-rollouts/herald/controllers/hooks"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// With skipAnalysis the canary still runs, and the promotion waits until it is ready: a
// primary that then fails to roll out hands its users to pods that serve.
func TestSkipAnalysisScalesTheCanaryUpFirst(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	c := w.canary()
	c.Spec.SkipAnalysis = true
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.broken = map[string]bool{testName: true} // the canary does not become ready
	w.release(imageV2)
	if got := w.tick(); !strings.HasPrefix(got, "Progressing") {
		t.Fatalf("after detection: %q, want Progressing (the canary scales up first)", got)
	}
	w.wantReplicas(testName, 2)
	for range 3 {
		if got := w.tick(); !strings.HasPrefix(got, "Progressing") && !strings.HasPrefix(got, "Failed") {
			t.Fatalf("promoted before the canary was ready: %q", got)
		}
	}
	if w.primaryImage() != imageV1 {
		t.Fatal("the primary got the new image before the canary was ready")
	}

	// A canary that is ready is promoted without an analysis; if the primary then cannot roll
	// out, the traffic goes to the canary, which serves.
	w2 := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w2.initialise()
	c = w2.canary()
	c.Spec.SkipAnalysis = true
	if err := w2.cl.Update(w2.ctx, c); err != nil {
		t.Fatal(err)
	}
	w2.release(imageV2)
	w2.tick() // Progressing, the canary scaled up and ready
	w2.broken = map[string]bool{testName + "-primary": true}
	states := w2.runToEnd()
	if got, want := states[len(states)-1], "Failed w100 i0 f0 | 0/100"; got != want {
		t.Fatalf("failed promotion after skipAnalysis: %q, want %q (states %q)", got, want, states)
	}
	w2.wantReplicas(testName, 2)
}

// A target that gets replicas behind Herald's back while idle (the webhook was down, or a write
// dropped Herald's label) is scaled back to zero at once, and the replicas are kept as a wish
// for the primary.
func TestIdleTargetGivenReplicasIsScaledBack(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
	w.initialise()
	d := w.deployment(testName)
	three := int32(3)
	d.Spec.Replicas = &three
	delete(d.Labels, contract.LabelCanary)
	if err := w.cl.Update(w.ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	w.wantReplicas(testName, 0)
	w.wantReplicas(testName+"-primary", 3)
	d = w.deployment(testName)
	if d.Annotations[contract.AnnotationDesiredReplicas] != "3" || d.Labels[contract.LabelCanary] != testName {
		t.Errorf("target metadata after the repair: labels %v annotations %v", d.Labels, d.Annotations)
	}
	if got := w.canary().Status.Phase; got != flaggerv1.CanaryPhaseInitialized {
		t.Errorf("phase %s: replicas are not a new revision", got)
	}
}

// The primary is checked at every step: a run halts while it is not ready and rolls back when
// it has failed.
func TestPrimaryHealthIsCheckedDuringARun(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // 10
	w.broken = map[string]bool{testName + "-primary": true}
	// Make the primary's pods go away under it (a node failure, say).
	w.rollout()
	states := w.runToEnd()
	last := states[len(states)-1]
	if !strings.HasPrefix(last, "Failed") {
		t.Fatalf("states %q: the run went on with a failed primary", states)
	}
	// The primary has no ready pod: the canary, which serves, keeps every user and its pods.
	if !strings.HasSuffix(last, "| 0/100") {
		t.Fatalf("states %q: the rollback sent users to a primary with no ready pod", states)
	}
	if n := w.deployment(testName).Spec.Replicas; n == nil || *n == 0 {
		t.Fatalf("the rollback scaled away the only serving pods (canary replicas %v)", n)
	}
	w.wantEvent("Warning Primary podinfo-primary.test failed: …", 1)
	// The primary, which runs the promoted revision, serves again: the users go back to it
	// and the failed revision's pods go.
	delete(w.broken, testName+"-primary")
	w.rollout()
	if got := w.tick(); !strings.HasPrefix(got, "Failed w0") || !strings.HasSuffix(got, "| 100/0") {
		t.Fatalf("after the primary recovered: %q, want the traffic back on it", got)
	}
	w.wantReplicas(testName, 0)
	if strings.Contains(strings.Join(states, ","), "w20") {
		t.Errorf("the weight advanced while the primary was not ready: %q", states)
	}
}

// After a failed promotion the canary holds the traffic; the next revision's run never routes
// users to the broken primary, and its promotion repairs it.
func TestNextRevisionAfterAFailedPromotionKeepsTrafficOffTheBrokenPrimary(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 25, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // 25
	w.tick() // 50
	w.broken = map[string]bool{testName + "-primary": true}
	w.tick() // Promoting: the primary takes imageV2 and breaks
	states := w.runToEnd()
	if got := states[len(states)-1]; got != "Failed w100 i0 f0 | 0/100" {
		t.Fatalf("failed promotion: %q", got)
	}
	// The fix: a new revision. The primary stays broken until it is promoted to it.
	w.release(imageV3)
	w.vsWrites = nil
	w.tick()
	for i := 0; i < 12; i++ {
		s := w.tick()
		if strings.HasPrefix(s, "Progressing w50") {
			// The promotion of the new template on the next step rolls out.
			delete(w.broken, testName+"-primary")
		}
		if strings.HasPrefix(s, "Succeeded") || strings.HasPrefix(s, "Failed") {
			break
		}
	}
	for _, split := range w.vsWrites {
		if !strings.HasPrefix(split, "0/100") && split != "100/0" {
			t.Errorf("a route sent users to the broken primary: %q (all writes %q)", split, w.vsWrites)
		}
	}
	if got := w.state(); got != "Succeeded w0 i0 f0 | 100/0" {
		t.Errorf("after the fix: %q", got)
	}
	if w.primaryImage() != imageV3 {
		t.Errorf("primary image %s, want %s", w.primaryImage(), imageV3)
	}
}

// Deleting a Canary never waits for Herald (no finalizer), keeps the primary serving until the
// target does again, then puts the user's apex Service back as it was and deletes the primary.
func TestDeletionGivesEverythingBack(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
	// The user's own Service named like the apex, selecting the target's pods.
	userSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": testName},
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromInt32(9898)}}},
	}
	if err := w.cl.Create(w.ctx, userSvc.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	w.initialise()
	c := w.canary()
	if len(c.Finalizers) != 0 {
		t.Fatalf("the Canary has finalizers %v: deleting it would wait for Herald", c.Finalizers)
	}
	primary := w.deployment(testName + "-primary")
	if metav1.GetControllerOf(primary) != nil || primary.Labels[contract.LabelPrimaryOf] != testName {
		t.Fatalf("the primary must not be owned by the Canary: owner %v labels %v", metav1.GetControllerOf(primary), primary.Labels)
	}
	var apex corev1.Service
	if err := w.cl.Get(w.ctx, client.ObjectKey{Namespace: testNS, Name: testName}, &apex); err != nil {
		t.Fatal(err)
	}
	if apex.Spec.Selector["app"] != testName+"-primary" || apex.Labels[contract.LabelAdoptedBy] != testName || metav1.GetControllerOf(&apex) != nil {
		t.Fatalf("the user's apex Service is not adopted: %+v", apex.ObjectMeta)
	}

	if err := w.cl.Delete(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	rl := &releaser{r: w.r}
	release := func() ctrl.Result {
		t.Helper()
		res, err := rl.Reconcile(w.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName + "-primary"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	w.broken = map[string]bool{testName: true} // the target's pods are not ready yet
	if res := release(); res.RequeueAfter == 0 {
		t.Error("the releaser does not come back to finish")
	}
	w.rollout()
	w.wantReplicas(testName, 2)
	target := w.deployment(testName)
	if _, marked := target.Labels[contract.LabelCanary]; marked || target.Annotations[contract.AnnotationIdle] != "" {
		t.Errorf("Herald's marks left on the target: %v %v", target.Labels, target.Annotations)
	}
	release() // the target does not serve yet: the primary stays
	w.deployment(testName + "-primary")

	delete(w.broken, testName)
	w.rollout()
	release()
	var gone appsv1.Deployment
	if err := w.cl.Get(w.ctx, client.ObjectKey{Namespace: testNS, Name: testName + "-primary"}, &gone); !apierrors.IsNotFound(err) {
		t.Errorf("the primary is still there once the target serves: %v", err)
	}
	var back corev1.Service
	if err := w.cl.Get(w.ctx, client.ObjectKey{Namespace: testNS, Name: testName}, &back); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(back.Spec.Selector, userSvc.Spec.Selector) || !maps.Equal(back.Labels, userSvc.Labels) || len(back.Annotations) != 0 ||
		len(back.Spec.Ports) != 1 || back.Spec.Ports[0].Port != 80 {
		t.Errorf("the user's Service is not as it was: %+v %+v", back.ObjectMeta, back.Spec)
	}
}

// With the hook runner, a step's hooks run off the reconcile worker: a pass whose hooks are
// still running returns at once, the finished call wakes the Canary, and each step's hook is
// called exactly once.
func TestHooksRunOffTheWorkers(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
	c := w.canary()
	slow := w.hooks.hook(flaggerv1.PreRolloutHook)
	c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{slow}
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	runner := hooks.NewRunner(w.r.Hooks, logr.Discard(), hooks.RunnerOptions{Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = runner.Start(ctx) }()
	w.r.HookRunner = runner
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing

	release := make(chan struct{})
	w.hooks.block(flaggerv1.PreRolloutHook, release)
	start := time.Now()
	w.tick() // the first step's hook is asked for
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a pass waited %s for a hook", d)
	}
	if s := w.canary().Status; s.Iterations != 0 {
		t.Fatalf("the step advanced before its hook answered: %+v", s)
	}
	close(release)
	select {
	case <-runner.Events():
	case <-time.After(10 * time.Second):
		t.Fatal("the finished hook call did not wake the Canary")
	}
	if err := w.reconcile(); err != nil { // the wake-up's pass, at the same time
		t.Fatal(err)
	}
	if got := w.canary().Status.Iterations; got != 1 {
		t.Fatalf("iterations %d after the hook answered, want 1", got)
	}
	if n := w.hooks.count(flaggerv1.PreRolloutHook); n != 1 {
		t.Errorf("the first step's hook was called %d times, want 1", n)
	}
}

// A pre-rollout hook that passed is never called again for the revision, even when a rollout
// hook then fails (found by the fault suite: the run went back to its first step).
func TestPreRolloutHookPassesOncePerRevision(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Threshold = 25, 50, 3 }))
	c := w.canary()
	c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{w.hooks.hook(flaggerv1.PreRolloutHook), w.hooks.hook(flaggerv1.RolloutHook)}
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.initialise()
	w.hooks.set(flaggerv1.RolloutHook, http.StatusInternalServerError)
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // the first step: pre-rollout passes, weight 25
	w.tick() // the rollout hook fails
	w.tick() // and again
	w.hooks.set(flaggerv1.RolloutHook, http.StatusOK)
	states := w.runToEnd()
	if last := states[len(states)-1]; !strings.HasPrefix(last, "Succeeded") {
		t.Fatalf("states %q", states)
	}
	if n := w.hooks.count(flaggerv1.PreRolloutHook); n != 1 {
		t.Errorf("the pre-rollout hook was called %d times for one revision, want 1", n)
	}
}

// A gate call that runs into the next analysis interval (a slow endpoint, a long timeout) is
// that interval's answer: it is read, not thrown away for a new call that would end in the
// interval after, and so on forever (found by review).
func TestGateAnswerArrivingInTheNextIntervalIsRead(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
	c := w.canary()
	c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{w.hooks.hook(flaggerv1.ConfirmPromotionHook)}
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := w.now
	setClock := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }
	runner := hooks.NewRunner(w.r.Hooks, logr.Discard(), hooks.RunnerOptions{Workers: 2,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = runner.Start(ctx) }()
	w.r.HookRunner = runner
	w.initialise()
	w.release(imageV2)
	release := make(chan struct{})
	w.hooks.block(flaggerv1.ConfirmPromotionHook, release)
	asked := false
	for range 8 {
		setClock(w.now.Add(testInterval))
		w.tick()
		if w.hooks.count(flaggerv1.ConfirmPromotionHook) > 0 || runnerBusy(runner) {
			asked = true
			break
		}
	}
	if !asked {
		t.Fatalf("the confirm-promotion gate was never asked: %q", w.state())
	}
	// The endpoint answers only in the next interval.
	w.now = w.now.Add(testInterval)
	setClock(w.now)
	close(release)
	select {
	case <-runner.Events():
	case <-time.After(10 * time.Second):
		t.Fatal("the finished gate call did not wake the Canary")
	}
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	w.wantEvent("Normal Confirm-promotion check confirm-promotion passed", 1)
	if n := w.hooks.count(flaggerv1.ConfirmPromotionHook); n != 1 {
		t.Errorf("the gate was called %d times, want 1", n)
	}
}

func runnerBusy(r *hooks.Runner) bool {
	active, _ := r.Len()
	return active > 0
}

// A run stalled in the middle (here: its target deleted at 20%) keeps no users on the canary
// pods, which are gone: the pass routes them to the primary before it reports the stall.
func TestStalledRunRoutesAroundTheMissingCanary(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // 10
	w.tick() // 20
	if got := w.routes(); got != "80/20" {
		t.Fatalf("routes %q before the deletion, want 80/20", got)
	}
	if err := w.cl.Delete(w.ctx, w.deployment(testName)); err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(testInterval)
	_ = w.reconcile()
	if stall := flaggerv1.FindCondition(w.canary().Status.Conditions, flaggerv1.StalledType); stall == nil || stall.Reason != "TargetNotFound" {
		t.Fatalf("conditions %+v: want Stalled TargetNotFound", w.canary().Status.Conditions)
	}
	if got := w.routes(); got != "100/0" {
		t.Fatalf("routes %q while the target is gone: users are sent to deleted pods", got)
	}
}

// Retargeting a Canary releases the old target and primary. The apex Service it adopted stays
// its own while it is still its apex (spec.service.name kept); an apex named for the old target
// is given back as it was, or it would select the pods of the primary that goes.
func TestRetarget(t *testing.T) {
	for _, tc := range []struct {
		name, serviceName, wantSelector string
		wantAdopted                     bool
	}{
		{"spec.service.name keeps the apex", testName, testName + "-primary", true},
		{"an apex named for the old target is given back", "", testName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
			userSvc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": testName},
					Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromInt32(9898)}}},
			}
			if err := w.cl.Create(w.ctx, userSvc); err != nil {
				t.Fatal(err)
			}
			w.initialise()
			c := w.canary()
			c.Spec.Service.Name = tc.serviceName
			c.Spec.TargetRef.Name = testName + "-v2"
			if err := w.cl.Update(w.ctx, c); err != nil {
				t.Fatal(err)
			}
			rl := &releaser{r: w.r}
			for range 3 {
				if _, err := rl.Reconcile(w.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName + "-primary"}}); err != nil {
					t.Fatal(err)
				}
				w.rollout()
			}
			var apex corev1.Service
			if err := w.cl.Get(w.ctx, client.ObjectKey{Namespace: testNS, Name: testName}, &apex); err != nil {
				t.Fatal(err)
			}
			if apex.Spec.Selector["app"] != tc.wantSelector || (apex.Labels[contract.LabelAdoptedBy] == testName) != tc.wantAdopted {
				t.Fatalf("apex Service selector %v labels %v: want selector app=%s, adopted %v", apex.Spec.Selector, apex.Labels, tc.wantSelector, tc.wantAdopted)
			}
			if _, marked := w.deployment(testName).Labels[contract.LabelCanary]; marked {
				t.Error("the old target keeps Herald's mark after the retarget")
			}
		})
	}
}

// With mirroring, the next revision after a failed promotion (the primary serves no one) skips
// the mirror step, which has no live traffic to copy, instead of taking it at every pass.
func TestMirrorStepSkippedWhileThePrimaryServesNoOne(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Mirror = 25, 50, true }))
	w.initialise()
	w.release(imageV2)
	for range 8 {
		if s := w.tick(); strings.HasPrefix(s, "Progressing w50") {
			break
		}
	}
	w.broken = map[string]bool{testName + "-primary": true}
	w.tick() // Promoting: the primary takes imageV2 and breaks
	states := w.runToEnd()
	if got := states[len(states)-1]; !strings.HasPrefix(got, "Failed w100") {
		t.Fatalf("failed promotion: %q", states)
	}
	w.release(imageV3)
	advanced := false
	for range 8 {
		if s := w.tick(); strings.HasPrefix(s, "Progressing w25") {
			advanced = true
			break
		}
	}
	if !advanced {
		t.Fatalf("the run never advanced past the mirror step: %q (events %q)", w.state(), w.events)
	}
}

// Reverting the target to the promoted revision while the canary holds the users (the primary
// has no ready pod) leaves the canary serving until the primary does.
func TestRevertKeepsTheServingCanaryUntilThePrimaryServes(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick()
	w.tick()
	w.broken = map[string]bool{testName + "-primary": true}
	w.rollout()
	if states := w.runToEnd(); !strings.HasSuffix(states[len(states)-1], "| 0/100") {
		t.Fatalf("the canary does not hold the users: %q", states)
	}
	w.release(imageV1) // the user reverts to the promoted revision
	w.tick()
	if n := w.deployment(testName).Spec.Replicas; n == nil || *n == 0 {
		t.Fatalf("the revert scaled away the canary that holds every user")
	}
	if got := w.routes(); got != "0/100" {
		t.Fatalf("routes %q while the primary serves no one", got)
	}
	delete(w.broken, testName+"-primary")
	w.rollout()
	if got := w.tick(); !strings.HasPrefix(got, "Succeeded w0") || !strings.HasSuffix(got, "| 100/0") {
		t.Fatalf("after the primary recovered: %q", got)
	}
}

// The releaser looks at a primary when it appears or is relabelled, not at each status update
// of its rollouts; and a cache that shows the Canary using the primary spares the live read
// that a verdict of "gone" needs.
func TestReleaserLooksOnlyWhenACanaryMayBeGone(t *testing.T) {
	p := mayBeOrphaned()
	primary := func(ready int32, labels map[string]string) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Labels, d.Status.ReadyReplicas = testName+"-primary", labels, ready
		return d
	}
	of := map[string]string{contract.LabelPrimaryOf: testName}
	if p.Update(event.UpdateEvent{ObjectOld: primary(0, of), ObjectNew: primary(1, of)}) {
		t.Error("a status update of a primary wakes the releaser")
	}
	if p.Delete(event.DeleteEvent{Object: primary(1, of)}) {
		t.Error("a primary's deletion wakes the releaser")
	}
	if !p.Update(event.UpdateEvent{ObjectOld: primary(1, of), ObjectNew: primary(1, map[string]string{contract.LabelPrimaryOf: "other"})}) {
		t.Error("a primary relabelled to another Canary does not wake the releaser")
	}
	if !p.Create(event.CreateEvent{Object: primary(1, of)}) {
		t.Error("a primary found at start-up does not wake the releaser")
	}

	w := newWorld(t, "kubernetes", nil)
	w.initialise()
	var live int
	w.r.APIReader = interceptor.NewClient(w.cl, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			live++
			return c.Get(ctx, key, obj, opts...)
		},
	})
	rl := &releaser{r: w.r}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName + "-primary"}}
	if _, err := rl.Reconcile(w.ctx, req); err != nil {
		t.Fatal(err)
	}
	if live != 0 {
		t.Errorf("%d live reads for a primary whose Canary the cache shows in use", live)
	}
	w.deployment(testName + "-primary") // still there
	if err := w.cl.Delete(w.ctx, w.canary()); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Reconcile(w.ctx, req); err != nil {
		t.Fatal(err)
	}
	if live != 1 {
		t.Errorf("%d live reads before releasing the target of a Canary the cache shows gone, want 1", live)
	}
	if r := w.deployment(testName).Spec.Replicas; r == nil || *r == 0 {
		t.Error("the target of a deleted Canary did not get its pods back")
	}
}
