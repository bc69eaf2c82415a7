package canary

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// nsKey names the Canary name of namespace ns.
func nsKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// mayStart is ask without its mark.
func (p *initPace) mayStart(key types.NamespacedName, uid types.UID) bool {
	start, _ := p.ask(key, uid)
	return start
}

// drain returns the Canaries sent to ch, in order.
func drain(ch chan event.GenericEvent) []string {
	var out []string
	for {
		select {
		case e := <-ch:
			out = append(out, e.Object.GetNamespace()+"/"+e.Object.GetName())
		default:
			return out
		}
	}
}

// heldTurns makes p's timer record the turns it is armed for instead of running them: the
// test runs them (turns) when it chooses. A timer the pace stopped is not run.
type heldTurns struct {
	delays []time.Duration
	turns  []heldTurn
}

type heldTurn struct {
	timer *time.Timer // never fires: it only tells whether the pace stopped it
	f     func()
}

func holdTurns(p *initPace) *heldTurns {
	h := &heldTurns{}
	p.after = func(d time.Duration, f func()) *time.Timer {
		t := time.NewTimer(time.Hour)
		h.delays = append(h.delays, d)
		h.turns = append(h.turns, heldTurn{timer: t, f: f})
		return t
	}
	return h
}

// armed drops the timers the pace stopped and reports whether one is left.
func (h *heldTurns) armed() bool {
	// Reset reports whether the timer was active (not stopped), and leaves it active.
	h.turns = slices.DeleteFunc(h.turns, func(t heldTurn) bool { return !t.timer.Reset(time.Hour) })
	return len(h.turns) > 0
}

// runNext runs the turn armed last (as its timer would).
func (h *heldTurns) runNext(t *testing.T) {
	t.Helper()
	if !h.armed() {
		t.Fatal("no turn armed")
	}
	next := h.turns[len(h.turns)-1]
	h.turns = h.turns[:len(h.turns)-1]
	next.f()
}

func TestInitPaceTakesTurnsRoundTheNamespaces(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := newInitPace(2, 1, func() time.Time { return now }) // one at once, then one every 500 ms
	p.quiet = 0                                             // no holds here (TestInitPaceHoldsANamespaceWhileItsCanariesKeepComing)
	held := holdTurns(p)
	uid := func(k types.NamespacedName) types.UID { return types.UID("uid-" + k.String()) }

	if !p.mayStart(nsKey("a", "first"), uid(nsKey("a", "first"))) {
		t.Fatal("the first Canary, within the burst, waits")
	}
	// A tenant's flood, then two other tenants' Canaries.
	for _, name := range []string{"f1", "f2", "f3", "f4"} {
		if p.mayStart(nsKey("flood", name), uid(nsKey("flood", name))) {
			t.Fatalf("flood/%s started beyond the burst", name)
		}
	}
	for _, k := range []types.NamespacedName{nsKey("b", "one"), nsKey("c", "one"), nsKey("flood", "f1")} {
		if p.mayStart(k, uid(k)) {
			t.Fatalf("%s started beyond the burst", k)
		}
	}
	if len(held.delays) != 1 || held.delays[0] != 500*time.Millisecond {
		t.Errorf("timer armed for %v, want once, for 500ms", held.delays)
	}
	if !p.isQueued(nsKey("flood", "f2")) || p.isQueued(nsKey("a", "first")) {
		t.Error("isQueued is wrong")
	}
	// flood/f2 is deleted before its turn: it leaves the queue and takes none.
	p.forget(nsKey("flood", "f2"))

	// Each turn wakes its Canary and arms the next; the Canary then starts.
	var order []string
	for held.armed() {
		now = now.Add(500 * time.Millisecond)
		held.runNext(t)
		select {
		case e := <-p.wakeups:
			k := nsKey(e.Object.GetNamespace(), e.Object.GetName())
			order = append(order, k.String())
			if !p.mayStart(k, uid(k)) {
				t.Errorf("%s does not start at its turn", k)
			}
		default:
			t.Fatal("a turn woke no one")
		}
	}
	want := []string{"flood/f1", "b/one", "c/one", "flood/f3", "flood/f4"}
	if !slices.Equal(order, want) {
		t.Fatalf("turns %v, want %v: the other tenants must not wait behind the flood", order, want)
	}
	if len(p.queued) != 0 || len(p.waiting) != 0 || len(p.ring) != 0 || p.timer != nil {
		t.Errorf("left behind: queued %v, waiting %v, ring %v, timer armed %v", p.queued, p.waiting, p.ring, p.timer != nil)
	}
	// Once it has a phase, a Canary is forgotten; one created again under its name is new.
	p.forget(nsKey("b", "one"))
	if _, ok := p.started[nsKey("b", "one")]; ok {
		t.Error("a forgotten Canary is still remembered")
	}
	if p.mayStart(nsKey("c", "one"), "another-uid") {
		t.Error("a Canary created again under a started one's name skipped its turn")
	}
	// Deleted while it alone waits, it gives its turn's token back: the next one's turn is
	// the one it had, not one period later.
	p.forget(nsKey("c", "one"))
	if p.timer != nil {
		t.Error("the turn of a queue left empty is still armed")
	}
	if p.mayStart(nsKey("d", "one"), "uid-d") {
		t.Fatal("d started beyond the rate")
	}
	if got := held.delays[len(held.delays)-1]; got != 500*time.Millisecond {
		t.Errorf("d's turn in %v, want 500ms: the called-off turn's token was not given back", got)
	}
	if off := newInitPace(0, 1, time.Now); !off.mayStart(nsKey("x", "y"), "") || off.isQueued(nsKey("x", "y")) {
		t.Error("a rate of 0 must start every Canary at once")
	}
}

