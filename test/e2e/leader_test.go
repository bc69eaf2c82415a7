package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/harness"
)

// leaseKey is the Lease the replicas of Herald elect their leader with (--leader-election-namespace
// names its namespace; its name is fixed in cmd/herald).
var leaseKey = types.NamespacedName{Namespace: harness.HeraldNamespace, Name: "herald-leader-election"}

// acquiredLease is what client-go's leader election logs when a replica becomes the leader
// (capitalised or not, depending on the client-go version): the line that tells the replicas
// apart, as every replica's holderIdentity is the same host name with a random suffix. Herald
// takes part in one election only, so the line needs no lock name.
const acquiredLease = "successfully acquired lease"

// replica is one Herald process of a leader-elected pair, with its own log file.
type replica struct {
	*harness.Herald
	log string
}

// startReplica starts a Herald with leader election, logging to <name>.log in the cluster's
// directory.
func startReplica(ctx context.Context, name string, extraArgs ...string) *replica {
	path := filepath.Join(env.Dir, name+".log")
	out, err := os.Create(path)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(out.Close)
	args := append([]string{"--metrics-server=" + env.PrometheusURL, "--leader-elect", "--leader-election-namespace=" + leaseKey.Namespace}, extraArgs...)
	h, err := harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, out, args...)
	Expect(err).NotTo(HaveOccurred(), "%s log:\n%s", name, readFile(path))
	r := &replica{Herald: h, log: path}
	DeferCleanup(func() {
		r.Stop()
		if CurrentSpecReport().Failed() {
			AddReportEntry(name+" log", readFile(path))
		}
	})
	return r
}

func (r *replica) leads() bool {
	return strings.Contains(strings.ToLower(readFile(r.log)), acquiredLease)
}

// kill sends SIGKILL, as a node failure or an OOM kill would: the replica releases nothing.
func (r *replica) kill() { r.Kill() }

func leaseHolder(ctx context.Context) string {
	var lease coordinationv1.Lease
	if err := k8s.Get(ctx, leaseKey, &lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// occurrences counts how often the event with this note was recorded on a Canary: each Event
// object counts as many times as the API server counted it up (a recorder folds repeats into
// one object; two processes write separate objects).
func occurrences(ctx context.Context, canary, note string) int {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ctrlNS))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Kind != "Canary" || e.Regarding.Name != canary || e.Note != note {
			continue
		}
		count := max(1, int(e.DeprecatedCount))
		if e.Series != nil {
			count = max(count, int(e.Series.Count))
		}
		n += count
	}
	return n
}

var _ = Describe("Leader election", Serial, func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("runs each step of a Canary once with two replicas, and the survivor takes over when the leader is killed", func(ctx SpecContext) {
		// The suite's Herald runs without leader election: it must not act next to the pair.
		// Registered first, the restart runs last, after both replicas have stopped.
		DeferCleanup(func(ctx SpecContext) { startHerald(ctx) }, NodeTimeout(2*time.Minute))
		herald.Stop()

		// B serves no webhooks, so it never re-registers the webhook configurations: A is the
		// webhook server throughout, and B, started first, is the leader that gets killed.
		b := startReplica(ctx, "herald-b", "--enable-webhooks=false")
		Eventually(b.leads).WithTimeout(60*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "B acquires the lease")
		holderB := leaseHolder(ctx)
		Expect(holderB).NotTo(BeEmpty())
		a := startReplica(ctx, "herald-a")
		Expect(leaseHolder(ctx)).To(Equal(holderB), "B still leads")

		const (
			scaleUp = "New revision detected! Scaling up elected." + ctrlNS
			promote = "Promotion completed! Scaling down elected." + ctrlNS
			initial = "Initialization done! elected." + ctrlNS
		)
		app(ctx, "elected")
		blueGreen(ctx, "elected", 1)
		initialized(ctx, "elected")

		// A, the standby, answers the admission requests: its webhooks read a cache that must
		// run on every replica, not on the leader alone (where it never started on A, and the
		// scale of an idle target went through).
		By("the standby's scale webhook refuses to start pods on the idle target")
		Eventually(func() string {
			out, _ := kubectl("-n", ctrlNS, "scale", "deployment/elected", "--replicas=3", "--dry-run=server")
			return out
		}).WithTimeout(10 * time.Second).WithPolling(500 * time.Millisecond).Should(ContainSubstring("scale the primary instead"))
		Expect(a.leads()).To(BeFalse(), "A answered as the standby")

		setImage(ctx, "elected", image2)
		Eventually(phaseOf(ctx, "elected")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "elected-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		// Events are written asynchronously; then nothing more may arrive.
		Eventually(func() int { return occurrences(ctx, "elected", promote) }).Should(Equal(1))
		Consistently(func() []int {
			return []int{occurrences(ctx, "elected", initial), occurrences(ctx, "elected", scaleUp), occurrences(ctx, "elected", promote)}
		}).WithTimeout(3*time.Second).Should(Equal([]int{1, 1, 1}), "each step once: %q", eventsFor(ctx, "elected"))
		Expect(a.leads()).To(BeFalse(), "A never led while B held the lease")

		// B dies without releasing the lease; the release made meanwhile waits for A.
		killed := time.Now()
		b.kill()
		setImage(ctx, "elected", image1)
		Eventually(a.leads).WithTimeout(60*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "A takes over")
		takeover := time.Since(killed)
		Expect(leaseHolder(ctx)).NotTo(Equal(holderB))
		AddReportEntry("leader takeover after SIGKILL", takeover.Round(100*time.Millisecond).String())
		fmt.Fprintf(GinkgoWriter, "A took over %s after B was killed\n", takeover.Round(100*time.Millisecond))

		Eventually(func() []int { return []int{occurrences(ctx, "elected", scaleUp), occurrences(ctx, "elected", promote)} }).
			WithTimeout(90*time.Second).Should(Equal([]int{2, 2}), "the second release runs its steps: %q", eventsFor(ctx, "elected"))
		Eventually(phaseOf(ctx, "elected")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "elected-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image1))
		Consistently(func() []int {
			return []int{occurrences(ctx, "elected", initial), occurrences(ctx, "elected", scaleUp), occurrences(ctx, "elected", promote)}
		}).WithTimeout(3*time.Second).Should(Equal([]int{1, 2, 2}), "A does not initialise again nor repeat a step: %q", eventsFor(ctx, "elected"))
	})
})
