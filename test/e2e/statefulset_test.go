package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// volumes creates n PersistentVolumes of storage class "manual" for the claims of a
// StatefulSet: the local control plane has no provisioner, so claims bind to these statically.
func volumes(ctx context.Context, prefix string, n int) {
	for i := range n {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              "manual",
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + prefix}},
			},
		}
		Expect(k8s.Create(ctx, pv)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8s.Delete(ctx, pv) })
	}
}

// database creates a StatefulSet named name (2 replicas, a volume claim per pod, a tracked
// ConfigMap) and its governing headless Service <name>-headless.
func database(ctx context.Context, name string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-headless", Namespace: ctrlNS},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 9898}}},
	}
	Expect(k8s.Create(ctx, svc)).To(Succeed())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-config", Namespace: ctrlNS}, Data: map[string]string{"mode": "a"}}
	Expect(k8s.Create(ctx, cm)).To(Succeed())
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](2),
			ServiceName:         name + "-headless",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "podinfod", Image: image1,
						EnvFrom:      []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}}},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					StorageClassName: ptr.To("manual"),
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	Expect(k8s.Create(ctx, sts)).To(Succeed())
	return sts
}

func statefulSetIn(ctx context.Context, name string) *appsv1.StatefulSet {
	var s appsv1.StatefulSet
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &s)).To(Succeed())
	return &s
}

var _ = Describe("StatefulSet targets", Label("statefulset"), func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("get a primary with its own claims and governing Service, release blue/green, refuse kubectl scale while idle and are restored on deletion", func(ctx SpecContext) {
		// Two pods of the primary, and two of the target while a release runs.
		volumes(ctx, "db-pv", 4)
		database(ctx, "db")
		c := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ctrlNS},
			Spec: flaggerv1.CanarySpec{
				Provider:         "kubernetes",
				RevertOnDeletion: true,
				TargetRef:        flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
				Service:          flaggerv1.CanaryService{Port: 9898},
				Analysis:         &flaggerv1.CanaryAnalysis{Interval: "5s", Threshold: 2, Iterations: 1},
			},
		}
		Expect(k8s.Create(ctx, c)).To(Succeed())
		initialized(ctx, "db")

		By("initialisation: the primary, its headless Service, its own claims, the target idle")
		primary := statefulSetIn(ctx, "db-primary")
		Expect(primary.Spec.ServiceName).To(Equal("db-headless-primary"))
		Expect(primary.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "db-primary"}))
		Expect(primary.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name).To(Equal("db-config-primary"))
		var governing corev1.Service
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "db-headless-primary"}, &governing)).To(Succeed())
		Expect(governing.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(governing.Spec.Selector).To(Equal(map[string]string{"app": "db-primary"}))
		for _, claim := range []string{"data-db-primary-0", "data-db-primary-1"} {
			var pvc corev1.PersistentVolumeClaim
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: claim}, &pvc)).To(Succeed(), claim)
		}
		Eventually(func(g Gomega) {
			target := statefulSetIn(ctx, "db")
			g.Expect(*target.Spec.Replicas).To(BeZero())
			g.Expect(target.Annotations).To(HaveKey(contract.AnnotationIdle))
			g.Expect(target.Annotations[contract.AnnotationRevision]).To(Equal(getCanary(ctx, "db").Status.LastAppliedSpec),
				"the webhook and the controller name the same revision")
		}).WithTimeout(20 * time.Second).Should(Succeed())

		By("kubectl scale of the idle target is refused, naming the primary")
		out, err := kubectl("-n", ctrlNS, "scale", "statefulset/db", "--replicas=3")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("kubectl scale statefulset/db-primary --replicas 3"))

		By("a new image is released and promoted to the primary")
		out, err = kubectl("-n", ctrlNS, "set", "image", "statefulset/db", "podinfod="+image2)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(phaseOf(ctx, "db")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseProgressing))
		Eventually(phaseOf(ctx, "db")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(statefulSetIn(ctx, "db-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Eventually(func(g Gomega) {
			p := statefulSetIn(ctx, "db-primary")
			g.Expect(p.Status.UpdatedReplicas).To(Equal(int32(2)))
			g.Expect(*statefulSetIn(ctx, "db").Spec.Replicas).To(BeZero())
		}).WithTimeout(30 * time.Second).Should(Succeed())

		By("a change of the tracked ConfigMap alone is a release too")
		var cm corev1.ConfigMap
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "db-config"}, &cm)).To(Succeed())
		cm.Data["mode"] = "b"
		Expect(k8s.Update(ctx, &cm)).To(Succeed())
		Eventually(phaseOf(ctx, "db")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseProgressing))
		Eventually(phaseOf(ctx, "db")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		var primaryCM corev1.ConfigMap
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "db-config-primary"}, &primaryCM)).To(Succeed())
		Expect(primaryCM.Data).To(HaveKeyWithValue("mode", "b"))

		By("deleting the Canary gives the target its replicas back and takes Herald's marks off")
		Expect(k8s.Delete(ctx, getCanary(ctx, "db"))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), &flaggerv1.Canary{}))
		}).WithTimeout(60 * time.Second).Should(BeTrue())
		// The Canary goes at once; the releaser gives the target back, then the primary goes.
		Eventually(func(g Gomega) {
			target := statefulSetIn(ctx, "db")
			g.Expect(*target.Spec.Replicas).To(Equal(int32(2)))
			g.Expect(target.Labels).NotTo(HaveKey(contract.LabelCanary))
			g.Expect(target.Annotations).NotTo(HaveKey(contract.AnnotationIdle))
			g.Expect(target.Status.ReadyReplicas).To(Equal(int32(2)))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "db-primary"}, &appsv1.StatefulSet{}))
		}).WithTimeout(60 * time.Second).Should(BeTrue())
	})

	It("release weighted on Istio: the VirtualService steps the weights and a good version is promoted", func(ctx SpecContext) {
		volumes(ctx, "web-pv", 4)
		database(ctx, "web")
		c := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ctrlNS},
			Spec: flaggerv1.CanarySpec{
				Provider:  "istio",
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web"},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis: &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, StepWeight: 25, MaxWeight: 50,
					Metrics: []flaggerv1.CanaryMetric{{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}}}},
			},
		}
		Expect(k8s.Create(ctx, c)).To(Succeed())
		initialized(ctx, "web")
		rec := recordWeights(ctx, "web")
		sts := statefulSetIn(ctx, "web")
		patch := client.MergeFrom(sts.DeepCopy())
		sts.Spec.Template.Spec.Containers[0].Image = image2
		Expect(k8s.Patch(ctx, sts, patch)).To(Succeed())
		Eventually(phaseOf(ctx, "web")).WithTimeout(120 * time.Second).WithPolling(500 * time.Millisecond).
			Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(rec.seen).WithTimeout(5 * time.Second).Should(Equal([]int32{0, 25, 50, 0}))
		Expect(statefulSetIn(ctx, "web-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Expect(*statefulSetIn(ctx, "web").Spec.Replicas).To(BeZero())
	})
})
