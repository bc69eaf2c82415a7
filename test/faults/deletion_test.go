package faults

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// deletionCase is a Canary over user-owned objects: its target, an apex Service the user
// created first and, on Istio, the user's VirtualService.
type deletionCase struct {
	name         string
	provider     string
	revert       bool
	sharedConfig bool
}

func (d deletionCase) istio() bool { return d.provider == flaggerv1.ProviderIstio }

func deletionCases() []deletionCase {
	return []deletionCase{
		{name: "svc-revert", provider: flaggerv1.ProviderKubernetes, revert: true},
		{name: "svc-plain", provider: flaggerv1.ProviderKubernetes},
		{name: "vs-revert", provider: flaggerv1.ProviderIstio, revert: true},
		{name: "vs-plain", provider: flaggerv1.ProviderIstio},
	}
}

// userState is what the user's objects looked like before the Canary existed.
type userState struct {
	template *corev1.PodTemplateSpec
	replicas int32
	service  *corev1.Service
	selector map[string]string
	vs       *istionetworking.VirtualService
}

// setUpDeletion creates the user's objects and the Canaries over them, and waits until the
// Canaries are initialised. It returns the user's state from before the Canaries.
func setUpDeletion(ctx context.Context, ns string, cases []deletionCase) (map[string]userState, error) {
	if err := namespace(ctx, ns); err != nil {
		return nil, err
	}
	if err := create(ctx, &corev1.ConfigMap{ObjectMeta: metaName(ns, sharedConfigName), Data: map[string]string{"GREETING": "hello"}}); err != nil {
		return nil, err
	}
	before := map[string]userState{}
	for _, c := range cases {
		d := app(ns, c.name, c.sharedConfig)
		objs := []client.Object{d, userService(ns, c.name)}
		if c.istio() {
			objs = append(objs, userVirtualService(ns, c.name))
		}
		if err := create(ctx, objs...); err != nil {
			return nil, err
		}
	}
	// The user's objects serve before any Canary exists; from then on they must serve
	// throughout.
	for _, c := range cases {
		if err := waitReady(ctx, ns, c.name, 2, 60*time.Second); err != nil {
			return nil, err
		}
		watch.watchApex(apex{namespace: ns, name: c.name, virtualService: c.istio()})
		var d appsv1.Deployment
		var svc corev1.Service
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.name}, &d); err != nil {
			return nil, err
		}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.name}, &svc); err != nil {
			return nil, err
		}
		st := userState{template: d.Spec.Template.DeepCopy(), replicas: *d.Spec.Replicas, service: svc.DeepCopy(), selector: svc.Spec.Selector}
		if c.istio() {
			var vs istionetworking.VirtualService
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.name}, &vs); err != nil {
				return nil, err
			}
			st.vs = vs.DeepCopy()
		}
		before[c.name] = st
		opts := canaryOpts{provider: c.provider, revertOnDeletion: c.revert, hooks: []string{hookEvent}}
		if c.istio() {
			opts.stepWeight, opts.maxWeight = 50, 50
		} else {
			opts.iterations, opts.threshold = 2, 1
		}
		if err := create(ctx, canaryFor(ns, c.name, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cases {
		if err := waitPhase(ctx, ns, c.name, 90*time.Second, flaggerv1.CanaryPhaseInitialized); err != nil {
			return nil, err
		}
	}
	log.add("%s: %d Canaries initialised over user-owned objects", ns, len(cases))
	return before, nil
}

func waitReady(ctx context.Context, ns, name string, replicas int32, within time.Duration) error {
	return retry(ctx, within, func() error {
		var d appsv1.Deployment
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		if d.Status.ReadyReplicas < replicas {
			return fmt.Errorf("%s/%s: %d of %d replicas ready", ns, name, d.Status.ReadyReplicas, replicas)
		}
		return nil
	})
}

func deleteCanary(ctx context.Context, ns, name string) error {
	return retry(ctx, 30*time.Second, func() error {
		return client.IgnoreNotFound(k8s.Delete(ctx, &flaggerv1.Canary{ObjectMeta: metaName(ns, name)}))
	})
}

// notRestored lists how the user's objects differ from before the Canary existed, and which
// of the Canary's own objects remain; empty once all is as it was.
func notRestored(ctx context.Context, ns string, c deletionCase, before userState, otherUsers bool) []string {
	var problems []string
	get := func(obj client.Object, name string) bool {
		err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
		if err != nil && !apierrors.IsNotFound(err) {
			problems = append(problems, fmt.Sprintf("reading %s: %v", name, err))
		}
		return err == nil
	}
	var cr flaggerv1.Canary
	if get(&cr, c.name) {
		problems = append(problems, fmt.Sprintf("Canary still there (finalizers %v)", cr.Finalizers))
	}
	var d appsv1.Deployment
	if !get(&d, c.name) {
		problems = append(problems, "target Deployment is gone")
	} else {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != before.replicas || d.Status.ReadyReplicas != before.replicas {
			problems = append(problems, fmt.Sprintf("target replicas %d (%d ready), want %d as before", ptrValue(d.Spec.Replicas), d.Status.ReadyReplicas, before.replicas))
		}
		for k := range d.Labels {
			if strings.HasPrefix(k, contract.Prefix) {
				problems = append(problems, "target keeps label "+k)
			}
		}
		for k := range d.Annotations {
			if k == contract.AnnotationIdle || k == contract.AnnotationDesiredReplicas {
				problems = append(problems, "target keeps annotation "+k)
			}
		}
		if got, want := d.Spec.Template.Spec.Containers[0].Image, before.template.Spec.Containers[0].Image; got != want {
			problems = append(problems, fmt.Sprintf("target image %s, want %s", got, want))
		}
		for _, ref := range d.OwnerReferences {
			problems = append(problems, "target has an owner "+ref.Kind+"/"+ref.Name)
		}
	}
	var svc corev1.Service
	if !get(&svc, c.name) {
		problems = append(problems, "the user's apex Service is gone")
	} else {
		if fmt.Sprint(svc.Spec.Selector) != fmt.Sprint(before.selector) {
			problems = append(problems, fmt.Sprintf("the user's apex Service selects %v, want %v as before", svc.Spec.Selector, before.selector))
		}
		for _, ref := range svc.OwnerReferences {
			problems = append(problems, "the user's apex Service has an owner "+ref.Kind+"/"+ref.Name)
		}
		problems = append(problems, metadataChanges("the user's apex Service", &before.service.ObjectMeta, &svc.ObjectMeta)...)
	}
	if c.istio() {
		var vs istionetworking.VirtualService
		if !get(&vs, c.name) {
			problems = append(problems, "the user's VirtualService is gone")
		} else {
			if !proto.Equal(&vs.Spec, &before.vs.Spec) {
				problems = append(problems, fmt.Sprintf("the user's VirtualService is %v, want %v as before", vs.Spec.String(), before.vs.Spec.String()))
			}
			for _, ref := range vs.OwnerReferences {
				problems = append(problems, "the user's VirtualService has an owner "+ref.Kind+"/"+ref.Name)
			}
			problems = append(problems, metadataChanges("the user's VirtualService", &before.vs.ObjectMeta, &vs.ObjectMeta)...)
		}
	}
	leftovers := []client.Object{}
	var primary appsv1.Deployment
	if get(&primary, contract.PrimaryName(c.name)) && primary.DeletionTimestamp == nil {
		leftovers = append(leftovers, &primary)
	}
	for _, name := range []string{c.name + "-primary", c.name + "-canary"} {
		var s corev1.Service
		if get(&s, name) && s.DeletionTimestamp == nil {
			leftovers = append(leftovers, &s)
		}
	}
	if !otherUsers {
		var cm corev1.ConfigMap
		if c.sharedConfig && get(&cm, contract.PrimaryName(sharedConfigName)) && cm.DeletionTimestamp == nil {
			leftovers = append(leftovers, &cm)
		}
	}
	for _, o := range leftovers {
		problems = append(problems, fmt.Sprintf("%T %s left behind", o, o.GetName()))
	}
	return problems
}

// expectRestored waits until every case is restored; what is still wrong at the end is
// reported as a violation.
func expectRestored(ctx context.Context, ns string, cases []deletionCase, before map[string]userState, within time.Duration) []string {
	deadline := time.Now().Add(within)
	var problems []string
	for {
		problems = nil
		for _, c := range cases {
			for _, p := range notRestored(ctx, ns, c, before[c.name], false) {
				problems = append(problems, c.name+": "+p)
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range problems {
		watch.violate(violation{at: time.Now(), kind: violationRestore, subject: ns + "/" + strings.SplitN(p, ":", 2)[0], detail: p})
	}
	return problems
}

// namespaceGone waits for a namespace to disappear.
func namespaceGone(ctx context.Context, ns string, within time.Duration) error {
	return retry(ctx, within, func() error {
		var n corev1.Namespace
		err := k8s.Get(ctx, types.NamespacedName{Name: ns}, &n)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		var conds []string
		for _, c := range n.Status.Conditions {
			if c.Status == corev1.ConditionTrue {
				conds = append(conds, string(c.Type)+": "+c.Message)
			}
		}
		return fmt.Errorf("namespace %s still %s: %s", ns, n.Status.Phase, strings.Join(conds, "; "))
	})
}

// metadataChanges lists the labels and annotations of an object that differ from before.
func metadataChanges(what string, before, after *metav1.ObjectMeta) []string {
	var out []string
	diff := func(kind string, a, b map[string]string) {
		for k, v := range b {
			if w, ok := a[k]; !ok || w != v {
				out = append(out, fmt.Sprintf("%s has %s %s=%.60q, not there before", what, kind, k, v))
			}
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				out = append(out, fmt.Sprintf("%s lost its %s %s", what, kind, k))
			}
		}
	}
	diff("label", before.Labels, after.Labels)
	diff("annotation", before.Annotations, after.Annotations)
	return out
}
