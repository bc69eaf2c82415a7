package canary

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// The update event of the controller's own write wakes no one; a later change by someone else
// does, and so does the deletion, after which the object is forgotten.
func TestOwnWritesWakeNoOne(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	others := fake.NewClientBuilder().WithScheme(scheme).Build()
	own := &ownWrites{}
	ours := recordingClient{Client: others, own: own}
	p := notOwnWrite(own)

	d := &appsv1.Deployment{}
	d.Namespace, d.Name, d.UID = "ns", "podinfo", "uid-1"
	if err := others.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	before := d.DeepCopy()
	scaled := d.DeepCopy()
	scaled.Spec.Replicas = ptr.To(int32(2))
	if err := ours.Patch(ctx, scaled, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	if p.Update(event.UpdateEvent{ObjectOld: before, ObjectNew: scaled}) {
		t.Error("the event of Herald's own scale-up wakes the Canary")
	}

	edited := scaled.DeepCopy()
	edited.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "podinfo:2"}}
	if err := others.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	if !p.Update(event.UpdateEvent{ObjectOld: scaled, ObjectNew: edited}) {
		t.Error("a user's change after Herald's write does not wake the Canary")
	}

	if err := ours.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	if !p.Delete(event.DeleteEvent{Object: edited}) {
		t.Error("a deletion does not wake the Canary")
	}
	if _, kept := own.m.Load(d.UID); kept {
		t.Error("a deleted object is still remembered")
	}

	// What no watch with notOwnWrite sees is not kept: nothing would forget it.
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name, cm.UID = "ns", "config-primary", "uid-2"
	if err := ours.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if _, kept := own.m.Load(cm.UID); kept {
		t.Error("a ConfigMap write is remembered")
	}
}
