package canary

import (
	"context"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/types"
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
// version is dropped too: only that write can follow it, unless it fails with a conflict
// because someone else's came first. Then that event was not ours, and the conflict stands
// for it: the write is made again from the newer object (the routers retry on conflict), or
// its pass fails and runs again shortly with fresh objects (Reconcile; a stalled run's guard
// too). Two cases are left to the next pass (a timer or another event): the other write came
// first and ours then failed otherwise (timeout, invalid), or a relist of the watch delivered
// the other write as the change from the marked version. Both need the two writes within one
// update call.
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
	// inFlight holds the updates under way: what they were made from.
	inFlight sync.Map // writtenFrom → struct{}
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
	_, ok := w.inFlight.Load(writtenFrom{old.GetUID(), old.GetResourceVersion()})
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

func inPass(ctx context.Context) context.Context { return context.WithValue(ctx, passKey{}, true) }

// recordingClient records the resourceVersion each create and update of a pass returned
// (controller-runtime's client puts the server's answer into the object).
type recordingClient struct {
	client.Client
	own *ownWrites
}

func (c recordingClient) done(ctx context.Context, o client.Object, err error) error {
	if err == nil && ctx.Value(passKey{}) != nil {
		c.own.record(o)
	}
	return err
}

func (c recordingClient) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	return c.done(ctx, o, c.Client.Create(ctx, o, opts...))
}

func (c recordingClient) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	from := o.GetResourceVersion()
	if from != "" && o.GetUID() != "" && ctx.Value(passKey{}) != nil && c.own.watched(o) {
		// Marked until the answer is recorded (done, below, runs before this).
		key := writtenFrom{o.GetUID(), from}
		c.own.inFlight.Store(key, struct{}{})
		defer c.own.inFlight.Delete(key)
	}
	err := c.Client.Update(ctx, o, opts...)
	if from == "" || o.GetResourceVersion() == from {
		// An update that changed nothing writes nothing and returns the version it was made
		// from, whose event (possibly someone else's write) may still be on its way; one
		// without a version is not tied to what the pass saw.
		return err
	}
	return c.done(ctx, o, err)
}
