package e2e

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// shardKey is the label the sharding spec splits Canaries by, as the README shows.
const shardKey = "sharding.herald.dev/key"

// shardLeases returns the holders of the shards' Leases (name → holder) in Herald's namespace.
func shardLeases(ctx context.Context) map[string]string {
	var list coordinationv1.LeaseList
	Expect(k8s.List(ctx, &list, client.InNamespace(leaseKey.Namespace))).To(Succeed())
	out := map[string]string{}
	for _, l := range list.Items {
		if strings.HasPrefix(l.Name, leaseKey.Name+"-") && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			out[l.Name] = *l.Spec.HolderIdentity
		}
	}
	return out
}

// labelCanary puts a Canary in a shard.
func labelCanary(ctx context.Context, name, shard string) {
	var c flaggerv1.Canary
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &c)).To(Succeed())
	patch := client.MergeFrom(c.DeepCopy())
	c.Labels = map[string]string{shardKey: shard}
	Expect(k8s.Patch(ctx, &c, patch)).To(Succeed())
}

var _ = Describe("Sharding", Serial, func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("runs each Canary on the shard its label names, with a leader per shard", func(ctx SpecContext) {
		// The suite's Herald takes every Canary: it must not run next to the shards.
		DeferCleanup(func(ctx SpecContext) { startHerald(ctx) }, NodeTimeout(2*time.Minute))
		herald.Stop()

		// North serves the webhooks for every object; south only reconciles.
		north := startReplica(ctx, "herald-north", "--watch-label-selector="+shardKey+"=north")
		south := startReplica(ctx, "herald-south", "--enable-webhooks=false", "--watch-label-selector="+shardKey+"=south")
		Eventually(north.leads).WithTimeout(60*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "north leads its shard")
		Eventually(south.leads).WithTimeout(60*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "south leads its shard at the same time")
		leases := shardLeases(ctx)
		Expect(leases).To(HaveLen(2), "a Lease per shard: %v", leases)
		holders := map[string]bool{}
		for _, h := range leases {
			holders[h] = true
		}
		Expect(holders).To(HaveLen(2), "each shard's Lease held by its own process: %v", leases)

		for _, name := range []string{"north", "south"} {
			app(ctx, name)
			blueGreen(ctx, name, 1)
			labelCanary(ctx, name, name)
		}
		initialized(ctx, "north")
		initialized(ctx, "south")
		// A pass announces what it did once its status write is back, a moment after the
		// phase can be read.
		Eventually(func() string { return readFile(north.log) }).WithTimeout(5 * time.Second).Should(ContainSubstring("Initialization done! north."))
		Eventually(func() string { return readFile(south.log) }).WithTimeout(5 * time.Second).Should(ContainSubstring("Initialization done! south."))
		Expect(readFile(north.log)).NotTo(ContainSubstring(`"canary":"south"`), "north never touches south's Canary")
		Expect(readFile(south.log)).NotTo(ContainSubstring(`"canary":"north"`), "south never touches north's Canary")

		// With south stopped, north's release goes through and south's waits for its shard.
		south.Stop()
		setImage(ctx, "north", image2)
		setImage(ctx, "south", image2)
		Eventually(phaseOf(ctx, "north")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Consistently(phaseOf(ctx, "south")).WithTimeout(3*time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized), "no other shard takes south's release")
		Expect(occurrences(ctx, "south", "New revision detected! Scaling up south."+ctrlNS)).To(BeZero())

		// Another replica of south's shard picks the release up.
		startReplica(ctx, "herald-south-2", "--enable-webhooks=false", "--watch-label-selector="+shardKey+"=south")
		Eventually(phaseOf(ctx, "south")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "south-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Expect(occurrences(ctx, "north", "New revision detected! Scaling up north."+ctrlNS)).To(Equal(1), "north's release ran once: %q", eventsFor(ctx, "north"))
	})
})
