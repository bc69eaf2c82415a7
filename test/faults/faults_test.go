package faults

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

func metaName(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func texts(vs []violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

// explain lists violations with the timeline around each.
func explain(vs []violation) string {
	var b strings.Builder
	for i, v := range vs {
		fmt.Fprintf(&b, "%s\n", v)
		if i < 5 {
			fmt.Fprintf(&b, "  timeline around it:\n    %s\n", strings.ReplaceAll(log.between(v.at.Add(-15*time.Second), v.at.Add(5*time.Second)), "\n", "\n    "))
		}
	}
	return b.String()
}

var _ = Describe("Herald under faults", Label("faults"), Ordered, ContinueOnFailure, func() {
	It("keeps every invariant through a seeded stream of releases while faults are injected", func(ctx SpecContext) {
		canaries := streamCanaries()
		p := newPlan(seed, *roundsFlag, canaries)
		log.add("plan: %s", strings.ReplaceAll(p.String(), "\n", "\n         "))
		AddReportEntry("plan", p.String())
		s := newStream(p, canaries)
		Expect(s.setUp(ctx)).To(Succeed())
		s.run(ctx)
		// Event hooks are posted in the background: let the last ones arrive.
		time.Sleep(3 * time.Second)
		calls := hooks.recorded()
		for _, v := range append(checkSteps(calls), s.checkHalted(calls, 3*time.Second)...) {
			watch.violate(v)
		}
		fig := figures(s) + "\n" + eventsRecorded(ctx, streamNS, calls) + "\n"
		vs := watch.violationsIn(streamNS)
		var all []string
		for _, v := range watch.violationsIn("") {
			all = append(all, v.String())
		}
		path := keepResults("figures.md", fig+"\nviolations:\n"+strings.Join(all, "\n")+"\n")
		keepResults("timeline.log", log.String())
		fmt.Fprintf(GinkgoWriter, "%s\n(kept in %s)\n", fig, path)
		AddReportEntry("figures", fig)
		Expect(texts(vs)).To(BeEmpty(), "invariants broken with seed %d:\n%s", seed, explain(vs))
	}, NodeTimeout(25*time.Minute))

	It("restores the user's objects, serving, when Canaries are deleted while Herald runs", func(ctx SpecContext) {
		const ns = "del-running"
		cases := append(deletionCases(),
			deletionCase{name: "cfg-a", provider: flaggerv1.ProviderKubernetes, sharedConfig: true, revert: true},
			deletionCase{name: "cfg-b", provider: flaggerv1.ProviderKubernetes, sharedConfig: true, revert: true})
		before, err := setUpDeletion(ctx, ns, cases)
		Expect(err).NotTo(HaveOccurred())

		By("deleting one of two Canaries whose targets share a ConfigMap: the other's primary keeps its copy")
		copyName := contract.PrimaryName(sharedConfigName)
		var cm corev1.ConfigMap
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: copyName}, &cm)).To(Succeed(), "the primaries' copy of the shared ConfigMap")
		Expect(deleteCanary(ctx, ns, "cfg-a")).To(Succeed())
		Consistently(func() error {
			var d appsv1.Deployment
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: contract.PrimaryName("cfg-b")}, &d); err != nil {
				return err
			}
			from := d.Spec.Template.Spec.Containers[0].EnvFrom
			if len(from) != 1 || from[0].ConfigMapRef == nil || from[0].ConfigMapRef.Name != copyName {
				return fmt.Errorf("cfg-b-primary reads %v, want %s", from, copyName)
			}
			var c corev1.ConfigMap
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: copyName}, &c); err != nil {
				return fmt.Errorf("the copy cfg-b-primary mounts: %w", err)
			}
			if c.DeletionTimestamp != nil {
				return fmt.Errorf("the copy cfg-b-primary mounts is being deleted")
			}
			return nil
		}).WithTimeout(20 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())

		By("deleting the others, with and without revertOnDeletion")
		var names []string
		for _, c := range cases {
			if c.name != "cfg-a" {
				names = append(names, c.name)
				Expect(deleteCanary(ctx, ns, c.name)).To(Succeed())
			}
		}
		log.add("%s: deleted Canaries %v with Herald running", ns, names)
		problems := expectRestored(ctx, ns, cases, before, 60*time.Second)
		// The sampler saw every apex throughout; give it a last look at the restored state.
		time.Sleep(2 * time.Second)
		vs := watch.violationsIn(ns)
		Expect(problems).To(BeEmpty())
		Expect(texts(vs)).To(BeEmpty(), "%s", explain(vs))
	}, NodeTimeout(5*time.Minute))

	It("lets Canaries and a namespace with Canaries go while Herald is stopped, and restores the user's objects, serving, once it starts", func(ctx SpecContext) {
		const ns, gone = "del-stopped", "ns-gone"
		cases := deletionCases()
		before, err := setUpDeletion(ctx, ns, cases)
		Expect(err).NotTo(HaveOccurred())
		_, err = setUpDeletion(ctx, gone, cases[1:3])
		Expect(err).NotTo(HaveOccurred())

		heralds.pause()
		resumed := false
		DeferCleanup(func(ctx SpecContext) {
			if !resumed {
				Expect(heralds.resume(ctx)).To(Succeed())
			}
		}, NodeTimeout(3*time.Minute))
		for _, c := range cases {
			Expect(deleteCanary(ctx, ns, c.name)).To(Succeed())
		}
		watch.forgetNamespace(gone) // its apexes go with it, on purpose
		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gone}})).To(Succeed())
		deleted := time.Now()
		log.add("deleted the Canaries of %s and the namespace %s with Herald stopped", ns, gone)

		// With Herald down a Canary, and a namespace with Canaries, must still go: nothing may
		// wait for Herald.
		canariesGone := retry(ctx, 20*time.Second, func() error {
			var list flaggerv1.CanaryList
			if err := k8s.List(ctx, &list, clientInNamespace(ns)); err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("%d Canaries still there with Herald stopped, e.g. %s with finalizers %v", len(list.Items), list.Items[0].Name, list.Items[0].Finalizers)
			}
			return nil
		})
		if canariesGone != nil {
			watch.violate(violation{at: time.Now(), kind: violationBlocked, subject: ns + "/canaries", detail: canariesGone.Error()})
		} else {
			log.add("%s: the Canaries went %s after their deletion, Herald stopped", ns, time.Since(deleted).Round(100*time.Millisecond))
		}
		namespaceDeleted := namespaceGone(ctx, gone, 90*time.Second)
		if namespaceDeleted != nil {
			watch.violate(violation{at: time.Now(), kind: violationBlocked, subject: gone + "/namespace", detail: namespaceDeleted.Error()})
		} else {
			log.add("namespace %s deleted %s after the request, Herald stopped", gone, time.Since(deleted).Round(100*time.Millisecond))
		}
		if wait := 5*time.Second - time.Since(deleted); wait > 0 {
			time.Sleep(wait) // garbage collection runs meanwhile
		}

		Expect(heralds.resume(ctx)).To(Succeed())
		resumed = true
		started := time.Now()
		problems := expectRestored(ctx, ns, cases, before, 60*time.Second)
		if len(problems) == 0 {
			log.add("%s: restored %s after Herald started again", ns, time.Since(started).Round(100*time.Millisecond))
		}
		time.Sleep(2 * time.Second)
		vs := watch.violationsIn(ns)
		Expect(canariesGone).NotTo(HaveOccurred())
		Expect(namespaceDeleted).NotTo(HaveOccurred())
		Expect(problems).To(BeEmpty())
		Expect(texts(vs)).To(BeEmpty(), "%s", explain(vs))
	}, NodeTimeout(8*time.Minute))
})