// A namespace whose new Canaries keep coming (a bulk apply) takes no turn until they stop for
// quiet, without holding another namespace's lone new Canary; the hold takes no token, and a
// namespace flooded without pause gets its turns once its oldest has waited maxHold.
func TestInitPaceHoldsANamespaceWhileItsCanariesKeepComing(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	p := newInitPace(5, 20, func() time.Time { return now })
	held := holdTurns(p)
	woken := func() []string { return drain(p.wakeups) }

	// A bulk apply: ten new Canaries 10 ms apart. The first, alone so far, starts at once;
	// the first to wait writes at once that it waits, the others only once the apply ends.
	var bulk []string
	for i := range 10 {
		name := fmt.Sprintf("c%02d", i)
		started, mark := p.ask(nsKey("bulk", name), types.UID(name))
		if started != (i == 0) || mark != (i == 1) {
			t.Fatalf("bulk/%s: started %v, marks at once %v", name, started, mark)
		}
		if i > 0 {
			bulk = append(bulk, "bulk/"+name)
		}
		now = now.Add(10 * time.Millisecond)
	}
	if _, mark := p.ask(nsKey("bulk", "c05"), "c05"); mark {
		t.Error("a Canary asking again during the apply marks")
	}
	if !slices.Equal(held.delays, []time.Duration{quietFor}) {
		t.Fatalf("timers armed for %v, want one for the hold, %v", held.delays, quietFor)
	}
	if tokens := p.limiter.TokensAt(now); tokens < 19 {
		t.Errorf("%.1f tokens left, want 19: a hold took tokens", tokens)
	}

	// Another namespace's lone new Canary does not wait for the bulk apply to end.
	if p.mayStart(nsKey("other", "one"), "other") {
		t.Fatal("other/one started while a namespace waits (it must take a turn)")
	}
	if d := held.delays[len(held.delays)-1]; d != 0 {
		t.Fatalf("other/one's turn in %v, want at once", d)
	}
	held.runNext(t)
	if got := woken(); !slices.Equal(got, []string{"other/one"}) {
		t.Fatalf("woke %v, want other/one", got)
	}

	// The bulk apply goes on at 500 ms: the hold lasts until 1 s after its last Canary.
	now = t0.Add(500 * time.Millisecond)
	p.mayStart(nsKey("bulk", "late"), "late")
	bulk = append(bulk, "bulk/late")
	now = t0.Add(1090 * time.Millisecond)
	held.runNext(t)
	if got := woken(); len(got) != 0 {
		t.Fatalf("woke %v while the bulk apply went on", got)
	}
	if d := held.delays[len(held.delays)-1]; d != 410*time.Millisecond {
		t.Errorf("hold re-armed for %v, want 410ms (1 s after the last Canary)", d)
	}

	// Quiet: the hold's end wakes every Canary queued during it, to write that it waits (they
	// wrote nothing during the apply); then each takes its turn, oldest first, at the rate
	// (tokens left: at once).
	now = t0.Add(1500 * time.Millisecond)
	if held.runNext(t); !slices.Equal(drain(p.marks), bulk[1:]) || len(woken()) != 0 {
		t.Fatalf("the hold's end did not wake (only) the Canaries that have not marked")
	}
	if _, mark := p.ask(nsKey("bulk", "c05"), "c05"); !mark {
		t.Error("a Canary asking after the apply does not mark")
	}
	var order []string
	for held.armed() {
		held.runNext(t)
		order = append(order, woken()...)
	}
	if !slices.Equal(order, bulk) {
		t.Fatalf("turns %v, want %v", order, bulk)
	}

	// A namespace flooded without pause is held at most maxHold from its oldest's arrival.
	flood := newInitPace(5, 1, func() time.Time { return now })
	fheld := holdTurns(flood)
	start := now
	for i := 0; now.Sub(start) < holdAtMost+5*time.Second; i++ {
		flood.mayStart(nsKey("flood", fmt.Sprintf("f%03d", i)), "")
		now = now.Add(500 * time.Millisecond)
	}
	flood.mu.Lock()
	until := flood.heldUntilLocked("flood")
	flood.mu.Unlock()
	if want := start.Add(500 * time.Millisecond).Add(holdAtMost); !until.Equal(want) {
		t.Errorf("held until %v after the first, want %v (the oldest waiting's arrival + maxHold)", until.Sub(start), want.Sub(start))
	}
	if !fheld.armed() || len(fheld.turns) != 1 {
		t.Fatalf("%d timers armed, want the one hold", len(fheld.turns))
	}
	fheld.runNext(t) // the hold's end, long past: a turn is armed with a token
	fheld.runNext(t)
	if got := drain(flood.wakeups); len(got) == 0 || got[0] != "flood/f001" {
		t.Errorf("turns %v after maxHold, want flood/f001 first, the oldest waiting", got)
	}

	// Namespaces whose new Canaries came long ago are not remembered.
	many := newInitPace(1000, 1000, func() time.Time { return now })
	for i := range 500 {
		many.mayStart(nsKey(fmt.Sprintf("ns-%03d", i), "one"), "")
		now = now.Add(quietFor)
	}
	if n := len(many.arrivals); n > 64 {
		t.Errorf("%d namespaces' arrivals remembered, want at most 64", n)
	}
}

