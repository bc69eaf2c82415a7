package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

var _ = Describe("zzdbg", func() {
	It("zzdbg", func(ctx SpecContext) {
		createNamespace(ctrlNS)
		failing := newGate(false)
		app(ctx, "rb")
		blueGreen(ctx, "rb", 3, hook("acceptance", flaggerv1.RolloutHook, failing.URL))
		initialized(ctx, "rb")
		setImage(ctx, "rb", image2)
		Eventually(phaseOf(ctx, "rb")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		time.Sleep(3 * time.Second)
		var list eventsv1.EventList
		Expect(k8s.List(ctx, &list, client.InNamespace(ctrlNS))).To(Succeed())
		for _, e := range list.Items {
			if e.Regarding.Name == "rb" && e.Regarding.Kind == "Canary" {
				GinkgoWriter.Printf("DBG %s %s/%s rv=%s series=%+v note=%q\n", e.Type, e.Reason, e.Action, e.Regarding.ResourceVersion, e.Series, e.Note)
			}
		}
	})
})
