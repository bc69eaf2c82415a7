package canary

import (
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// flaggerHash is a spec hash of the kind Flagger writes (rand.SafeEncodeString of an FNV-32 sum).
const flaggerHash = "5d8f7bc9b6"

// asFlaggerLeftIt makes the world look as Flagger 1.44 leaves a promoted Canary: the target
// scaled to zero, a primary Flagger built from image (owned by the Canary, with Flagger's
// flagger-id pod annotation), and Flagger's status.
func (w *world) asFlaggerLeftIt(phase flaggerv1.CanaryPhase, primaryImage string) {
	w.t.Helper()
	target := w.deployment(testName)
	target.Spec.Replicas = ptr.To[int32](0)
	if err := w.cl.Update(w.ctx, target); err != nil {
		w.t.Fatal(err)
	}
	c := w.canary()
	primaryLabels := map[string]string{"app": testName + "-primary"}
	tmpl := target.Spec.Template.DeepCopy()
	tmpl.Labels = maps.Clone(primaryLabels)
	tmpl.Annotations = map[string]string{flaggerPodAnnotation: "4f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f"}
	tmpl.Spec.Containers[0].Image = primaryImage
	primary := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName + "-primary", Labels: primaryLabels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(c, flaggerv1.GroupVersion.WithKind(flaggerv1.CanaryKind))}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: primaryLabels}, Template: *tmpl},
	}
	if err := w.cl.Create(w.ctx, primary); err != nil {
		w.t.Fatal(err)
	}
	w.rollout()
	c.Finalizers = []string{contract.FlaggerFinalizer}
	if err := w.cl.Update(w.ctx, c); err != nil {
		w.t.Fatal(err)
	}
	c.Status = flaggerv1.CanaryStatus{
		Phase: phase, LastAppliedSpec: flaggerHash, LastPromotedSpec: flaggerHash,
		Conditions: []flaggerv1.CanaryCondition{{Type: flaggerv1.PromotedType, Status: corev1.ConditionTrue, Reason: string(phase)}},
	}
	if phase == flaggerv1.CanaryPhaseFailed {
		c.Status.LastAppliedSpec = "7c9b5f4d8"
	}
	if err := w.cl.Status().Update(w.ctx, c); err != nil {
		w.t.Fatal(err)
	}
}

func hookedAnalysis(w *world) *flaggerv1.CanaryAnalysis {
	return analysisWith(func(a *flaggerv1.CanaryAnalysis) {
		a.StepWeight, a.MaxWeight = 50, 50
		a.Webhooks = []flaggerv1.CanaryWebhook{
			w.hooks.hook(flaggerv1.ConfirmRolloutHook), w.hooks.hook(flaggerv1.PreRolloutHook),
			w.hooks.hook(flaggerv1.RolloutHook), w.hooks.hook(flaggerv1.PostRolloutHook),
		}
	})
}

func (w *world) hookCalls() int {
	n := 0
	for _, t := range []flaggerv1.HookType{flaggerv1.ConfirmRolloutHook, flaggerv1.PreRolloutHook, flaggerv1.RolloutHook, flaggerv1.PostRolloutHook} {
		n += w.hooks.count(t)
	}
	return n
}

