package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

var _ = Describe("The Canary controller's gates and hooks", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("holds in WaitingPromotion until the confirm-promotion gate opens", func(ctx SpecContext) {
		gate := newGate(false)
		app(ctx, "held")
		blueGreen(ctx, "held", 1, hook("approve-promotion", flaggerv1.ConfirmPromotionHook, gate.URL))
		initialized(ctx, "held")
		setImage(ctx, "held", image2)
		Eventually(phaseOf(ctx, "held")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaitingPromotion))
		Expect(deploymentIn(ctx, "held-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image1), "not promoted while the gate is closed")
		gate.open.Store(true)
		Eventually(phaseOf(ctx, "held")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "held-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
	})

	It("rolls back at once when a rollback hook answers yes, and posts every event to event hooks", func(ctx SpecContext) {
		rollback := newGate(false)
		events := newGate(true)
		app(ctx, "abort")
		blueGreen(ctx, "abort", 5,
			hook("manual-rollback", flaggerv1.RollbackHook, rollback.URL),
			hook("chat", flaggerv1.EventHook, events.URL))
		initialized(ctx, "abort")
		setImage(ctx, "abort", image2)
		Eventually(func() int { return getCanary(ctx, "abort").Status.Iterations }).WithTimeout(30 * time.Second).Should(Equal(1))
		rollback.open.Store(true)
		Eventually(phaseOf(ctx, "abort")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		Expect(getCanary(ctx, "abort").Status.Iterations).To(BeNumerically("<", 5), "stopped before the analysis ran out")
		Expect(deploymentIn(ctx, "abort-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image1))

		// Event hooks are posted in the background.
		Eventually(func(g Gomega) {
			events.mu.Lock()
			defer events.mu.Unlock()
			var messages []any
			for _, p := range events.payloads {
				md, _ := p["metadata"].(map[string]any)
				messages = append(messages, md["eventMessage"])
				g.Expect(md).To(HaveKey("eventType"))
				g.Expect(md).To(HaveKey("timestamp"))
			}
			g.Expect(messages).To(ContainElements("New revision detected! Scaling up abort."+ctrlNS, "Canary failed! Scaling down abort."+ctrlNS))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})

	It("does nothing while suspended and resumes when unsuspended", func(ctx SpecContext) {
		app(ctx, "paused")
		blueGreen(ctx, "paused", 1)
		initialized(ctx, "paused")
		c := getCanary(ctx, "paused")
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Suspend = true
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())

		setImage(ctx, "paused", image2)
		Consistently(phaseOf(ctx, "paused")).WithTimeout(4 * time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized))
		c = getCanary(ctx, "paused")
		patch = client.MergeFrom(c.DeepCopy())
		c.Spec.Suspend = false
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		Eventually(phaseOf(ctx, "paused")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
	})

	It("sizes the primary from replicas asked of the idle target, without starting pods on it", func(ctx SpecContext) {
		d := app(ctx, "sized")
		blueGreen(ctx, "sized", 1)
		initialized(ctx, "sized")
		// A GitOps re-apply of the same template with replicas: 3.
		d = d.DeepCopy()
		d.ResourceVersion, d.ManagedFields = "", nil
		d.Spec.Replicas = ptr.To(int32(3))
		out, err := kubectl("apply", "-f", writeManifest(manifestOf(d)))
		Expect(err).NotTo(HaveOccurred(), out)
		target := deploymentIn(ctx, "sized")
		Expect(*target.Spec.Replicas).To(BeZero())
		Expect(target.Annotations).To(HaveKeyWithValue(contract.AnnotationDesiredReplicas, "3"))
		Eventually(func() int32 { return *deploymentIn(ctx, "sized-primary").Spec.Replicas }).WithTimeout(10 * time.Second).Should(Equal(int32(3)))
		Eventually(func(g Gomega) {
			var p appsv1.Deployment
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ctrlNS, Name: "sized-primary"}, &p)).To(Succeed())
			g.Expect(p.Status.ReadyReplicas).To(Equal(int32(3)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Consistently(phaseOf(ctx, "sized")).WithTimeout(3*time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized), "replicas are not a new revision")
	})
})

var _ = Describe("The Canary controller and manual rollbacks", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("leaves Waiting when the target goes back to the promoted revision, and takes the other one as new again", func(ctx SpecContext) {
		gate := newGate(false)
		app(ctx, "undo")
		blueGreen(ctx, "undo", 1, hook("approval", flaggerv1.ConfirmRolloutHook, gate.URL))
		initialized(ctx, "undo")
		setImage(ctx, "undo", image2)
		Eventually(phaseOf(ctx, "undo")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))

		setImage(ctx, "undo", image1) // the promoted version
		Eventually(phaseOf(ctx, "undo")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(*deploymentIn(ctx, "undo").Spec.Replicas).To(BeZero())

		gate.open.Store(true)
		setImage(ctx, "undo", image2)
		Eventually(phaseOf(ctx, "undo")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseProgressing))
		Eventually(phaseOf(ctx, "undo")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "undo-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
	})
})