// A token taken for a namespace that is held again before its turn is not lost: the turn
// waits for the hold's end, then goes with that token.
func TestInitPaceKeepsATokenItsHoldDidNotUse(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	p := newInitPace(1, 1, func() time.Time { return now })
	held := holdTurns(p)
	p.mayStart(nsKey("x", "first"), "") // takes the burst
	p.mayStart(nsKey("a", "one"), "")   // a lone Canary: a token is taken for its turn, in 1 s
	now = t0.Add(10 * time.Millisecond)
	p.mayStart(nsKey("a", "two"), "") // a second one: a is held until 1.01 s
	now = t0.Add(time.Second)
	held.runNext(t) // the token's time: a is held, no turn
	if got := drain(p.wakeups); len(got) != 0 {
		t.Fatalf("%v woke during their namespace's hold", got)
	}
	now = t0.Add(1010 * time.Millisecond)
	held.runNext(t) // the hold's end
	if got := drain(p.wakeups); !slices.Equal(got, []string{"a/one"}) {
		t.Fatalf("turns %v at the hold's end, want a/one: the token taken before it was lost", got)
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

// A new Canary that must wait for its turn reads nothing from the API server and creates
// nothing until its turn wakes it; it writes once that it waits (kstatus InProgress, so that a
// Flux Kustomization waits for it); then it initialises as usual, and once it has a phase the
// pace forgets it.
func TestNewCanaryWaitsForItsTurnWritingOnlyThatItWaits(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1, func() time.Time { return w.now })
	held := holdTurns(w.r.pace)
	api := &countingReader{Reader: w.cl}
	w.r.APIReader = api
	if !w.r.pace.mayStart(types.NamespacedName{Namespace: "elsewhere", Name: "another"}, "") { // takes the burst
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
	if c.Status.Phase != "" || c.Status.ObservedGeneration != c.Generation {
		t.Errorf("status while waiting: phase %q, observed generation %d of %d", c.Status.Phase, c.Status.ObservedGeneration, c.Generation)
	}
	if got, msg := kstatusOf(t, c); got != "InProgress" || !strings.Contains(msg, "Waiting for a turn") {
		t.Errorf("a waiting Canary reads %s (%q) to kstatus, want InProgress, waiting for a turn", got, msg)
	}
	// Its later passes, before its turn, write nothing.
	if _, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if again := w.canary(); again.ResourceVersion != c.ResourceVersion {
		t.Errorf("a second pass while waiting wrote the Canary again: %v", again.Status.Conditions)
	}
	var primary appsv1.Deployment
	if err := w.cl.Get(w.ctx, types.NamespacedName{Namespace: testNS, Name: testName + "-primary"}, &primary); !apierrors.IsNotFound(err) {
		t.Errorf("primary while waiting: %v, want not found", err)
	}
	if w.r.watchesTarget(*c) {
		t.Error("a Canary waiting for its turn is woken by its target's status")
	}

	w.now = w.now.Add(time.Second)
	held.runNext(t)
	select {
	case e := <-w.r.pace.wakeups:
		if e.Object.GetNamespace() != testNS || e.Object.GetName() != testName {
			t.Fatalf("woke %s/%s", e.Object.GetNamespace(), e.Object.GetName())
		}
	default:
		t.Fatal("its turn did not wake the Canary")
	}
	if !w.r.watchesTarget(*c) {
		t.Error("at its turn, a Canary with no phase does not watch its target's status")
	}
	w.initialise()
	if _, ok := w.r.pace.started[key]; ok {
		t.Error("an initialised Canary is still remembered")
	}
}

// A Canary of a bulk apply writes nothing while the apply goes on; the apply's end wakes it
// to write that it waits.
func TestBulkCanaryWritesThatItWaitsOnceTheApplyEnds(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1, func() time.Time { return w.now })
	held := holdTurns(w.r.pace)
	if !w.r.pace.mayStart(types.NamespacedName{Namespace: testNS, Name: "first"}, "") { // the apply's first
		t.Fatal("the first Canary of the apply waits")
	}
	if _, mark := w.r.pace.ask(types.NamespacedName{Namespace: testNS, Name: "second"}, ""); !mark { // the first to wait
		t.Fatal("the first Canary of the apply to wait does not mark at once")
	}
	key := types.NamespacedName{Namespace: testNS, Name: testName}
	if _, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if c := w.canary(); len(c.Status.Conditions) != 0 || c.Status.ObservedGeneration != 0 {
		t.Fatalf("a Canary wrote its status during the apply: %v", c.Status.Conditions)
	}
	w.now = w.now.Add(quietFor)
	held.runNext(t)
	if got := drain(w.r.pace.marks); !slices.Equal(got, []string{testNS + "/" + testName}) {
		t.Fatalf("the apply's end woke %v to mark, want %s", got, testName)
	}
	if _, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	c := w.canary()
	if got, _ := kstatusOf(t, c); got != "InProgress" || c.Status.Phase != "" {
		t.Errorf("after the apply: kstatus %s, phase %q; want InProgress, waiting", got, c.Status.Phase)
	}
}

// A Canary with no phase whose last pass reported a configuration problem (kstatus Failed) is
// not written again as waiting when it meets the pace again (after a restart): its next pass
// would only undo it.
func TestStalledCanaryIsNotMarkedWaiting(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	c := w.canary()
	c.Status.ObservedGeneration = c.Generation
	c.Status.Conditions = []flaggerv1.CanaryCondition{{Type: flaggerv1.StalledType, Status: corev1.ConditionTrue, Reason: "TargetNotFound"}}
	if err := w.cl.Status().Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	c = w.canary()
	if err := w.r.markWaiting(w.ctx, c.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if after := w.canary(); after.ResourceVersion != c.ResourceVersion {
		t.Errorf("a stalled Canary was marked waiting: %v", after.Status.Conditions)
	}
	c = w.canary()
	c.Generation++ // a spec change: it waits again, and says so
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := w.r.markWaiting(w.ctx, w.canary()); err != nil {
		t.Fatal(err)
	}
	if cond := flaggerv1.FindCondition(w.canary().Status.Conditions, flaggerv1.ReconcilingType); cond == nil || cond.Reason != flaggerv1.ReasonWaitingForTurn {
		t.Errorf("a Canary changed after a configuration problem does not say it waits: %v", w.canary().Status.Conditions)
	}
}

// A suspended Canary takes no turn, and one suspended while it waits leaves the queue.
func TestSuspendedCanaryTakesNoTurn(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1, func() time.Time { return w.now })
	holdTurns(w.r.pace)
	w.r.pace.mayStart(types.NamespacedName{Namespace: "elsewhere", Name: "another"}, "")
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

	// Resumed before it ever had a phase, it waits for a turn like any new Canary.
	c = w.canary()
	c.Spec.Suspend = false
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	res, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != waitBackstop || !w.r.pace.isQueued(key) || w.canary().Status.Phase != "" {
		t.Errorf("a resumed Canary started without its turn: %+v, phase %q", res, w.canary().Status.Phase)
	}
}

// A Canary deleted and created again under the name of one whose turn came is new: it waits.
func TestCanaryCreatedAgainWaitsForItsOwnTurn(t *testing.T) {
	w := newWorld(t, flaggerv1.ProviderKubernetes, analysisWith(nil))
	w.r.pace = newInitPace(1, 1, func() time.Time { return w.now })
	holdTurns(w.r.pace)
	key := types.NamespacedName{Namespace: testNS, Name: testName}
	if !w.r.pace.mayStart(key, "uid-podinfo") {
		t.Fatal("the first Canary, within the burst, waits")
	}
	old := w.canary()
	if err := w.cl.Delete(w.ctx, old); err != nil {
		t.Fatal(err)
	}
	again := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, UID: "uid-again"}, Spec: old.Spec}
	if err := w.cl.Create(w.ctx, again); err != nil {
		t.Fatal(err)
	}
	res, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != waitBackstop || w.canary().Status.Phase != "" {
		t.Errorf("the Canary created again took the deleted one's turn: %+v, phase %q", res, w.canary().Status.Phase)
	}
}
