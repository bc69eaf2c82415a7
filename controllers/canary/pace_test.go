package canary

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// heldTurns makes p's timer record the delays it is armed with instead of firing.
func heldTurns(p *initPace) *[]time.Duration {
	var armed []time.Duration
	p.after = func(d time.Duration, _ func()) *time.Timer {
		armed = append(armed, d)
		return time.NewTimer(time.Hour)
	}
	return &armed
}

func TestInitPaceTakesTurnsRoundTheNamespaces(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := newInitPace(2, 1, func() time.Time { return now }) // one at once, then one every 500 ms
	armed := heldTurns(p)
	key := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }

	if !p.mayStart(key("a", "first")) {
		t.Fatal("the first Canary, within the burst, waits")
	}
	// A tenant's flood, then two other tenants' Canaries.
	for _, name := range []string{"f1", "f2", "f3", "f4"} {
		if p.mayStart(key("flood", name)) {
			t.Fatalf("flood/%s started beyond the burst", name)
		}
	}
	if p.mayStart(key("b", "one")) || p.mayStart(key("c", "one")) || p.mayStart(key("flood", "f1")) {
		t.Fatal("a Canary started beyond the burst")
	}
	if len(*armed) != 1 || (*armed)[0] != 500*time.Millisecond {
		t.Errorf("timer armed %v, want once, for 500ms", *armed)
	}
	if !p.isQueued(key("flood", "f2")) || p.isQueued(key("a", "first")) {
		t.Error("isQueued is wrong")
	}
	// flood/f2 is deleted before its turn: it leaves the queue and takes none.
	p.forget(key("flood", "f2"))

	var order []string
	for {
		p.mu.Lock()
		k, ok := p.nextLocked()
		p.mu.Unlock()
		if !ok {
			break
		}
		order = append(order, k.String())
		if !p.mayStart(k) {
			t.Errorf("%s does not start at its turn", k)
		}
	}
	want := []string{"flood/f1", "b/one", "c/one", "flood/f3", "flood/f4"}
	if len(order) != len(want) {
		t.Fatalf("turns %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("turns %v, want %v: the other tenants must not wait behind the flood", order, want)
		}
	}
	// Once it has a phase, a Canary is forgotten.
	p.forget(key("b", "one"))
	if len(p.started) != len(want) || len(p.queued) != 0 || len(p.waiting) != 0 || len(p.ring) != 0 {
		t.Errorf("left behind: started %v, queued %v, waiting %v, ring %v", p.started, p.queued, p.waiting, p.ring)
	}
	if off := newInitPace(0, 1, time.Now); !off.mayStart(key("x", "y")) || off.isQueued(key("x", "y")) {
		t.Error("a rate of 0 must start every Canary at once")
	}
}

// countingReader counts the reads of Canaries from the API server.
type countingReader struct {
	client.Reader
	canaries atomic.Int32
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*flaggerv1.Canary); ok {
		c.canaries.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A new Canary that must wait for its turn reads nothing from the API server, writes nothing
// and creates nothing until its turn wakes it; then it initialises as usual, and once it has
// a phase the pace forgets it.
func TestNewCanaryWaitsForItsTurnWithoutWriting(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(20, 1, time.Now)
	api := &countingReader{Reader: w.cl}
	w.r.APIReader = api
	if !w.r.pace.mayStart(types.NamespacedName{Namespace: testNS, Name: "another"}) { // takes the burst
		t.Fatal("the burst was not free")
	}

	key := types.NamespacedName{Namespace: testNS, Name: testName}
	res, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != waitBackstop {
		t.Errorf("comes back after %v, want the backstop %v (its turn wakes it)", res.RequeueAfter, waitBackstop)
	}
	if n := api.canaries.Load(); n != 0 {
		t.Errorf("%d reads of the Canary from the API server while it waits", n)
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

	select {
	case e := <-w.r.pace.wakeups:
		if e.Object.GetNamespace() != testNS || e.Object.GetName() != testName {
			t.Fatalf("woke %s/%s", e.Object.GetNamespace(), e.Object.GetName())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("its turn never woke the Canary")
	}
	if !w.r.watchesTarget(*c) {
		t.Error("at its turn, a Canary with no phase does not watch its target's status")
	}
	w.initialise()
	if w.r.pace.started[key] {
		t.Error("an initialised Canary is still remembered")
	}
}

// A suspended Canary takes no turn, and one suspended while it waits leaves the queue.
func TestSuspendedCanaryTakesNoTurn(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1, func() time.Time { return w.now })
	heldTurns(w.r.pace)
	w.r.pace.mayStart(types.NamespacedName{Namespace: testNS, Name: "another"})
	key := types.NamespacedName{Namespace: testNS, Name: testName}
	if _, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if !w.r.pace.isQueued(key) {
		t.Fatal("not queued")
	}
	c := w.canary()
	c.Spec.Suspend = true
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if w.r.pace.isQueued(key) || len(w.r.pace.ring) != 0 {
		t.Error("a suspended Canary still waits for a turn")
	}
}
