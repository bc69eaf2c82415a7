package canary

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	istionet "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The update event of a pass's own write wakes no one; a later change by someone else does, and
// so does the deletion, after which the object is forgotten. Patches, writes outside a pass
// (the releaser's) and kinds no watch forgets are not remembered.
func TestOwnWritesWakeNoOne(t *testing.T) {
	ctx := context.Background()
	pass := inPass(ctx)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	others := fake.NewClientBuilder().WithScheme(scheme).Build()
	own := &ownWrites{}
	ours := recordingClient{Client: others, own: own}
	p := own.watch(&appsv1.Deployment{})

	d := &appsv1.Deployment{}
	d.Namespace, d.Name, d.UID = "ns", "podinfo", "uid-1"
	if err := others.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	before := d.DeepCopy()
	promoted := d.DeepCopy()
	promoted.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "podinfo:2"}}
	if err := ours.Update(pass, promoted); err != nil {
		t.Fatal(err)
	}
	if p.Update(event.UpdateEvent{ObjectOld: before, ObjectNew: promoted}) {
		t.Error("the event of a pass's own update wakes the Canary")
	}

	edited := promoted.DeepCopy()
	edited.Spec.Replicas = ptr.To(int32(3))
	if err := others.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	if !p.Update(event.UpdateEvent{ObjectOld: promoted, ObjectNew: edited}) {
		t.Error("a user's change after the pass's write does not wake the Canary")
	}

	// A merge patch that changes nothing returns the current version, someone else's.
	noop := edited.DeepCopy()
	if err := ours.Patch(pass, noop, client.MergeFrom(edited)); err != nil {
		t.Fatal(err)
	}
	if v, _ := own.m.Load(d.UID); v != promoted.ResourceVersion {
		t.Errorf("a patch was remembered (%v): one that changes nothing returns someone else's version", v)
	}
	released := &appsv1.Deployment{}
	if err := others.Get(ctx, client.ObjectKeyFromObject(d), released); err != nil {
		t.Fatal(err)
	}
	released.Spec.Replicas = ptr.To(int32(1))
	if err := ours.Update(ctx, released); err != nil { // not in a pass: the releaser's
		t.Fatal(err)
	}
	if !p.Update(event.UpdateEvent{ObjectOld: edited, ObjectNew: released}) {
		t.Error("the releaser's write is taken for a pass's own")
	}

	released.Spec.Replicas = ptr.To(int32(2))
	if err := ours.Update(pass, released); err != nil {
		t.Fatal(err)
	}
	if !p.Delete(event.DeleteEvent{Object: released}) {
		t.Error("a deletion does not wake the Canary")
	}
	if _, kept := own.m.Load(d.UID); kept {
		t.Error("a deleted object is still remembered")
	}

	// An update that changes nothing returns the version it was made from, whose event may
	// still be on its way; the API server answers so, as this client does.
	unchanged := recordingClient{own: own, Client: interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).Build(), interceptor.Funcs{
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error { return nil },
	})}
	seen := edited.DeepCopy()
	seen.UID = "uid-3"
	if err := unchanged.Update(pass, seen); err != nil {
		t.Fatal(err)
	}
	if _, kept := own.m.Load(seen.UID); kept {
		t.Error("an update that wrote nothing was remembered as the pass's own")
	}

	// What no watch with notOwnWrite sees is not kept: nothing would forget it.
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name, cm.UID = "ns", "config-primary", "uid-2"
	if err := ours.Create(pass, cm); err != nil {
		t.Fatal(err)
	}
	if _, kept := own.m.Load(cm.UID); kept {
		t.Error("a ConfigMap write is remembered")
	}
}

