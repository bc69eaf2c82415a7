package canary

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// initPace spaces out the start of new Canaries' initialisation (-initialization-rate).
//
// Each initialisation makes the control plane create a primary, its ReplicaSet and pods, and
// two or three Services, then roll the target down: about a dozen writes of Herald's and as
// many of the controller-manager's, whose deployment and replicaset controllers each write at
// their default 20 requests a second. Started all at once, a thousand Canaries applied in one
// go load the API server while the apply is still running, and the primaries do not roll out
// sooner for it.
//
// Only a Canary that has never had a phase waits: a Canary Herald (or Flagger) already
// started, and every later step of any Canary, goes on at once. A waiting Canary has no phase
// yet; its passes read only the cache, and write only its status, once (markWaiting). While
// no one waits, a new Canary starts at once if a token is left (up to the burst); after that,
// turns come at the rate and go round the namespaces with Canaries waiting, oldest first
// within each: one tenant's thousand new Canaries take one turn in every k while k namespaces
// wait, and a Canary deleted before its turn takes none. A turn wakes its Canary through
// wakeups (a channel the controller watches); a waiting pass also comes back after
// waitBackstop should that wake be lost.
//
// A namespace whose new Canaries keep coming (a bulk apply, a Flux Kustomization) takes no
// turn until none has come for quiet, or its oldest has waited maxHold, so that the apply is
// not slowed by the initialisations it causes: on the local control plane, 1,000 Deployments
// and Canaries applied with Herald running took 1.8 times as long as without Herald when
// their initialisations ran alongside, 1.3 times with the hold (bench-scale's apply
// samples). The first of them starts at once, the first to wait writes at once that it waits,
// and the others write it once the apply ends (a write each during the apply cost the API
// server as much as initialising them), then start at the rate. A flood past maxHold writes
// at once. A Canary of another namespace is not held. A Canary resumed, or created again under a
// name, counts as new.
type initPace struct {
	limiter *rate.Limiter // nil: no pacing
	// now is the reconciler's clock, for the limiter; the timer waits real time, so a test
	// that pins the clock holds the turns (after) rather than letting the timer run (a turn
	// or a hold's end that finds the clock short of it only arms the timer again).
	now   func() time.Time
	after func(time.Duration, func()) *time.Timer // time.AfterFunc
	// quiet and maxHold bound the hold of a namespace whose new Canaries keep coming.
	quiet, maxHold time.Duration
	// wakeups carries the Canary whose turn came, marks the Canaries whose namespace's hold
	// ended, to write that they wait; full, a wake is dropped and the waiting pass's
	// backstop brings the Canary.
	wakeups, marks chan event.GenericEvent

	mu       sync.Mutex
	waiting  map[string]*list.List                  // namespace → waiters, oldest first
	queued   map[types.NamespacedName]*list.Element // each waiting Canary's place
	ring     []string                               // the namespaces with Canaries waiting, in turn order
	started  map[types.NamespacedName]types.UID     // Canaries whose turn came (or needed none), until a phase is seen
	arrivals map[string]arrival                     // namespaces with a new Canary in the last quiet, or some waiting
	sweepAt  int                                    // the size of arrivals at which its stale entries go
	timer    *time.Timer                            // the next turn, or the end of a hold, while someone waits
	due      time.Time                              // when the timer fires
	next     *rate.Reservation                      // the token of the next turn, once taken
}

// waiter is a Canary waiting for its turn.
type waiter struct {
	name  string
	since time.Time
	// unmarked: queued during its namespace's hold, it has not written that it waits (a
	// write each during the apply loaded the API server as much as the initialisations
	// did); the hold's end wakes it to write it.
	unmarked bool
}

// arrival is when a namespace's last new Canary came, and whether it came within quiet of the
// one before (the namespace is then held).
type arrival struct {
	last     time.Time
	bulk     bool
	unmarked int // the namespace's waiters not marked yet
}

// Holding a namespace while its new Canaries keep coming: quietFor without one ends the hold,
// as does the oldest's waiting holdAtMost (a namespace flooded without pause still gets its
// turns).
const (
	quietFor   = time.Second
	holdAtMost = 30 * time.Second
)