// TestTakeOverFromFlagger: a Canary Flagger promoted, whose primary runs the target's template,
// is taken over without an analysis: no hook is called, the primary's template (and so its
// pods) is not touched, Herald's revision is recorded, the primary loses the Canary as owner
// for Herald's primary-of label, Flagger's finalizer goes; the next release is analysed.
func TestTakeOverFromFlagger(t *testing.T) {
	w := newWorld(t, "istio", nil)
	c := w.canary()
	c.Spec.Analysis = hookedAnalysis(w)
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.asFlaggerLeftIt(flaggerv1.CanaryPhaseSucceeded, imageV1)
	before := w.deployment(testName + "-primary")

	for range 3 {
		if got := w.tick(); got != "Succeeded w0 i0 f0 | 100/0" {
			t.Fatalf("after taking over: %q, want Succeeded with all traffic on the primary", got)
		}
	}
	if n := w.hookCalls(); n != 0 {
		t.Errorf("%d hook calls while taking over, want 0", n)
	}
	after := w.deployment(testName + "-primary")
	if after.Generation != before.Generation || !equalTemplates(&after.Spec.Template, &before.Spec.Template) {
		t.Errorf("the primary's template changed (generation %d -> %d): its pods would be replaced", before.Generation, after.Generation)
	}
	if after.Labels[contract.LabelPrimaryOf] != testName || len(after.OwnerReferences) != 0 {
		t.Errorf("primary labels %v, owners %v: want Herald's primary-of label and no owner", after.Labels, after.OwnerReferences)
	}
	got := w.canary()
	if !contract.IsRevision(got.Status.LastAppliedSpec) || got.Status.LastAppliedSpec != got.Status.LastPromotedSpec {
		t.Errorf("status lastAppliedSpec %q, lastPromotedSpec %q: want Herald's revision in both", got.Status.LastAppliedSpec, got.Status.LastPromotedSpec)
	}
	if len(got.Finalizers) != 0 {
		t.Errorf("finalizers %v, want Flagger's removed", got.Finalizers)
	}
	w.wantReplicas(testName, 0)
	w.wantEvent("Normal New revision detected! Scaling up podinfo.test", 0)

	// The next release runs under Herald, with its hooks.
	w.release(imageV2)
	states := w.runToEnd()
	if last := states[len(states)-1]; last != "Succeeded w0 i0 f0 | 100/0" || w.primaryImage() != imageV2 {
		t.Fatalf("release after the take-over: %q, primary image %s", states, w.primaryImage())
	}
	if w.hooks.count(flaggerv1.PreRolloutHook) != 1 || w.hooks.count(flaggerv1.PostRolloutHook) != 1 {
		t.Errorf("hooks of the release: pre-rollout %d, post-rollout %d, want 1 each",
			w.hooks.count(flaggerv1.PreRolloutHook), w.hooks.count(flaggerv1.PostRolloutHook))
	}
}

// TestTakeOverFromFlaggerNewRevision: when the target already holds a revision the primary does
// not run (changed after Flagger's last step), Herald analyses it.
func TestTakeOverFromFlaggerNewRevision(t *testing.T) {
	w := newWorld(t, "istio", nil)
	c := w.canary()
	c.Spec.Analysis = hookedAnalysis(w)
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.asFlaggerLeftIt(flaggerv1.CanaryPhaseSucceeded, imageV2) // the target runs imageV1
	if got := w.tick(); got != "Progressing w0 i0 f0 | 100/0" {
		t.Fatalf("after taking over: %q, want a run of the target's revision", got)
	}
	if w.hooks.count(flaggerv1.ConfirmRolloutHook) != 1 {
		t.Errorf("confirm-rollout calls %d, want 1", w.hooks.count(flaggerv1.ConfirmRolloutHook))
	}
}

// TestTakeOverFromFlaggerFailed: a release Flagger rolled back stays failed; it is not retried
// until the target changes.
func TestTakeOverFromFlaggerFailed(t *testing.T) {
	w := newWorld(t, "istio", nil)
	c := w.canary()
	c.Spec.Analysis = hookedAnalysis(w)
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.asFlaggerLeftIt(flaggerv1.CanaryPhaseFailed, imageV2)
	for range 2 {
		if got := w.tick(); got != "Failed w0 i0 f0 | 100/0" {
			t.Fatalf("after taking over: %q, want Failed", got)
		}
	}
	if n := w.hookCalls(); n != 0 {
		t.Errorf("%d hook calls, want 0", n)
	}
	if got := w.canary().Status.LastAppliedSpec; !contract.IsRevision(got) {
		t.Errorf("lastAppliedSpec %q, want Herald's revision of the failed release", got)
	}
	w.wantReplicas(testName, 0)
	w.release(imageV3)
	if got := w.tick(); got != "Progressing w0 i0 f0 | 100/0" {
		t.Fatalf("a new release after the take-over: %q, want Progressing", got)
	}
}

func equalTemplates(a, b *corev1.PodTemplateSpec) bool {
	ra, _ := contract.Revision(a, nil)
	rb, _ := contract.Revision(b, nil)
	return ra == rb && maps.Equal(a.Annotations, b.Annotations)
}
