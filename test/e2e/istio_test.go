package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/traffic"
)

// istioCanary is a Canary on the istio provider with the builtin metrics of the seeds.
func istioCanary(ctx context.Context, name string, analysis flaggerv1.CanaryAnalysis) *flaggerv1.Canary {
	analysis.Interval = "10s"
	if analysis.Threshold == 0 {
		analysis.Threshold = 2
	}
	if analysis.Metrics == nil {
		analysis.Metrics = []flaggerv1.CanaryMetric{
			{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
			{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
		}
	}
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS},
		Spec: flaggerv1.CanarySpec{
			Provider:  "istio",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898, Gateways: []string{"public-gateway.istio-system.svc.cluster.local"}, Hosts: []string{name + ".example.com"}},
			Analysis:  &analysis,
		},
	}
	Expect(k8s.Create(ctx, c)).To(Succeed())
	return c
}

// behave gives the target a new revision that the simulator serves with this error rate and
// latency.
func behave(ctx context.Context, name string, errorRate float64, latency string) {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:"%g",%q:%q}}}}}`, traffic.ErrorRateAnnotation, errorRate, traffic.LatencyAnnotation, latency)
	Expect(k8s.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS}}, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

func virtualService(ctx context.Context, name string) *istionetworking.VirtualService {
	var vs istionetworking.VirtualService
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &vs)).To(Succeed())
	return &vs
}

// split is the weighted route of a VirtualService: primary and canary weights, and the mirror.
type split struct {
	Primary, Canary int32
	Mirror          string
	MirrorPercent   float64
}

func splitOf(vs *istionetworking.VirtualService, name string) split {
	var s split
	for _, r := range vs.Spec.GetHttp() {
		isWeighted := false
		for _, d := range r.GetRoute() {
			switch d.GetDestination().GetHost() {
			case name + "-primary":
				s.Primary = d.GetWeight()
			case name + "-canary":
				s.Canary, isWeighted = d.GetWeight(), true
			}
		}
		if isWeighted {
			s.Mirror = r.GetMirror().GetHost()
			s.MirrorPercent = r.GetMirrorPercentage().GetValue()
			return s
		}
	}
	return s
}

// weightRecorder polls a VirtualService and keeps every distinct canary weight in order.
type weightRecorder struct {
	mu      sync.Mutex
	weights []int32
	mirrors int
}

func recordWeights(ctx context.Context, name string) *weightRecorder {
	w := &weightRecorder{}
	ctx, cancel := context.WithCancel(ctx)
	DeferCleanup(cancel)
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			var vs istionetworking.VirtualService
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &vs); err == nil {
				s := splitOf(&vs, name)
				w.mu.Lock()
				if n := len(w.weights); n == 0 || w.weights[n-1] != s.Canary {
					w.weights = append(w.weights, s.Canary)
				}
				if s.Mirror != "" {
					w.mirrors++
				}
				w.mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return w
}

func (w *weightRecorder) seen() []int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.weights)
}

func canaryEvent(ctx context.Context, name, substring string) func() bool {
	return func() bool {
		return slices.ContainsFunc(eventsFor(ctx, name), func(n string) bool { return strings.Contains(n, substring) })
	}
}

var _ = Describe("Istio canaries judged by Prometheus", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("promotes a good version step by step, moving the VirtualService weights as configured", func(ctx SpecContext) {
		app(ctx, "weighted")
		tmpl := &flaggerv1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Name: "error-rate", Namespace: ctrlNS},
			Spec: flaggerv1.MetricTemplateSpec{
				Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: env.PrometheusURL},
				Query: `100 - sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",response_code!~"5.*"}[{{ interval }}]))
  / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}])) * 100`,
			},
		}
		Expect(k8s.Create(ctx, tmpl)).To(Succeed())
		metrics := []flaggerv1.CanaryMetric{
			{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
			{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
			{Name: "error-rate", Interval: "30s", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate"}, ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(1.0)}},
		}
		istioCanary(ctx, "weighted", flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 30, Metrics: metrics})
		initialized(ctx, "weighted")

		vs := virtualService(ctx, "weighted")
		Expect(vs.Spec.GetHosts()).To(ConsistOf("weighted.example.com", "weighted"))
		Expect(vs.Spec.GetGateways()).To(ConsistOf("public-gateway.istio-system.svc.cluster.local"))
		Expect(splitOf(vs, "weighted")).To(Equal(split{Primary: 100, Canary: 0}))
		Expect(metav1.IsControlledBy(vs, getCanary(ctx, "weighted"))).To(BeTrue())
		for _, dr := range []string{"weighted-primary", "weighted-canary"} {
			var rule istionetworking.DestinationRule
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: dr}, &rule)).To(Succeed())
			Expect(rule.Spec.GetHost()).To(Equal(dr))
		}

		rec := recordWeights(ctx, "weighted")
		routeWakeups := wakeups("route")
		behave(ctx, "weighted", 0, "20ms")
		Eventually(phaseOf(ctx, "weighted")).WithTimeout(120 * time.Second).WithPolling(500 * time.Millisecond).
			Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(rec.seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 10, 20, 30, 0}), "the canary weight steps 10, 20, 30, then back to the primary")
		Expect(splitOf(virtualService(ctx, "weighted"), "weighted")).To(Equal(split{Primary: 100, Canary: 0}))
		Expect(deploymentIn(ctx, "weighted").Spec.Replicas).To(HaveValue(BeEquivalentTo(0)))
		Expect(deploymentIn(ctx, "weighted-primary").Spec.Template.Annotations).To(HaveKeyWithValue(traffic.ErrorRateAnnotation, "0"))
		notes := eventsFor(ctx, "weighted")
		for _, w := range []int{10, 20, 30} {
			Expect(notes).To(ContainElement(fmt.Sprintf("Advance weighted.%s canary weight %d", ctrlNS, w)))
		}
		Expect(scrape(herald.MetricsURL)).To(MatchRegexp(`flagger_canary_metric_analysis\{metric="error-rate",name="weighted",namespace="ctrl"\} 0`))
		// Herald's own route writes (10, 20, 30, then back to 0) woke no Canary: the pass that
		// wrote each went on, even when the event came before the write's answer (under load it
		// did, twice in four, before updates in flight were marked). One is tolerated: an event
		// that comes after a later own write of the same route was answered is not recognised.
		routeWakeups = wakeups("route") - routeWakeups
		fmt.Fprintf(GinkgoWriter, "route wakeups during the run: %v\n", routeWakeups)
		Expect(routeWakeups).To(BeNumerically("<=", 1), "the events of Herald's own route writes woke the Canary")
		routeWakeups = wakeups("route")

		By("a direct edit of the VirtualService is put back")
		vs = virtualService(ctx, "weighted")
		vs.Spec.Gateways = []string{"mesh"}
		for _, r := range vs.Spec.Http {
			for _, d := range r.Route {
				d.Weight = 50
			}
		}
		Expect(k8s.Update(ctx, vs)).To(Succeed())
		Eventually(func() split { return splitOf(virtualService(ctx, "weighted"), "weighted") }).WithTimeout(10 * time.Second).
			Should(Equal(split{Primary: 100, Canary: 0}))
		Expect(wakeups("route")).To(BeNumerically(">", routeWakeups), "someone else's edit of the route came through its watch")
		Eventually(func() []string { return virtualService(ctx, "weighted").Spec.GetGateways() }).WithTimeout(10 * time.Second).
			Should(ConsistOf("public-gateway.istio-system.svc.cluster.local"))
	})

	It("rolls a bad version back after the threshold: VirtualService at 100/0, canary scaled to zero", func(ctx SpecContext) {
		app(ctx, "faulty")
		istioCanary(ctx, "faulty", flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50, Threshold: 2})
		initialized(ctx, "faulty")
		rec := recordWeights(ctx, "faulty")
		behave(ctx, "faulty", 0.5, "20ms")
		Eventually(phaseOf(ctx, "faulty")).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).
			Should(Equal(flaggerv1.CanaryPhaseFailed))
		Eventually(rec.seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 10, 0}), "the canary got 10%, then nothing")
		Expect(splitOf(virtualService(ctx, "faulty"), "faulty")).To(Equal(split{Primary: 100, Canary: 0}))
		Eventually(func() *int32 { return deploymentIn(ctx, "faulty").Spec.Replicas }).Should(HaveValue(BeEquivalentTo(0)))
		Expect(deploymentIn(ctx, "faulty-primary").Spec.Template.Annotations).NotTo(HaveKey(traffic.ErrorRateAnnotation))
		notes := eventsFor(ctx, "faulty")
		// Half its answers fail: the measured rate is near 50 %, on either side of it.
		Expect(notes).To(ContainElement(MatchRegexp(`success rate [45]\d(\.\d+)?% < 99%`)))
		Expect(notes).To(ContainElement(ContainSubstring("failed checks threshold reached 2")))
		c := getCanary(ctx, "faulty")
		Expect(c.Status.CanaryWeight).To(Equal(0))
		Expect(c.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("success rate"))))
	})

	It("routes only matching requests to the canary during an A/B test", func(ctx SpecContext) {
		app(ctx, "abtest")
		istioCanary(ctx, "abtest", flaggerv1.CanaryAnalysis{
			Iterations: 2,
			Match:      []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}}},
		})
		initialized(ctx, "abtest")
		behave(ctx, "abtest", 0, "20ms")
		Eventually(func() bool {
			return len(virtualService(ctx, "abtest").Spec.GetHttp()) == 2 && splitOf(virtualService(ctx, "abtest"), "abtest").Canary == 100
		}).WithTimeout(30*time.Second).Should(BeTrue(), "a matched route to the canary ahead of the default route")
		Eventually(func() int64 { return sim.ServedClass(ctrlNS, "abtest", "insider", "abtest") }).WithTimeout(15 * time.Second).Should(BeNumerically(">", 20))
		Eventually(phaseOf(ctx, "abtest")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(sim.ServedClass(ctrlNS, "abtest", "plain", "abtest")).To(BeZero(), "requests without the header never reached the canary")
		Expect(sim.ServedClass(ctrlNS, "abtest", "plain", "abtest-primary")).To(BeNumerically(">", 100))
		vs := virtualService(ctx, "abtest")
		Expect(len(vs.Spec.GetHttp())).To(Equal(2), "the matched route stays, sending everyone to the primary")
		Expect(splitOf(vs, "abtest")).To(Equal(split{Primary: 100, Canary: 0}))
	})

	It("mirrors traffic to the canary during a blue/green run", func(ctx SpecContext) {
		app(ctx, "mirrored")
		istioCanary(ctx, "mirrored", flaggerv1.CanaryAnalysis{Iterations: 2, Mirror: true, MirrorWeight: 50})
		initialized(ctx, "mirrored")
		primaryBefore, _ := sim.Served(ctrlNS, "mirrored-primary")
		behave(ctx, "mirrored", 0, "20ms")
		Eventually(func() split { return splitOf(virtualService(ctx, "mirrored"), "mirrored") }).WithTimeout(30 * time.Second).
			Should(Equal(split{Primary: 100, Canary: 0, Mirror: "mirrored-canary", MirrorPercent: 50}))
		// While the split is 100/0 the canary's requests can only be mirrored copies: none
		// is routed to it.
		routedToCanary := func() int64 {
			return sim.ServedClass(ctrlNS, "mirrored", "plain", "mirrored") + sim.ServedClass(ctrlNS, "mirrored", "insider", "mirrored")
		}
		Eventually(func() int64 { n, _ := sim.Served(ctrlNS, "mirrored"); return n }).WithTimeout(15 * time.Second).Should(BeNumerically(">", 20))
		Expect(splitOf(virtualService(ctx, "mirrored"), "mirrored").Canary).To(BeZero(), "still mirroring")
		Expect(routedToCanary()).To(BeZero(), "the canary has seen only mirrored copies")
		Eventually(phaseOf(ctx, "mirrored")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(canaryEvent(ctx, "mirrored", "Routing all traffic to canary")()).To(BeTrue())
		primaryAfter, _ := sim.Served(ctrlNS, "mirrored-primary")
		Expect(primaryAfter).To(BeNumerically(">", primaryBefore), "the primary kept serving while the canary saw copies")
		Expect(splitOf(virtualService(ctx, "mirrored"), "mirrored")).To(Equal(split{Primary: 100, Canary: 0}))
	})

	It("fails a check whose query returns no values, with that reason", func(ctx SpecContext) {
		app(ctx, "silent")
		Expect(k8s.Create(ctx, &flaggerv1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Name: "absent", Namespace: ctrlNS},
			Spec: flaggerv1.MetricTemplateSpec{
				Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: env.PrometheusURL},
				Query:    `sum(rate(no_such_metric_total{namespace="{{ namespace }}",workload="{{ target }}"}[{{ interval }}]))`,
			},
		})).To(Succeed())
		istioCanary(ctx, "silent", flaggerv1.CanaryAnalysis{StepWeight: 20, MaxWeight: 40, Threshold: 1, Metrics: []flaggerv1.CanaryMetric{
			{Name: "absent", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "absent"}, ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(1.0)}},
		}})
		initialized(ctx, "silent")
		behave(ctx, "silent", 0, "20ms")
		Eventually(phaseOf(ctx, "silent")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		// Events reach the API server through the recorder's broadcaster, a moment after the status.
		Eventually(func() []string { return eventsFor(ctx, "silent") }).WithTimeout(10 * time.Second).Should(ContainElement(ContainSubstring("no values")))
		Expect(getCanary(ctx, "silent").Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("no values"))))
		Expect(readFile(heraldLog.Name())).To(ContainSubstring("no values"))
	})
})
