package canary

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// sooner for it: on the local control plane the API server's CPU during such an apply fell
// from about 7.5 s to 5.5 s with the default pace (bench-scale's apply samples).
//
// Only a Canary that has never had a phase waits: a Canary Herald (or Flagger) already
// started, and every later step of any Canary, goes on at once. A waiting Canary has no phase
// yet, and its passes read only the cache and write nothing. Up to the burst start at once
// while no one waits; after that, turns come at the rate and go round the namespaces with
// Canaries waiting, oldest first within each: one tenant's thousand new Canaries take one
// turn in every k while k namespaces wait, and a Canary deleted before its turn takes none.
// A turn wakes its Canary through wakeups (a channel the controller watches); a waiting
// pass also comes back after waitBackstop should that wake be lost.
type initPace struct {
	limiter *rate.Limiter // nil: no pacing
	// now is the reconciler's clock, for the limiter; the timer waits real time, so a test
	// that pins the clock holds the turns (after) rather than letting the timer run.
	now   func() time.Time
	after func(time.Duration, func()) *time.Timer // time.AfterFunc
	// wakeups carries the Canary whose turn came; full, the wake is dropped and the waiting
	// pass's backstop brings the Canary.
	wakeups chan event.GenericEvent

	mu      sync.Mutex
	waiting map[string]*list.List                  // namespace → names waiting, oldest first
	queued  map[types.NamespacedName]*list.Element // each waiting Canary's place
	ring    []string                               // the namespaces with Canaries waiting, in turn order
	started map[types.NamespacedName]types.UID     // Canaries whose turn came (or needed none), until a phase is seen
	timer   *time.Timer                            // the next turn, while someone waits
	next    *rate.Reservation                      // the token of that turn
}

// waitBackstop is when a waiting pass comes back by itself.
const waitBackstop = time.Minute

// newInitPace paces initialisations to perSecond, with burst starting at once; perSecond ≤ 0
// turns pacing off.
func newInitPace(perSecond float64, burst int, now func() time.Time) *initPace {
	if perSecond <= 0 {
		return &initPace{}
	}
	return &initPace{
		limiter: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)),
		now:     now,
		after:   time.AfterFunc,
		wakeups: make(chan event.GenericEvent, 1024),
		waiting: map[string]*list.List{},
		queued:  map[types.NamespacedName]*list.Element{},
		started: map[types.NamespacedName]types.UID{},
	}
}

// mayStart reports whether the Canary key (of uid) may start initialising now; if not, it is
// queued (once, however often it asks) and woken at its turn. A Canary deleted and created
// again under the same name is a new one.
func (p *initPace) mayStart(key types.NamespacedName, uid types.UID) bool {
	if p == nil || p.limiter == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if started, ok := p.started[key]; ok {
		if started == uid || started == "" { // "": its turn came, this is its first pass since
			p.started[key] = uid
			return true
		}
		delete(p.started, key)
	}
	if _, ok := p.queued[key]; ok {
		return false
	}
	now := p.now()
	if len(p.ring) == 0 && p.limiter.AllowN(now, 1) {
		p.started[key] = uid
		return true
	}
	names := p.waiting[key.Namespace]
	if names == nil {
		names = list.New()
		p.waiting[key.Namespace] = names
		p.ring = append(p.ring, key.Namespace)
	}
	p.queued[key] = names.PushBack(key.Name)
	p.scheduleLocked(now)
	return false
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
		p.next.CancelAt(p.now())
		p.timer, p.next = nil, nil
	}
}

// nextLocked gives the turn to the oldest waiting Canary of the namespace first in the ring, and
// moves that namespace to the ring's end.
func (p *initPace) nextLocked() (types.NamespacedName, bool) {
	if len(p.ring) == 0 {
		return types.NamespacedName{}, false
	}
	ns := p.ring[0]
	key := types.NamespacedName{Namespace: ns, Name: p.waiting[ns].Front().Value.(string)}
	p.dequeueLocked(key)
	if len(p.ring) > 0 && p.ring[0] == ns {
		p.ring = append(p.ring[1:], ns)
	}
	p.started[key] = "" // the pass at its turn fills in the uid
	return key, true
}

// scheduleLocked arms the timer of the next turn, unless it is armed or no one waits. The
// token is taken when the timer is armed, so turns keep the rate.
func (p *initPace) scheduleLocked(now time.Time) {
	if p.timer != nil || len(p.ring) == 0 {
		return
	}
	p.next = p.limiter.ReserveN(now, 1)
	p.timer = p.after(p.next.DelayFrom(now), p.turn)
}

// turn is the timer's: the next Canary's turn comes.
func (p *initPace) turn() {
	p.mu.Lock()
	p.timer, p.next = nil, nil
	key, ok := p.nextLocked()
	p.scheduleLocked(p.now())
	p.mu.Unlock()
	if !ok {
		return
	}
	select {
	case p.wakeups <- event.GenericEvent{Object: &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
	default: // the waiting pass's backstop brings it
	}
}

// turnOf decides, from the cache and before the pass reads the Canary from the API server,
// whether the Canary key must wait for its turn to initialise: a waiting Canary costs no
// request. The cache may lag behind the first pass's status write; the Canary has
// then started already (mayStart remembers it until a phase is seen) and goes on at once.
func (r *Reconciler) turnOf(ctx context.Context, key types.NamespacedName) (wait bool) {
	if r.pace == nil || r.pace.limiter == nil {
		return false
	}
	var c flaggerv1.Canary
	if err := r.Client.Get(ctx, key, &c); err != nil {
		return false // gone, or not this shard's: the pass finds out
	}
	if c.Status.Phase != "" || !c.DeletionTimestamp.IsZero() || c.Spec.Suspend {
		r.pace.forget(key)
		return false
	}
	return !r.pace.mayStart(key, c.UID)
}
