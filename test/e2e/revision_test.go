package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-rollouts/herald/internal/contract"
)

var _ = Describe("Revisions", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	// The workload webhook (from its metadata cache of tracked configs) and the controller
	// (from the configs themselves) must name the same revision, or the idle target's replicas
	// hold fails open. These are the references where they used to disagree.
	It("are the same at admission and in the controller for untracked, opted-out, projected and CSI-referenced configs and two selector labels", func(ctx SpecContext) {
		const name = "edge"
		objs := []*corev1.Secret{
			// An image pull secret is not application config: never tracked.
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-pull", Namespace: ctrlNS}, Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-projected", Namespace: ctrlNS}, Data: map[string][]byte{"token": []byte("t")}},
			// The CSI driver's credential: not the application's config, never tracked.
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-csi", Namespace: ctrlNS}, Data: map[string][]byte{"key": []byte("k")}},
		}
		for _, s := range objs {
			Expect(k8s.Create(ctx, s)).To(Succeed())
		}
		for _, cm := range []*corev1.ConfigMap{
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-opted-out", Namespace: ctrlNS,
				Annotations: map[string]string{contract.FlaggerConfigTracking: "disabled"}}, Data: map[string]string{"a": "1"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-projected", Namespace: ctrlNS}, Data: map[string]string{"b": "2"}},
		} {
			Expect(k8s.Create(ctx, cm)).To(Succeed())
		}
		d := app(ctx, name, func(d *appsv1.Deployment) {
			// Two of the selector labels: the first of -selector-labels ("app") names the pods.
			both := map[string]string{"app": name, "app.kubernetes.io/name": name}
			d.Spec.Selector.MatchLabels, d.Spec.Template.Labels = both, both
			spec := &d.Spec.Template.Spec
			spec.Volumes = append(spec.Volumes,
				corev1.Volume{Name: "pull", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "edge-pull"}}},
				corev1.Volume{Name: "opted-out", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "edge-opted-out"}}}},
				corev1.Volume{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "edge-projected"}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "edge-projected"}}},
				}}}},
				corev1.Volume{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: "secrets-store.csi.k8s.io", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "edge-csi"}}}},
			)
			// Drop the sample's own config volume: this spec names its configs itself.
			kept := spec.Volumes[:0]
			for _, v := range spec.Volumes {
				if v.ConfigMap == nil || v.Name == "opted-out" {
					kept = append(kept, v)
				}
			}
			spec.Volumes = kept
			spec.Containers[0].VolumeMounts = nil
		})
		blueGreen(ctx, name, 1)
		initialized(ctx, name)

		c := getCanary(ctx, name)
		Expect(c.Status.TrackedConfigs).To(HaveLen(2))
		Expect(c.Status.TrackedConfigs).To(HaveKey("configmap/edge-projected"))
		Expect(c.Status.TrackedConfigs).To(HaveKey("secret/edge-projected"))
		Eventually(func(g Gomega) {
			target := deploymentIn(ctx, name)
			g.Expect(target.Annotations[contract.AnnotationRevision]).To(Equal(c.Status.LastAppliedSpec),
				"the webhook's revision (annotation) and the controller's (status) differ")
			g.Expect(*target.Spec.Replicas).To(BeZero())
		}).WithTimeout(20 * time.Second).Should(Succeed())

		By("re-applying the manifest with replicas: 2 keeps the idle target at zero")
		manifest := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: d.Labels}, Spec: d.Spec}
		manifest.Spec.Replicas = ptr.To[int32](2)
		out, err := kubectl("apply", "-f", writeManifest(manifestOf(manifest)))
		Expect(err).NotTo(HaveOccurred(), out)
		target := deploymentIn(ctx, name)
		Expect(*target.Spec.Replicas).To(BeZero())
		Expect(target.Annotations).To(HaveKeyWithValue(contract.AnnotationDesiredReplicas, "2"))
		Consistently(phaseOf(ctx, name)).WithTimeout(3*time.Second).Should(BeEquivalentTo("Initialized"), "not a new revision")
	})
})
