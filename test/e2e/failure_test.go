package e2e

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
)

// The pods of a broken revision look the way a real kubelet reports them (kwok plays the
// stages behind cluster.SimulateAnnotation): the Canary fails as soon as it sees them, long
// before its progress deadline, and the primary keeps serving the old version.
var _ = Describe("The Canary controller with a broken canary", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	// breakRevision rolls out image2 with pods that simulate the given failure, and checks
	// that the Canary fails at once with the kubelet's reason.
	breakRevision := func(ctx SpecContext, name, simulate, reason string) {
		app(ctx, name)
		c := blueGreen(ctx, name, 3)
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.ProgressDeadlineSeconds = ptr.To(int32(600)) // only the pods, not the deadline, can fail it
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		initialized(ctx, name)

		start := time.Now()
		out, err := kubectl("-n", ctrlNS, "patch", "deployment/"+name, "--type=strategic", "-p", fmt.Sprintf(
			`{"spec":{"template":{"metadata":{"annotations":{%q:%q}},"spec":{"containers":[{"name":"podinfod","image":%q}]}}}}`,
			cluster.SimulateAnnotation, simulate, image2))
		Expect(err).NotTo(HaveOccurred(), out)

		Eventually(phaseOf(ctx, name)).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).
			Should(Equal(flaggerv1.CanaryPhaseFailed), "failed on the pods' state, far below the 600 s deadline")
		GinkgoWriter.Printf("%s: Failed %s after the broken revision was applied\n", name, time.Since(start).Round(100*time.Millisecond))

		c = getCanary(ctx, name)
		Expect(c.Status.Conditions).To(ContainElement(And(HaveField("Type", flaggerv1.PromotedType), HaveField("Status", corev1.ConditionFalse))))
		Expect(*deploymentIn(ctx, name).Spec.Replicas).To(BeZero(), "the canary is scaled to zero")
		primary := deploymentIn(ctx, name+"-primary")
		Expect(primary.Spec.Template.Spec.Containers[0].Image).To(Equal(image1), "the primary keeps the old version")
		Expect(primary.Spec.Template.Annotations).NotTo(HaveKey(cluster.SimulateAnnotation))
		Expect(primary.Status.ReadyReplicas).To(Equal(int32(2)), "the primary still serves")
		// Events are written asynchronously by the event broadcaster. Both Warnings of the
		// rollback are there, each with its own message (none folded into the other's series).
		Eventually(func() string { return strings.Join(eventsFor(ctx, name), "\n") }).WithTimeout(5 * time.Second).Should(And(
			ContainSubstring(fmt.Sprintf("Canary %s.%s failed: pod %s-", name, ctrlNS, name)),
			ContainSubstring(reason),
			ContainSubstring("Canary failed! Scaling down "+name+"."+ctrlNS)))
	}

	It("fails at once when the canary's pods cannot pull their image", func(ctx SpecContext) {
		breakRevision(ctx, "broken", cluster.SimulateImagePullError, fmt.Sprintf(`ImagePullBackOff: Back-off pulling image %q`, image2))
	})

	It("fails at once when the canary's pods crash-loop", func(ctx SpecContext) {
		breakRevision(ctx, "crashing", cluster.SimulateCrashLoop, "container podinfod: CrashLoopBackOff: back-off 40s restarting failed container=podinfod")
	})
})
