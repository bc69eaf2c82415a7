package canary

import (
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	appsv1 "k8s.io/api/apps/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestInitPaceGivesEachCanaryOneTurn(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	key := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: name} }
	p := newInitPace(2, 2) // two at once, then one every 500 ms
	for name, want := range map[string]time.Duration{"a": 0, "b": 0} {
		if got := p.wait(key(name), now); got != want {
			t.Errorf("%s: wait %v, want %v (within the burst)", name, got, want)
		}
	}
	if got := p.wait(key("c"), now); got != 500*time.Millisecond {
		t.Errorf("c: wait %v, want 500ms", got)
	}
	if got := p.wait(key("d"), now); got != time.Second {
		t.Errorf("d: wait %v, want 1s", got)
	}
	// Woken again meanwhile, c keeps its turn rather than taking another.
	if got := p.wait(key("c"), now.Add(300*time.Millisecond)); got != 200*time.Millisecond {
		t.Errorf("c again: wait %v, want the 200ms left of its turn", got)
	}
	if got := p.wait(key("c"), now.Add(500*time.Millisecond)); got != 0 {
		t.Errorf("c at its turn: wait %v, want 0", got)
	}
	// A Canary that passes again before it has a phase (its first pass failed) keeps its turn.
	if got := p.wait(key("c"), now.Add(10*time.Second)); got != 0 {
		t.Errorf("c later: wait %v, want 0", got)
	}
	// d is deleted: its turn is not handed to e, which comes after it.
	p.forget(key("d"))
	if got := p.wait(key("e"), now); got != 1500*time.Millisecond {
		t.Errorf("e: wait %v, want 1.5s", got)
	}
	if off := newInitPace(0, 1); off.wait(key("x"), now) != 0 || len(off.turns) != 0 {
		t.Error("a rate of 0 must start every Canary at once and remember nothing")
	}
}

// A new Canary that must wait for its turn writes nothing and creates nothing until then; at
// its turn it initialises as usual, and once it has a phase it no longer holds a turn.
func TestNewCanaryWaitsForItsTurnWithoutWriting(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1)
	w.r.pace.wait(types.NamespacedName{Namespace: testNS, Name: "another"}, w.now) // takes the burst

	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName}}
	res, err := w.r.Reconcile(w.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != time.Second {
		t.Errorf("comes back after %v, want 1s (its turn)", res.RequeueAfter)
	}
	c := w.canary()
	if c.Status.Phase != "" || len(c.Status.Conditions) != 0 {
		t.Errorf("status written while waiting: phase %q, conditions %v", c.Status.Phase, c.Status.Conditions)
	}
	var primary appsv1.Deployment
	if err := w.cl.Get(w.ctx, types.NamespacedName{Namespace: testNS, Name: testName + "-primary"}, &primary); !apierrors.IsNotFound(err) {
		t.Errorf("primary while waiting: %v, want not found", err)
	}

	if w.r.watchesTarget(*c) {
		t.Error("a Canary waiting for its turn is woken by its target's status")
	}
	w.now = w.now.Add(time.Second)
	if !w.r.watchesTarget(*c) {
		t.Error("at its turn, a Canary with no phase does not watch its target's status")
	}
	w.initialise()
	if _, held := w.r.pace.turns[req.NamespacedName]; held {
		t.Error("an initialised Canary still holds its turn")
	}
}
