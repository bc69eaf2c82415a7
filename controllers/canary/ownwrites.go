package canary

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The watch event of Herald's own write tells the pass that made it nothing new: that pass
// goes on from what the write returned and has already asked to come back when it needs to
// (a timer, or the events of what the write sets going: a rollout's status updates). Yet each
// such event woke the Canary again: the target's scale-up and scale-down, the primary's new
// template, each route weight. ownWrites remembers the resourceVersion each write returned, and
// notOwnWrite drops the one update event that carries it; any later change, by anyone, has
// another resourceVersion and still wakes.

// ownWrites maps an object's UID to the resourceVersion Herald's last write of it returned.
type ownWrites struct{ m sync.Map }

func (w *ownWrites) record(o client.Object) {
	switch o.(type) {
	case *corev1.ConfigMap, *corev1.Secret, *flaggerv1.Canary:
		return // not watched through notOwnWrite, which forgets what is deleted
	}
	if uid := o.GetUID(); uid != "" && o.GetResourceVersion() != "" {
		w.m.Store(uid, o.GetResourceVersion())
	}
}

// isOwn reports whether o, as an update event brings it, is what Herald's last write of it left.
func (w *ownWrites) isOwn(o client.Object) bool {
	v, ok := w.m.Load(o.GetUID())
	return ok && v.(string) == o.GetResourceVersion()
}

func (w *ownWrites) forget(uid types.UID) { w.m.Delete(uid) }

// notOwnWrite drops the update events of Herald's own writes, and forgets a deleted object.
func notOwnWrite(w *ownWrites) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectNew == nil || !w.isOwn(e.ObjectNew) },
		DeleteFunc: func(e event.DeleteEvent) bool {
			if e.Object != nil {
				w.forget(e.Object.GetUID())
			}
			return true
		},
	}
}

// recordingClient is the Canary controller's client: it records the resourceVersion each of its
// writes returned (controller-runtime's client puts the server's answer into the object).
// Status writes go to the Canary, whose status changes wake nothing anyway.
type recordingClient struct {
	client.Client
	own *ownWrites
}

func (c recordingClient) done(o client.Object, err error) error {
	if err == nil {
		c.own.record(o)
	}
	return err
}

func (c recordingClient) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	return c.done(o, c.Client.Create(ctx, o, opts...))
}

func (c recordingClient) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	return c.done(o, c.Client.Update(ctx, o, opts...))
}

func (c recordingClient) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	return c.done(o, c.Client.Patch(ctx, o, p, opts...))
}