// The event of a pass's own update can arrive before the update's answer: it is dropped as
// well, by the version the update was made from. Once the answer is in, a later change made
// from that version (someone else's) wakes again.
func TestOwnWriteEventBeforeItsAnswerWakesNoOne(t *testing.T) {
	own := &ownWrites{}
	p := own.watch(&appsv1.Deployment{})

	before := &appsv1.Deployment{}
	before.Namespace, before.Name, before.UID, before.ResourceVersion = "ns", "podinfo-primary", "uid-1", "10"
	var early []bool // what the predicate said of the events that came before the answer
	// answer is a client whose update sees the event of written arrive before it answers:
	// with written's version if it succeeds and changed the object, else with err or, when
	// unchanged, with the version it was made from.
	answer := func(written *appsv1.Deployment, unchanged bool, err error) recordingClient {
		return recordingClient{own: own, Client: interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
			Update: func(_ context.Context, _ client.WithWatch, o client.Object, _ ...client.UpdateOption) error {
				early = append(early, p.Update(event.UpdateEvent{ObjectOld: before, ObjectNew: written}))
				if err == nil && !unchanged {
					o.SetResourceVersion(written.ResourceVersion)
				}
				return err
			},
		})}
	}
	missed := func(ctx context.Context) bool { return passOf(ctx).missed.Load() }

	pass := inPass(context.Background())
	ours := before.DeepCopy()
	ours.ResourceVersion = "11"
	if err := answer(ours, false, nil).Update(pass, before.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if len(early) != 1 || early[0] || missed(pass) {
		t.Fatalf("the event of the pass's own update, before its answer: wakes %v (missed %v), want [false] (false)", early, missed(pass))
	}
	if p.Update(event.UpdateEvent{ObjectOld: before, ObjectNew: ours}) {
		t.Error("the event of the pass's own update, after its answer, wakes the Canary")
	}
	theirs := before.DeepCopy()
	theirs.ResourceVersion = "12"
	if !p.Update(event.UpdateEvent{ObjectOld: before, ObjectNew: theirs}) {
		t.Error("with no update under way, a change made from the same version does not wake the Canary")
	}

	// Someone else's write came first: its event, under way with ours, is dropped, and ours
	// fails with a conflict. The pass is told it may have missed an event.
	early, pass = nil, inPass(context.Background())
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, before.Name, nil)
	err := answer(theirs, false, conflict).Update(pass, before.DeepCopy())
	if !apierrors.IsConflict(err) {
		t.Fatalf("the pass's update, made from a version someone else's write replaced: %v, want a conflict", err)
	}
	if len(early) != 1 || early[0] || !missed(pass) {
		t.Fatalf("someone else's event during the pass's conflicting update: wakes %v (missed %v), want [false] (true)", early, missed(pass))
	}
	// An update that changed nothing, and someone else's write after it: the same.
	early, pass = nil, inPass(context.Background())
	if err := answer(theirs, true, nil).Update(pass, before.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if len(early) != 1 || early[0] || !missed(pass) {
		t.Fatalf("someone else's event during the pass's update that changed nothing: wakes %v (missed %v), want [false] (true)", early, missed(pass))
	}
	// Outside a pass (the releaser's writes) nothing is marked.
	early = nil
	releasers := before.DeepCopy()
	releasers.ResourceVersion = "13"
	if err := answer(releasers, false, nil).Update(context.Background(), before.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if len(early) != 1 || !early[0] {
		t.Fatalf("an update outside a pass: its event wakes %v, want [true]", early)
	}
}

// A pass that may have missed an event looks again within missedLook, unless it failed (it is
// retried anyway) or already comes back sooner.
func TestAPassThatMayHaveMissedAnEventLooksAgainSoon(t *testing.T) {
	pass := inPass(context.Background())
	if got := lookAgainIfMissed(pass, ctrl.Result{RequeueAfter: time.Minute}, nil); got.RequeueAfter != time.Minute {
		t.Errorf("nothing missed: %s", got.RequeueAfter)
	}
	passOf(pass).missed.Store(true)
	for _, tc := range []struct {
		in   time.Duration
		err  error
		want time.Duration
	}{
		{0, nil, missedLook},
		{time.Minute, nil, missedLook},
		{50 * time.Millisecond, nil, 50 * time.Millisecond},
		{time.Minute, errors.New("failed"), time.Minute},
	} {
		if got := lookAgainIfMissed(pass, ctrl.Result{RequeueAfter: tc.in}, tc.err); got.RequeueAfter != tc.want {
			t.Errorf("missed, result %s, error %v: looks again in %s, want %s", tc.in, tc.err, got.RequeueAfter, tc.want)
		}
	}
	if got := lookAgainIfMissed(context.Background(), ctrl.Result{}, nil); got.RequeueAfter != 0 {
		t.Errorf("outside a pass: %s", got.RequeueAfter)
	}
}

// Through Reconcile: the first route write of a step conflicts with someone else's, whose event
// arrived while it was under way and was dropped as the write's own. The router's retry
// succeeds and the pass goes on, and it looks again in missedLook instead of at the interval.
func TestAPassWhoseWriteHidSomeoneElsesEventLooksAgainSoon(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.r.Client = recordingClient{Client: w.r.Client, own: &w.r.own}
	events := w.r.own.watch(&istionet.VirtualService{})
	w.initialise()
	vs, ok := w.virtualService()
	if !ok {
		t.Fatal("no VirtualService after initialisation")
	}
	vs.UID = "uid-vs" // as the API server would have set it; the fake client does not
	if err := w.cl.Update(w.ctx, vs); err != nil {
		t.Fatal(err)
	}
	w.release(imageV2)
	if got := w.tick(); !strings.HasPrefix(got, "Progressing w0") {
		t.Fatalf("after the release: %q", got)
	}
	conflicts := 0
	w.vsUpdate = func(vs *istionet.VirtualService) error {
		if conflicts > 0 {
			return nil
		}
		conflicts++
		if vs.UID == "" || vs.ResourceVersion == "" {
			t.Fatalf("the VirtualService written has no UID or version: %q %q", vs.UID, vs.ResourceVersion)
		}
		theirs := vs.DeepCopy()
		theirs.ResourceVersion += "0"
		if events.Update(event.UpdateEvent{ObjectOld: vs.DeepCopy(), ObjectNew: theirs}) {
			t.Error("the event from the version the write was made from woke the Canary")
		}
		return apierrors.NewConflict(schema.GroupResource{Group: "networking.istio.io", Resource: "virtualservices"}, vs.Name, errors.New("someone else's write came first"))
	}
	w.now = w.now.Add(testInterval)
	res, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName}})
	if err != nil || conflicts != 1 {
		t.Fatalf("the pass: %v (%d conflicts)", err, conflicts)
	}
	if got := w.routes(); got != "90/10" {
		t.Errorf("routes after the step %q, want 90/10: the router's retry goes on", got)
	}
	if res.RequeueAfter != missedLook {
		t.Errorf("the pass comes back in %s, want %s: the dropped event may have been someone else's", res.RequeueAfter, missedLook)
	}
}
