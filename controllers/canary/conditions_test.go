package canary

import (
	"strings"
	"testing"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// conditions renders the kstatus conditions and the observed generation, e.g.
// "Ready=True(Succeeded) gen=1/1".
func (w *world) conditions() string {
	c := w.canary()
	var parts []string
	for _, t := range []flaggerv1.CanaryConditionType{flaggerv1.ReadyType, flaggerv1.ReconcilingType, flaggerv1.StalledType} {
		if cond := flaggerv1.FindCondition(c.Status.Conditions, t); cond != nil {
			parts = append(parts, string(t)+"="+string(cond.Status)+"("+cond.Reason+")")
		}
	}
	return strings.Join(parts, " ")
}

// The conditions a Flux health check or `kubectl wait` reads follow a release: InProgress
// (Reconciling) while it runs, Current (Ready) once initialised or promoted, Failed (Stalled)
// after a rollback and while the Canary cannot proceed.
func TestConditionsFollowTheRelease(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }))
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	want := func(stage, conditions string) {
		t.Helper()
		if got := w.conditions(); got != conditions {
			t.Errorf("%s: conditions %q, want %q", stage, got, conditions)
		}
		if c := w.canary(); c.Status.ObservedGeneration != c.Generation {
			t.Errorf("%s: observedGeneration %d, generation %d", stage, c.Status.ObservedGeneration, c.Generation)
		}
	}
	want("initialising", "Ready=False(Initializing) Reconciling=True(Initializing)")
	w.tick()
	want("initialised", "Ready=True(Initialized)")

	w.release(imageV2)
	w.tick()
	want("release running", "Ready=False(Progressing) Reconciling=True(Progressing)")
	if states := w.runToEnd(); !strings.HasPrefix(states[len(states)-1], "Succeeded") {
		t.Fatalf("release: %q", states)
	}
	want("promoted", "Ready=True(Succeeded)")

	w.prom.set(bad)
	w.release(imageV3)
	if states := w.runToEnd(); !strings.HasPrefix(states[len(states)-1], "Failed") {
		t.Fatalf("bad release: %q", states)
	}
	want("rolled back", "Ready=False(Failed) Stalled=True(Failed)")
	stall := flaggerv1.FindCondition(w.canary().Status.Conditions, flaggerv1.StalledType)
	if !strings.Contains(stall.Message, "failed checks threshold reached 2") {
		t.Errorf("the Stalled condition does not say why: %q", stall.Message)
	}

	// A configuration problem stalls the Canary with its reason, announced once.
	c := w.canary()
	c.Spec.Provider = "linkerd"
	c.Generation++
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.tick()
	w.tick()
	want("unsupported provider", "Ready=False(UnsupportedProvider) Stalled=True(UnsupportedProvider)")
	w.wantEvent(`Warning spec.provider: "linkerd" is not supported: use one of …`, 1)
	if c := w.canary(); c.Status.Phase != flaggerv1.CanaryPhaseFailed {
		t.Errorf("a configuration problem changed the phase to %s", c.Status.Phase)
	}
}