// waitBackstop is when a waiting pass comes back by itself.
const waitBackstop = time.Minute

// newInitPace paces initialisations to perSecond, with burst starting at once; perSecond ≤ 0
// turns pacing off.
func newInitPace(perSecond float64, burst int, now func() time.Time) *initPace {
	if perSecond <= 0 {
		return &initPace{}
	}
	return &initPace{
		limiter:  rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)),
		now:      now,
		after:    time.AfterFunc,
		quiet:    quietFor,
		maxHold:  holdAtMost,
		wakeups:  make(chan event.GenericEvent, 1024),
		marks:    make(chan event.GenericEvent, 4096),
		waiting:  map[string]*list.List{},
		queued:   map[types.NamespacedName]*list.Element{},
		started:  map[types.NamespacedName]types.UID{},
		arrivals: map[string]arrival{},
	}
}

// ask reports whether the Canary key (of uid) may start initialising now; if not, it is
// queued (once, however often it asks) and woken at its turn, and mark says whether it should
// write now that it waits. A Canary deleted and created again under the same name is a new
// one.
//
// Of the Canaries queued during their namespace's hold only the first marks at once: it keeps
// a Kustomization waiting for the apply's objects waiting while the others wait for the hold's
// end to mark (turn).
func (p *initPace) ask(key types.NamespacedName, uid types.UID) (start, mark bool) {
	if p == nil || p.limiter == nil {
		return true, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if started, ok := p.started[key]; ok {
		if started == uid || started == "" { // "": its turn came, this is its first pass since
			p.started[key] = uid
			return true, false
		}
		delete(p.started, key)
	}
	now := p.now()
	if e, ok := p.queued[key]; ok {
		w := e.Value.(waiter)
		if !w.unmarked {
			return false, true
		}
		if p.heldUntilLocked(key.Namespace).After(now) {
			return false, false
		}
		p.markedLocked(key.Namespace, e)
		return false, true
	}
	bulk := p.arriveLocked(key.Namespace, now)
	if len(p.ring) == 0 && !bulk && p.limiter.AllowN(now, 1) {
		p.started[key] = uid
		return true, false
	}
	names := p.waiting[key.Namespace]
	if names == nil {
		names = list.New()
		p.waiting[key.Namespace] = names
		p.ring = append(p.ring, key.Namespace)
	}
	w := waiter{name: key.Name, since: now}
	w.unmarked = names.Len() > 0 && p.heldUntilLocked(key.Namespace).After(now)
	if w.unmarked {
		a := p.arrivals[key.Namespace]
		a.unmarked++
		p.arrivals[key.Namespace] = a
	}
	p.queued[key] = names.PushBack(w)
	p.scheduleLocked(now)
	return false, !w.unmarked
}

// markedLocked records that the waiter e of namespace ns is no longer unmarked.
func (p *initPace) markedLocked(ns string, e *list.Element) {
	w := e.Value.(waiter)
	if !w.unmarked {
		return
	}
	w.unmarked = false
	e.Value = w
	a := p.arrivals[ns]
	a.unmarked--
	p.arrivals[ns] = a
}

// arriveLocked records a new Canary of namespace ns, and reports whether the namespace is held
// (a new Canary came within quiet of the one before).
func (p *initPace) arriveLocked(ns string, now time.Time) bool {
	if len(p.arrivals) >= p.sweepAt {
		for n, a := range p.arrivals {
			if now.Sub(a.last) >= p.quiet && p.waiting[n] == nil {
				delete(p.arrivals, n)
			}
		}
		p.sweepAt = max(64, 2*len(p.arrivals))
	}
	a, seen := p.arrivals[ns]
	a.bulk = seen && now.Sub(a.last) < p.quiet
	a.last = now
	p.arrivals[ns] = a
	return a.bulk
}

// heldUntilLocked is when namespace ns, with Canaries waiting, may take a turn.
func (p *initPace) heldUntilLocked(ns string) time.Time {
	a := p.arrivals[ns]
	if !a.bulk {
		return time.Time{}
	}
	oldest := p.waiting[ns].Front().Value.(waiter).since
	return minTime(a.last.Add(p.quiet), oldest.Add(p.maxHold))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// isQueued reports whether the Canary key waits for its turn.
func (p *initPace) isQueued(key types.NamespacedName) bool {
	if p == nil || p.limiter == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.queued[key]
	return ok
}

// forget drops the Canary key: it has a phase now, is gone, suspended or another shard's. A
// Canary still waiting leaves the queue without taking a turn.
func (p *initPace) forget(key types.NamespacedName) {
	if p == nil || p.limiter == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.started, key)
	if _, ok := p.queued[key]; ok {
		p.dequeueLocked(key)
	}
}

// dequeueLocked takes the waiting Canary key out of its namespace's queue, and the namespace
// out of the ring when none of its Canaries is left. When no one waits any more, the next
// turn is called off and its token given back.
func (p *initPace) dequeueLocked(key types.NamespacedName) {
	names := p.waiting[key.Namespace]
	p.markedLocked(key.Namespace, p.queued[key])
	names.Remove(p.queued[key])
	delete(p.queued, key)
	if names.Len() > 0 {
		return
	}
	delete(p.waiting, key.Namespace)
	if i := slices.Index(p.ring, key.Namespace); i >= 0 {
		p.ring = slices.Delete(p.ring, i, i+1)
	}
	if len(p.ring) == 0 && p.timer != nil && p.timer.Stop() {
		if p.next != nil {
			p.next.CancelAt(p.now())
		}
		p.timer, p.next = nil, nil
	}
}

// nextLocked gives the turn to the oldest waiting Canary of the first namespace in the ring
// that is not held, and moves that namespace to the ring's end.
func (p *initPace) nextLocked(now time.Time) (types.NamespacedName, bool) {
	i := slices.IndexFunc(p.ring, func(ns string) bool { return !p.heldUntilLocked(ns).After(now) })
	if i < 0 {
		return types.NamespacedName{}, false
	}
	ns := p.ring[i]
	key := types.NamespacedName{Namespace: ns, Name: p.waiting[ns].Front().Value.(waiter).name}
	p.dequeueLocked(key)
	if i < len(p.ring) && p.ring[i] == ns {
		p.ring = append(slices.Delete(p.ring, i, i+1), ns)
	}
	p.started[key] = "" // the pass at its turn fills in the uid
	return key, true
}

// scheduleLocked arms the timer, or arms it again sooner: for the end of the first hold with
// unmarked Canaries, or, while every waiting namespace is held, of the first hold; otherwise
// for the next token, taken as the timer is armed (turns keep the rate) and kept until a turn
// uses it.
func (p *initPace) scheduleLocked(now time.Time) {
	if len(p.ring) == 0 {
		return
	}
	var free, mark time.Time
	marking := false // some namespace has unmarked Canaries: mark is the first one's hold's end
	for i, ns := range p.ring {
		until := p.heldUntilLocked(ns) // zero when not held
		if i == 0 || until.Before(free) {
			free = until
		}
		if p.arrivals[ns].unmarked > 0 && (!marking || until.Before(mark)) {
			mark, marking = until, true
		}
	}
	at := free
	if !free.After(now) {
		if p.next == nil {
			p.next = p.limiter.ReserveN(now, 1)
		}
		at = now.Add(p.next.DelayFrom(now))
	}
	if marking && mark.Before(at) {
		at = mark
	}
	if p.timer != nil {
		// Armed already: sooner only (a namespace that is free, or a hold's end before the
		// token's time). A timer that already fired and waits for the lock will look again.
		if !at.Before(p.due) || !p.timer.Stop() {
			return
		}
	}
	p.timer, p.due = p.after(max(at.Sub(now), 0), p.turn), at
}

// turn is the timer's: the Canaries of a hold that ended are woken to write that they wait,
// and the next Canary's turn comes. A token whose namespace was held again before its turn,
// with no other free, waits for the next free one.
func (p *initPace) turn() {
	p.mu.Lock()
	now := p.now()
	p.timer = nil
	var marks []types.NamespacedName
	for _, ns := range p.ring {
		if p.arrivals[ns].unmarked == 0 || p.heldUntilLocked(ns).After(now) {
			continue
		}
		for e := p.waiting[ns].Front(); e != nil; e = e.Next() {
			if e.Value.(waiter).unmarked {
				marks = append(marks, types.NamespacedName{Namespace: ns, Name: e.Value.(waiter).name})
				p.markedLocked(ns, e)
			}
		}
	}
	var key types.NamespacedName
	var ok bool
	if p.next != nil && p.next.DelayFrom(now) == 0 {
		if key, ok = p.nextLocked(now); ok {
			p.next = nil
		}
	}
	p.scheduleLocked(now)
	p.mu.Unlock()
	for _, k := range marks {
		wake(p.marks, k)
	}
	if ok {
		wake(p.wakeups, key)
	}
}

// wake sends the Canary key to ch, unless ch is full: the waiting pass's backstop brings it.
func wake(ch chan event.GenericEvent, key types.NamespacedName) {
	select {
	case ch <- event.GenericEvent{Object: &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
	default: // full: the waiting pass comes back by itself after waitBackstop
	}
}

// turnOf decides, from the cache and before the pass reads the Canary from the API server,
// whether the Canary key must wait for its turn to initialise, and returns the cached Canary
// if so: a waiting Canary costs no read. The cache may lag behind the first pass's status
// write; the Canary has then started already (mayStart remembers it until a phase is seen)
// and goes on at once.
func (r *Reconciler) turnOf(ctx context.Context, key types.NamespacedName) (waiting *flaggerv1.Canary, mark bool) {
	if r.pace == nil || r.pace.limiter == nil {
		return nil, false
	}
	var c flaggerv1.Canary
	if err := r.Client.Get(ctx, key, &c); err != nil {
		return nil, false // gone, or not this shard's: the pass finds out
	}
	if c.Status.Phase != "" || !c.DeletionTimestamp.IsZero() || c.Spec.Suspend {
		r.pace.forget(key)
		return nil, false
	}
	start, mark := r.pace.ask(key, c.UID)
	if start {
		return nil, false
	}
	return &c, mark
}

// markWaiting writes, once, the status of a Canary waiting for its turn: Reconciling True and
// Ready False (reason WaitingForTurn) and its observed generation. Without it the Canary has
// no status, which kstatus reads as Current: a Flux Kustomization that waits for its objects
// would go Ready before its Canaries started, and miss a missing target. It is the only write
// of a waiting Canary; its event wakes no one (the Canary watch passes spec changes only).
func (r *Reconciler) markWaiting(ctx context.Context, c *flaggerv1.Canary) error {
	if c.Status.ObservedGeneration == c.Generation {
		if cond := flaggerv1.FindCondition(c.Status.Conditions, flaggerv1.ReconcilingType); cond != nil && cond.Reason == flaggerv1.ReasonWaitingForTurn {
			return nil
		}
		if flaggerv1.FindCondition(c.Status.Conditions, flaggerv1.StalledType) != nil {
			// A configuration problem its last pass reported (a Canary with no phase
			// whose target is missing, met again after a restart): kstatus reads it
			// Failed, which is what a Kustomization should see until it is fixed.
			return nil
		}
	}
	before := c.DeepCopy()
	p := &pass{c: c, now: r.Now()}
	const msg = "Waiting for a turn to initialise (-initialization-rate)"
	p.setCondition(flaggerv1.ReconcilingType, corev1.ConditionTrue, flaggerv1.ReasonWaitingForTurn, msg)
	p.setCondition(flaggerv1.ReadyType, corev1.ConditionFalse, flaggerv1.ReasonWaitingForTurn, msg)
	c.Status.ObservedGeneration = c.Generation
	// With the version read from the cache: should the Canary have started meanwhile (a
	// lagging cache), the write fails rather than overwrite its status.
	err := r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the next pass sees the newer Canary
	}
	if err != nil {
		return fmt.Errorf("writing the status of a Canary waiting for its turn: %w", err)
	}
	return nil
}
