package e2e

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	istioapi "istio.io/api/networking/v1"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// userService is a Service a user made before any Canary, selecting app=name.
func userService(ctx context.Context, ns, name string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "shop"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9898, TargetPort: intstr.FromInt32(9898)}}},
	}
	Expect(k8s.Create(ctx, s)).To(Succeed())
	return s
}

// servingSampler checks every 200 ms that the Service ns/name selects at least one ready pod,
// and counts the samples that found none.
func servingSampler(ns, name string) (stop func() (bad, total int64)) {
	var bad, total atomic.Int64
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			ctx, cancel := ctxTimeout(5 * time.Second)
			var svc corev1.Service
			err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc)
			if err == nil {
				var pods corev1.PodList
				err = k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(svc.Spec.Selector))
				ready := 0
				for _, p := range pods.Items {
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
							ready++
						}
					}
				}
				total.Add(1)
				if err == nil && ready == 0 {
					bad.Add(1)
				}
			}
			cancel()
		}
	}()
	return func() (int64, int64) { close(done); return bad.Load(), total.Load() }
}

var _ = Describe("Deleting a Canary", Label("deletion"), func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("puts a user's apex Service and VirtualService back as they were and gives the target its pods before the primary goes, serving throughout", func(ctx SpecContext) {
		const name = "adopted"
		svc := userService(ctx, ctrlNS, name)
		vs := &istionetworking.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS, Annotations: map[string]string{"owner": "shop"}},
			Spec: istioapi.VirtualService{Hosts: []string{name}, Http: []*istioapi.HTTPRoute{{
				Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: name}}},
			}}},
		}
		Expect(k8s.Create(ctx, vs)).To(Succeed())
		original := vs.DeepCopy()
		app(ctx, name)
		c := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS},
			Spec: flaggerv1.CanarySpec{
				Provider:  "istio",
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, StepWeight: 50, MaxWeight: 50},
			},
		}
		Expect(k8s.Create(ctx, c)).To(Succeed())
		initialized(ctx, name)
		var adopted corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), &adopted)).To(Succeed())
		Expect(adopted.Spec.Selector).To(Equal(map[string]string{"app": name + "-primary"}))
		Expect(metav1.GetControllerOf(&adopted)).To(BeNil(), "a user's Service is never owned by the Canary")
		Expect(getCanary(ctx, name).Finalizers).To(BeEmpty())

		stop := servingSampler(ctrlNS, name)
		Expect(k8s.Delete(ctx, getCanary(ctx, name))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), &flaggerv1.Canary{}))
		}).WithTimeout(5*time.Second).Should(BeTrue(), "deleting a Canary waits for nothing")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name + "-primary"}, &appsv1.Deployment{}))
		}).WithTimeout(60 * time.Second).Should(BeTrue())
		time.Sleep(time.Second)
		bad, total := stop()
		Expect(bad).To(BeZero(), "%d of %d samples found the Service selecting no ready pod", bad, total)
		Expect(total).To(BeNumerically(">", 5))

		target := deploymentIn(ctx, name)
		Expect(*target.Spec.Replicas).To(Equal(int32(2)))
		Expect(target.Labels).NotTo(HaveKey(contract.LabelCanary))
		var back corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), &back)).To(Succeed())
		Expect(back.Spec.Selector).To(Equal(svc.Spec.Selector))
		Expect(back.Labels).To(Equal(svc.Labels))
		Expect(back.Annotations).To(BeEmpty())
		var vsBack istionetworking.VirtualService
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vs), &vsBack)).To(Succeed())
		Expect(vsBack.Spec.Http).To(HaveLen(1))
		Expect(vsBack.Spec.Http[0].Route[0].Destination.Host).To(Equal(name))
		Expect(vsBack.Annotations).To(Equal(original.Annotations))
		Expect(vsBack.Labels).To(BeEmpty())
	})

	It("never waits for Herald: with Herald stopped a Canary and a namespace go, the primary keeps serving, and Herald finishes once it starts", Serial, func(ctx SpecContext) {
		const name = "orphan"
		const ns = "delns"
		createNamespace(ns)
		svc := userService(ctx, ctrlNS, name)
		app(ctx, name)
		blueGreen(ctx, name, 1)
		initialized(ctx, name)
		// A second Canary in a namespace that goes while Herald is stopped.
		var d appsv1.Deployment
		sample("podinfo-deployment.yaml", &d)
		d.Namespace, d.Name = ns, "gone"
		d.Labels = map[string]string{"app": "gone"}
		d.Spec.Selector.MatchLabels, d.Spec.Template.Labels = map[string]string{"app": "gone"}, map[string]string{"app": "gone"}
		Expect(k8s.Create(ctx, &d)).To(Succeed())
		other := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: ns}, Spec: flaggerv1.CanarySpec{
			Provider: "kubernetes", TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "gone"},
			Service: flaggerv1.CanaryService{Port: 9898}, Analysis: &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, Iterations: 2}}}
		Expect(k8s.Create(ctx, other)).To(Succeed())
		Eventually(func() flaggerv1.CanaryPhase {
			var c flaggerv1.Canary
			_ = k8s.Get(ctx, client.ObjectKeyFromObject(other), &c)
			return c.Status.Phase
		}).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized))

		stop := servingSampler(ctrlNS, name)
		herald.Stop()
		DeferCleanup(func(ctx SpecContext) {
			if herald.Exited() {
				startHerald(ctx)
			}
		})
		Expect(k8s.Delete(ctx, getCanary(ctx, name))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &flaggerv1.Canary{}))
		}).WithTimeout(5 * time.Second).Should(BeTrue())
		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{}))
		}).WithTimeout(90*time.Second).Should(BeTrue(), "a namespace with Canaries goes while Herald is stopped")
		// Meanwhile the primary keeps serving the user's Service.
		Consistently(func() error {
			return k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name + "-primary"}, &appsv1.Deployment{})
		}).WithTimeout(3 * time.Second).Should(Succeed())

		startHerald(ctx)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name + "-primary"}, &appsv1.Deployment{}))
		}).WithTimeout(60 * time.Second).Should(BeTrue())
		time.Sleep(time.Second)
		bad, total := stop()
		Expect(bad).To(BeZero(), "%d of %d samples found the Service selecting no ready pod", bad, total)
		Expect(*deploymentIn(ctx, name).Spec.Replicas).To(Equal(int32(2)))
		var back corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), &back)).To(Succeed())
		Expect(back.Spec.Selector).To(Equal(svc.Spec.Selector))
	})
})
