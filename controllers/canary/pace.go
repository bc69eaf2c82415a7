package canary

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// initPace spaces out the start of new Canaries' initialisation (-initialization-rate).
//
// Each initialisation makes the control plane create a primary, its ReplicaSet and pods, and
// two or three Services, then roll the target down: a dozen writes of Herald's and as many of
// the controller-manager's, which rolls out a few Deployments a second at its default 20
// requests a second. Started all at once, a thousand Canaries applied in one go would
// queue ten thousand writes behind that apply and slow it down, and gain nothing: the
// primaries could not roll out faster. Paced, a burst of new Canaries starts as fast as the
// control plane can take them, and an apply of many Canaries is not held up by Herald.
//
// Only a Canary that has never had a phase waits for a turn: a Canary Herald (or Flagger)
// already started, and every later step of any Canary, goes on at once. A Canary waits
// without writing anything (its phase stays empty) and comes back when its turn comes.
// Turns are given in the order Canaries first ask, whoever they belong to: one tenant's many
// Canaries delay another's by their number divided by the rate, and never longer.
type initPace struct {
	limiter *rate.Limiter // nil: no pacing

	mu    sync.Mutex
	turns map[types.NamespacedName]time.Time // the turns of Canaries with no phase yet
}

// newInitPace paces initialisations to perSecond, with burst starting at once; perSecond ≤ 0
// turns pacing off.
func newInitPace(perSecond float64, burst int) *initPace {
	if perSecond <= 0 {
		return &initPace{}
	}
	return &initPace{limiter: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)), turns: map[types.NamespacedName]time.Time{}}
}

// wait is how long the Canary key must still wait for its turn to start initialising; 0 when it
// may start now. Its first call reserves the turn; later calls (other events that wake the
// Canary meanwhile, or passes again after a first one failed) find the same turn, so a
// Canary takes one turn however often it comes back before it has a phase.
func (p *initPace) wait(key types.NamespacedName, now time.Time) time.Duration {
	if p == nil || p.limiter == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.turns[key]
	if !ok {
		at = now.Add(p.limiter.ReserveN(now, 1).DelayFrom(now))
		p.turns[key] = at
	}
	return max(at.Sub(now), 0)
}

// waiting reports whether the Canary key holds a turn still to come.
func (p *initPace) waiting(key types.NamespacedName, now func() time.Time) bool {
	if p == nil || p.limiter == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.turns[key]
	return ok && at.After(now())
}

// forget drops the turn of a Canary that has a phase now, or is gone. A turn not taken is not
// given back: the ones after it were reserved behind it and keep their times.
func (p *initPace) forget(key types.NamespacedName) {
	if p == nil || p.limiter == nil {
		return
	}
	p.mu.Lock()
	delete(p.turns, key)
	p.mu.Unlock()
}

// turnOf is how long the Canary key must still wait for its turn to initialise, judged from the
// cache before the pass reads the Canary from the API server: a Canary waiting for its turn
// costs no request. The cache may lag behind the first pass's status write; the Canary then
// still holds its turn (wait keeps it until a phase is seen) and goes on at once.
func (r *Reconciler) turnOf(ctx context.Context, key types.NamespacedName) time.Duration {
	if r.pace == nil || r.pace.limiter == nil {
		return 0
	}
	var c flaggerv1.Canary
	if err := r.Client.Get(ctx, key, &c); err != nil {
		return 0 // gone, or not this shard's: the pass finds out
	}
	if c.Status.Phase != "" || !c.DeletionTimestamp.IsZero() {
		r.pace.forget(key)
		return 0
	}
	if c.Spec.Suspend {
		return 0
	}
	return r.pace.wait(key, r.Now())
}
