package canary

import (
	"strings"
	"testing"
	"time"

	fluxkstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// What kstatus computes from the status the controller writes (setPhase, then setConditions
// as every completed pass does). Flux's health checks (kustomize-controller's `wait` and
// `healthChecks`) use Flux's fork, github.com/fluxcd/cli-utils; other tools use
// sigs.k8s.io/cli-utils. Both are asked, and must agree.

// kstatusOf returns the kstatus status and message of a Canary, failing when the two
// implementations disagree.
func kstatusOf(t *testing.T, c *flaggerv1.Canary) (string, string) {
	t.Helper()
	c = c.DeepCopy()
	c.APIVersion, c.Kind = flaggerv1.GroupVersion.String(), "Canary"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	flux, err := fluxkstatus.Compute(&unstructured.Unstructured{Object: runtime.DeepCopyJSON(m)})
	if err != nil {
		t.Fatal(err)
	}
	if upstream.Status.String() != flux.Status.String() || upstream.Message != flux.Message {
		t.Fatalf("kstatus implementations disagree: sigs.k8s.io %s %q, fluxcd %s %q", upstream.Status, upstream.Message, flux.Status, flux.Message)
	}
	return upstream.Status.String(), upstream.Message
}

// passAt is a pass over a Canary at generation 3 whose status the controller has written
// through phases (each a setPhase and the conditions of a completed pass).
func passAt(phases ...flaggerv1.CanaryPhase) *pass {
	c := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", Generation: 3}}
	p := &pass{r: &Reconciler{}, c: c, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	for _, ph := range phases {
		p.setPhase(ph, messages[ph])
		p.setConditions(nil)
	}
	return p
}

const failure = "Canary analysis failed: request-success-rate 51.20 < 99"

var messages = map[flaggerv1.CanaryPhase]string{
	flaggerv1.CanaryPhaseInitializing:     "Waiting for the primary to be ready.",
	flaggerv1.CanaryPhaseInitialized:      "Deployment initialization completed.",
	flaggerv1.CanaryPhaseWaiting:          "Waiting for approval.",
	flaggerv1.CanaryPhaseProgressing:      "New revision detected, progressing canary analysis.",
	flaggerv1.CanaryPhaseWaitingPromotion: "Waiting for approval.",
	flaggerv1.CanaryPhasePromoting:        "Copying the canary spec to the primary.",
	flaggerv1.CanaryPhaseFinalising:       "Routing all traffic to the primary.",
	flaggerv1.CanaryPhaseSucceeded:        "Canary analysis completed successfully, promotion finished.",
	flaggerv1.CanaryPhaseFailed:           failure,
}

func TestKstatusOfEachPhase(t *testing.T) {
	for _, tc := range []struct {
		phase flaggerv1.CanaryPhase
		want  string
	}{
		{flaggerv1.CanaryPhaseInitializing, "InProgress"},
		{flaggerv1.CanaryPhaseInitialized, "Current"},
		{flaggerv1.CanaryPhaseWaiting, "InProgress"},
		{flaggerv1.CanaryPhaseProgressing, "InProgress"},
		{flaggerv1.CanaryPhaseWaitingPromotion, "InProgress"},
		{flaggerv1.CanaryPhasePromoting, "InProgress"},
		{flaggerv1.CanaryPhaseFinalising, "InProgress"},
		{flaggerv1.CanaryPhaseSucceeded, "Current"},
		{flaggerv1.CanaryPhaseFailed, "Failed"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			p := passAt(tc.phase)
			got, msg := kstatusOf(t, p.c)
			if got != tc.want {
				t.Fatalf("kstatus of a %s Canary = %s (%q), want %s; conditions %+v", tc.phase, got, msg, tc.want, p.c.Status.Conditions)
			}
			// A running or failed release explains itself where Flux and kubectl show it.
			if tc.want != "Current" && msg != messages[tc.phase] {
				t.Fatalf("kstatus message = %q, want %q", msg, messages[tc.phase])
			}
			if p.c.Status.ObservedGeneration != 3 {
				t.Fatalf("observedGeneration = %d, want 3", p.c.Status.ObservedGeneration)
			}
		})
	}
}

// A Canary goes through its phases in sequences: every state kstatus reads must be the one
// of the last phase, whatever came before (a condition left over from an earlier phase would
// keep a promoted Canary Failed, or a failed one InProgress).
func TestKstatusFollowsReleases(t *testing.T) {
	ph := func(phases ...flaggerv1.CanaryPhase) []flaggerv1.CanaryPhase { return phases }
	for _, tc := range []struct {
		name   string
		phases []flaggerv1.CanaryPhase
		want   []string
	}{
		{"initialisation, a promoted release, a rolled-back one, a new one promoted",
			ph(flaggerv1.CanaryPhaseInitializing, flaggerv1.CanaryPhaseInitialized,
				flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising, flaggerv1.CanaryPhaseSucceeded,
				flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseFailed,
				flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseSucceeded),
			[]string{"InProgress", "Current", "InProgress", "InProgress", "InProgress", "Current", "InProgress", "Failed", "InProgress", "Current"}},
		{"a rollback undone by going back to the promoted revision",
			ph(flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseFailed, flaggerv1.CanaryPhaseSucceeded),
			[]string{"Current", "InProgress", "Failed", "Current"}},
		{"gates: waiting for approval before the run and before the promotion",
			ph(flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseWaiting, flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion, flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseSucceeded),
			[]string{"Current", "InProgress", "InProgress", "InProgress", "InProgress", "Current"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := passAt()
			for i, phase := range tc.phases {
				p.setPhase(phase, messages[phase])
				p.setConditions(nil)
				if got, msg := kstatusOf(t, p.c); got != tc.want[i] {
					t.Fatalf("after %v: kstatus %s (%q), want %s; conditions %+v", tc.phases[:i+1], got, msg, tc.want[i], p.c.Status.Conditions)
				}
			}
		})
	}
}

// A configuration problem (a pass ending with a terminalError) is Failed with its reason, and
// clears once a pass completes without it.
func TestKstatusOfAConfigurationProblem(t *testing.T) {
	p := passAt(flaggerv1.CanaryPhaseInitialized)
	p.setConditions(stalled("TargetNotFound", "Deployment podinfo.test not found, waiting for it"))
	got, msg := kstatusOf(t, p.c)
	if got != "Failed" || msg != "Deployment podinfo.test not found, waiting for it" {
		t.Fatalf("kstatus %s %q", got, msg)
	}
	p.setConditions(nil)
	if got, msg := kstatusOf(t, p.c); got != "Current" {
		t.Fatalf("after the problem went away: kstatus %s %q", got, msg)
	}
}

// A spec change the controller has not acted on yet reads InProgress, even on a promoted
// Canary: `kubectl apply` of a Canary followed by `kubectl wait` does not pass on the old
// status.
func TestKstatusOfAnUnobservedSpec(t *testing.T) {
	p := passAt(flaggerv1.CanaryPhaseSucceeded)
	p.c.Generation = 4
	got, msg := kstatusOf(t, p.c)
	if got != "InProgress" || !strings.Contains(msg, "generation is 4, but latest observed generation is 3") {
		t.Fatalf("kstatus %s %q", got, msg)
	}
	p.setConditions(nil)
	if got, _ := kstatusOf(t, p.c); got != "Current" {
		t.Fatalf("once observed: kstatus %s", got)
	}
}

// The kstatus rules the conditions rely on, shown with statuses that break them: Flagger's
// Promoted condition alone reads Current even when the release failed, and Ready=False
// without Stalled reads InProgress, so Flux would wait for its timeout instead of failing
// fast.
func TestKstatusRulesTheConditionsRelyOn(t *testing.T) {
	cond := func(typ flaggerv1.CanaryConditionType, s corev1.ConditionStatus) flaggerv1.CanaryCondition {
		return flaggerv1.CanaryCondition{Type: typ, Status: s, Reason: "Failed", Message: failure}
	}
	c := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", Generation: 1}}
	c.Status = flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseFailed, Conditions: []flaggerv1.CanaryCondition{cond(flaggerv1.PromotedType, corev1.ConditionFalse)}}
	if got, _ := kstatusOf(t, c); got != "Current" {
		t.Fatalf("Promoted=False alone: %s", got)
	}
	c.Status.Conditions = append(c.Status.Conditions, cond(flaggerv1.ReadyType, corev1.ConditionFalse))
	if got, _ := kstatusOf(t, c); got != "InProgress" {
		t.Fatalf("Ready=False without Stalled: %s", got)
	}
	c.Status.Conditions = append(c.Status.Conditions, cond(flaggerv1.StalledType, corev1.ConditionTrue))
	if got, _ := kstatusOf(t, c); got != "Failed" {
		t.Fatalf("with Stalled: %s", got)
	}
	// Nothing the controller writes helps before its first pass: a Canary without status
	// reads Current. Herald's first pass writes Initializing, or WaitingForTurn for a Canary
	// waiting for its turn to initialise (TestNewCanaryWaitsForItsTurnWritingOnlyThatItWaits), within
	// a second; Flux's health checks poll every 5 s.
	if got, _ := kstatusOf(t, &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "test", Generation: 1}}); got != "Current" {
		t.Fatalf("no status: %s", got)
	}
}
