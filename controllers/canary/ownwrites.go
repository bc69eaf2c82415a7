package canary

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// The watch event of a Canary pass's own write tells that pass nothing new: it goes on from what
// the write returned and has already asked to come back when it needs to (a timer, or the
// events of what the write sets going: a rollout's status updates). Yet each such event woke
// the Canary again: the primary's new template, each route weight, each Service change.
// ownWrites remembers the resourceVersion each such write returned, and notOwnWrite drops the
// one update event that carries it; any later change, by anyone, has another resourceVersion
// and still wakes.
//
// The event can also come before the write's answer (the API server sends both at once, and a
// busy process reads the watch first): then the version is not known yet. So an update in
// flight marks the version it was made from, and the update event whose old object has that
// version is dropped too: only that write can follow it, if it succeeds and changes
// something. If it fails (a conflict: someone else's write came first), or changes nothing
// (and someone else's write followed it), a dropped event may have been someone else's: the
// pass is told (passState.missed) and comes back shortly, as the event would have made it.
//
// Only creates and updates that wrote something are remembered. Both are tied to the version
// they were made from (an update with a stale resourceVersion is refused), so a new version
// they return is that of the write itself. A merge patch is not: one that changes nothing
// returns the object's current version, possibly someone else's write the pass never saw,
// whose event must not be dropped. So the target's scale-up and scale-down (patches) still
// wake their Canary once.

// ownWrites maps an object's UID to the resourceVersion the last own write of it returned.
type ownWrites struct {
	m sync.Map // types.UID → string
	// inFlight holds the updates under way, by what they were made from, with the number of
	// events dropped meanwhile.
	inFlight sync.Map // writtenFrom → *atomic.Int32
	// kinds are the object types whose watches forget deleted objects (notOwnWrite); writes
	// of any other kind are not remembered, as nothing would ever forget them.
	kinds sync.Map // reflect.Type → bool
}

// watch returns the predicate for the watch of obj's kind, whose writes are from then on
// remembered.
func (w *ownWrites) watch(obj client.Object) predicate.Funcs {
	w.kinds.Store(reflect.TypeOf(obj), true)
	return notOwnWrite(w)
}

// writtenFrom is an object's version an update was made from.
type writtenFrom struct {
	uid     types.UID
	version string
}

func (w *ownWrites) watched(o client.Object) bool {
	_, ok := w.kinds.Load(reflect.TypeOf(o))
	return ok
}

func (w *ownWrites) record(o client.Object) {
	if !w.watched(o) {
		return
	}
	if uid := o.GetUID(); uid != "" && o.GetResourceVersion() != "" {
		w.m.Store(uid, o.GetResourceVersion())
	}
}

// isOwn reports whether an update event from old to o is an own write: o is what the last
// one left, or old is what one under way was made from.
func (w *ownWrites) isOwn(old, o client.Object) bool {
	if v, ok := w.m.Load(o.GetUID()); ok && v.(string) == o.GetResourceVersion() {
		return true
	}
	if old == nil {
		return false
	}
	dropped, ok := w.inFlight.Load(writtenFrom{old.GetUID(), old.GetResourceVersion()})
	if ok {
		dropped.(*atomic.Int32).Add(1)
	}
	return ok
}

func (w *ownWrites) forget(uid types.UID) { w.m.Delete(uid) }

// notOwnWrite drops the update events of own writes, and forgets a deleted object.
func notOwnWrite(w *ownWrites) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectNew == nil || !w.isOwn(e.ObjectOld, e.ObjectNew) },
		DeleteFunc: func(e event.DeleteEvent) bool {
			if e.Object != nil {
				w.forget(e.Object.GetUID())
			}
			return true
		},
	}
}

// passKey marks the context of a Canary pass: the releaser shares the client, but its writes
// are not a pass's (another Canary of the same target must see them).
type passKey struct{}

// passState is what a pass's writes tell the end of the pass.
type passState struct {
	// missed: an event dropped as one of the pass's writes may have been someone else's.
	missed atomic.Bool
}

func inPass(ctx context.Context) context.Context {
	return context.WithValue(ctx, passKey{}, &passState{})
}

// passOf is the state of the pass ctx belongs to; nil outside a pass.
func passOf(ctx context.Context) *passState {
	s, _ := ctx.Value(passKey{}).(*passState)
	return s
}

// missedLook is how soon a pass that may have missed an event looks again.
const missedLook = 200 * time.Millisecond

// lookAgainIfMissed shortens the result of a pass that ended without error (a stall included)
// to missedLook when an event dropped as one of its writes may have been someone else's. A
// failed pass is retried anyway. A write retried after a conflict that then succeeded still
// counts: one look too many costs less than a missed change.
func lookAgainIfMissed(ctx context.Context, result ctrl.Result, err error) ctrl.Result {
	if s := passOf(ctx); s != nil && s.missed.Load() && err == nil && (result.RequeueAfter <= 0 || result.RequeueAfter > missedLook) {
		result.RequeueAfter = missedLook
	}
	return result
}

// recordingClient records the resourceVersion each create and update of a pass returned
// (controller-runtime's client puts the server's answer into the object).
type recordingClient struct {
	client.Client
	own *ownWrites
}

func (c recordingClient) done(ctx context.Context, o client.Object, err error) error {
	if err == nil && passOf(ctx) != nil {
		c.own.record(o)
	}
	return err
}

func (c recordingClient) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	return c.done(ctx, o, c.Client.Create(ctx, o, opts...))
}

func (c recordingClient) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	from, state := o.GetResourceVersion(), passOf(ctx)
	var dropped *atomic.Int32
	key := writtenFrom{o.GetUID(), from}
	if from != "" && key.uid != "" && state != nil && c.own.watched(o) {
		// Two passes updating the same object from the same version share the count: only
		// one can succeed, and the other must learn of what was dropped.
		v, _ := c.own.inFlight.LoadOrStore(key, new(atomic.Int32))
		dropped = v.(*atomic.Int32)
	}
	err := c.Client.Update(ctx, o, opts...)
	// An update that changed nothing writes nothing and returns the version it was made
	// from, whose event (possibly someone else's write) may still be on its way; one without
	// a version is not tied to what the pass saw.
	wrote := err == nil && from != "" && o.GetResourceVersion() != from
	if wrote && state != nil {
		c.own.record(o) // before the mark goes: an event in between is still known
	}
	if dropped != nil {
		c.own.inFlight.CompareAndDelete(key, dropped)
		if !wrote && dropped.Load() > 0 {
			state.missed.Store(true)
		}
	}
	return err
}
