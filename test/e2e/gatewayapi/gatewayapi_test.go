package gatewayapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/traffic"
)

const (
	appsNS    = "gw"
	gatewayNS = "istio-ingress"
	flaggerNS = "flagger-system"
)

// Flagger's Gateway API MetricTemplates, as its tutorial and e2e tests write them: they
// query what Istio's gateway (an Envoy) reports, reporter="source".
const (
	flaggerLatencyQuery = `histogram_quantile(0.99,
  sum(
    rate(
      istio_request_duration_milliseconds_bucket{
        reporter="source",
        destination_workload_namespace=~"{{ namespace }}",
        destination_workload=~"{{ target }}",
      }[{{ interval }}]
    )
  ) by (le)
)/1000`
	flaggerErrorRateQuery = `100 - sum(
  rate(
    istio_requests_total{
      reporter="source",
      destination_workload_namespace=~"{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="source",
      destination_workload_namespace=~"{{ namespace }}",
      destination_workload=~"{{ target }}",
    }[{{ interval }}]
  )
)
* 100`
	// gRPC reports failures in grpc_response_status over HTTP 200: this template counts the
	// calls that did not end OK.
	grpcErrorRateQuery = `100 - sum(rate(istio_requests_total{reporter="source",request_protocol="grpc",
  destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",grpc_response_status="0"}[{{ interval }}]))
/ sum(rate(istio_requests_total{reporter="source",request_protocol="grpc",
  destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}])) * 100`
)

func metricTemplate(ctx context.Context, ns, name, query string) {
	t := &flaggerv1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: flaggerv1.MetricTemplateSpec{
			Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: env.PrometheusURL},
			Query:    query,
		},
	}
	Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, t))).To(Succeed())
}

// app creates podinfo as the Deployment name (one replica) in ns.
func app(ctx context.Context, ns, name string) *appsv1.Deployment {
	root, err := cluster.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", "podinfo-deployment.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var d appsv1.Deployment
	Expect(yaml.UnmarshalStrict(b, &d)).To(Succeed())
	d.Name, d.Namespace = name, ns
	d.Labels = map[string]string{"app": name}
	d.Spec.Replicas = ptr.To[int32](1)
	d.Spec.Selector.MatchLabels = map[string]string{"app": name}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.MinReadySeconds = 0
	Expect(k8s.Create(ctx, &d)).To(Succeed())
	return &d
}

var gatewayRefs = []flaggerv1.ParentReference{{Name: "gateway", Namespace: ptr.To(gatewayNS)}}

// builtinMetrics are Flagger's builtin checks, which for this provider read the
// application's own request histogram.
var builtinMetrics = []flaggerv1.CanaryMetric{
	{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
	{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
}

// gwCanary is a Canary without spec.provider: Herald's default, gatewayapi:v1, routes it.
func gwCanary(ctx context.Context, name string, analysis flaggerv1.CanaryAnalysis, mutate ...func(*flaggerv1.Canary)) {
	analysis.Interval = "10s"
	if analysis.Threshold == 0 {
		analysis.Threshold = 2
	}
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appsNS},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898, GatewayRefs: gatewayRefs, Hosts: []string{name + ".example.com"}},
			Analysis:  &analysis,
		},
	}
	for _, m := range mutate {
		m(c)
	}
	Expect(k8s.Create(ctx, c)).To(Succeed())
}

// behave gives the target a new revision that the simulator serves with this error rate.
func behave(ctx context.Context, name string, errorRate float64) {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:"%g",%q:"20ms"}}}}}`,
		traffic.ErrorRateAnnotation, errorRate, traffic.LatencyAnnotation)
	Expect(k8s.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appsNS}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

func getCanary(ctx context.Context, ns, name string) *flaggerv1.Canary {
	var c flaggerv1.Canary
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &c)).To(Succeed())
	return &c
}

func phaseOf(ctx context.Context, name string) func() flaggerv1.CanaryPhase {
	return func() flaggerv1.CanaryPhase {
		var c flaggerv1.Canary
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: name}, &c); err != nil {
			return ""
		}
		return c.Status.Phase
	}
}

func canaryEventSeen(ctx context.Context, name, substring string) bool {
	return slices.ContainsFunc(eventsFor(ctx, name), func(n string) bool { return strings.Contains(n, substring) })
}

func eventsFor(ctx context.Context, name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(appsNS))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Canary" && e.Regarding.Name == name {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

// split is what a route does with a request: the weights of the rule that carries the canary
// and whether that rule mirrors to the canary (and how much).
type split struct {
	Primary, Canary int32
	MirrorPercent   int32 // 0: not mirrored
}

func weightOf(w *int32) int32 {
	if w == nil {
		return 1
	}
	return *w
}

func httpRoute(ctx context.Context, name string) *gatewayv1.HTTPRoute {
	var rt gatewayv1.HTTPRoute
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: name}, &rt)).To(Succeed())
	return &rt
}

// sticky rules pin cookie holders and do not carry the split.
func carriesSplit(name *gatewayv1.SectionName) bool {
	return name == nil || !slices.Contains([]string{"sticky-route", "sticky-primary-route", "expire-cookie-route"}, string(*name))
}

func splitOfHTTP(rt *gatewayv1.HTTPRoute, name string) split {
	for _, r := range rt.Spec.Rules {
		if !carriesSplit(r.Name) {
			continue
		}
		var s split
		found := false
		for _, b := range r.BackendRefs {
			switch string(b.Name) {
			case name + "-primary":
				s.Primary = weightOf(b.Weight)
			case name + "-canary":
				s.Canary, found = weightOf(b.Weight), true
			}
		}
		if !found {
			continue
		}
		for _, f := range r.Filters {
			if f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == name+"-canary" {
				s.MirrorPercent = 100
				if f.RequestMirror.Percent != nil {
					s.MirrorPercent = *f.RequestMirror.Percent
				}
			}
		}
		return s
	}
	return split{}
}

func splitOfGRPC(rt *gatewayv1.GRPCRoute, name string) split {
	for _, r := range rt.Spec.Rules {
		var s split
		found := false
		for _, b := range r.BackendRefs {
			switch string(b.Name) {
			case name + "-primary":
				s.Primary = weightOf(b.Weight)
			case name + "-canary":
				s.Canary, found = weightOf(b.Weight), true
			}
		}
		if found {
			return s
		}
	}
	return split{}
}

// routeSplit reads the split of the HTTPRoute name (or GRPCRoute, for a gRPC service).
func routeSplit(ctx context.Context, name string, grpc bool) (split, error) {
	key := types.NamespacedName{Namespace: appsNS, Name: name}
	if grpc {
		var rt gatewayv1.GRPCRoute
		if err := k8s.Get(ctx, key, &rt); err != nil {
			return split{}, err
		}
		return splitOfGRPC(&rt, name), nil
	}
	var rt gatewayv1.HTTPRoute
	if err := k8s.Get(ctx, key, &rt); err != nil {
		return split{}, err
	}
	return splitOfHTTP(&rt, name), nil
}

// weightRecorder polls a route and keeps every distinct canary weight in order; onSample,
// when set, sees every split read (under the recorder's lock).
type weightRecorder struct {
	mu       sync.Mutex
	weights  []int32
	mirrors  int
	onSample func(split)
}

func recordWeights(ctx context.Context, name string, grpc bool, onSample ...func(split)) *weightRecorder {
	w := &weightRecorder{}
	if len(onSample) > 0 {
		w.onSample = onSample[0]
	}
	// Not the caller's context: it records for the whole container, beyond BeforeAll.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	DeferCleanup(cancel)
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			if s, err := routeSplit(ctx, name, grpc); err == nil && s.Primary+s.Canary > 0 {
				w.mu.Lock()
				if n := len(w.weights); n == 0 || w.weights[n-1] != s.Canary {
					w.weights = append(w.weights, s.Canary)
				}
				if s.MirrorPercent > 0 {
					w.mirrors++
				}
				if w.onSample != nil {
					w.onSample(s)
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

// midRun holds what is observed while the runs are going, for the specs that check it
// after the runs have ended (they run one after the other; the releases all at once).
type midRun struct {
	mu sync.Mutex
	// mirrored: the last split seen while mirroring, and the canary's requests at that time.
	mirror            split
	routedWhileMirror int64
	copiesWhileMirror int64
	sawMirror         bool
	// sticky: the browser's requests when it got the cookie and a few seconds later, with the
	// run's state then.
	cookie                        string
	statusCookie                  string
	primaryAtCookie, primaryLater int64
	canaryAtCookie, canaryLater   int64
	plainPrimaryLater             int64
	phaseLater                    flaggerv1.CanaryPhase
	weightLater                   int
	stickyErr                     error
}

func routedTo(name, workload string) int64 {
	var n int64
	for _, class := range []string{"plain", "insider", "browser"} {
		n += sim.ServedClass(appsNS, name, class, workload)
	}
	return n
}

// watchSticky waits for the browser to get the canary's cookie, then counts where its
// requests go for a few seconds while the run goes on.
func watchSticky(ctx context.Context, obs *midRun) {
	defer GinkgoRecover()
	cookie := func() string { return sim.Cookie("browser", "HTTPRoute", appsNS, "sticky", "canary-flagger-cookie") }
	deadline := time.Now().Add(3 * time.Minute)
	for cookie() == "" {
		if ctx.Err() != nil || time.Now().After(deadline) {
			obs.mu.Lock()
			obs.stickyErr = fmt.Errorf("the browser never got the canary's cookie")
			obs.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	obs.mu.Lock()
	obs.cookie = cookie()
	obs.primaryAtCookie = sim.ServedClass(appsNS, "sticky", "browser", "sticky-primary")
	obs.canaryAtCookie = sim.ServedClass(appsNS, "sticky", "browser", "sticky")
	obs.mu.Unlock()
	var c flaggerv1.Canary
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: "sticky"}, &c); err == nil {
		obs.mu.Lock()
		obs.statusCookie = c.Status.SessionAffinityCookie
		obs.mu.Unlock()
	}
	time.Sleep(4 * time.Second)
	err := k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: "sticky"}, &c)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	obs.stickyErr = err
	obs.primaryLater = sim.ServedClass(appsNS, "sticky", "browser", "sticky-primary")
	obs.canaryLater = sim.ServedClass(appsNS, "sticky", "browser", "sticky")
	obs.plainPrimaryLater = sim.ServedClass(appsNS, "sticky", "plain", "sticky-primary")
	obs.phaseLater, obs.weightLater = c.Status.Phase, c.Status.CanaryWeight
}

// The releases of every strategy run at the same time, in Canaries of their own; each spec
// then checks one of them. Ordered: BeforeAll starts them all.
var _ = Describe("Gateway API canaries", Ordered, Label("gatewayapi"), func() {
	recorders := map[string]*weightRecorder{}
	obs := &midRun{}

	BeforeAll(func(ctx SpecContext) {
		for _, ns := range []string{appsNS, gatewayNS, flaggerNS} {
			createNamespace(ctx, ns)
		}
		// The Gateway the routes attach to, as in Flagger's tutorial.
		gw := &gatewayv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: "gateway", Namespace: gatewayNS},
			Spec: gatewayv1.GatewaySpec{GatewayClassName: "istio", Listeners: []gatewayv1.Listener{{
				Name: "default", Hostname: ptr.To[gatewayv1.Hostname]("*.example.com"), Port: 80, Protocol: gatewayv1.HTTPProtocolType,
				AllowedRoutes: &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: ptr.To(gatewayv1.NamespacesFromAll)}},
			}}},
		}
		Expect(k8s.Create(ctx, gw)).To(Succeed())
		metricTemplate(ctx, flaggerNS, "latency", flaggerLatencyQuery)
		metricTemplate(ctx, flaggerNS, "error-rate", flaggerErrorRateQuery)
		metricTemplate(ctx, appsNS, "grpc-error-rate", grpcErrorRateQuery)

		flaggerMetrics := append(slices.Clone(builtinMetrics),
			flaggerv1.CanaryMetric{Name: "error-rate", Interval: "30s", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate", Namespace: flaggerNS},
				ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(1.0)}},
			flaggerv1.CanaryMetric{Name: "latency", Interval: "30s", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "latency", Namespace: flaggerNS},
				ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(0.5)}},
		)
		for _, name := range []string{"weighted", "faulty", "abtest", "bluegreen", "mirrored", "sticky", "grpc"} {
			app(ctx, appsNS, name)
		}
		// Weighted, with the promotion stepped back by stepWeightPromotion.
		gwCanary(ctx, "weighted", flaggerv1.CanaryAnalysis{StepWeight: 20, MaxWeight: 60, StepWeightPromotion: 30, Metrics: flaggerMetrics})
		gwCanary(ctx, "faulty", flaggerv1.CanaryAnalysis{StepWeight: 20, MaxWeight: 60, Metrics: builtinMetrics})
		gwCanary(ctx, "abtest", flaggerv1.CanaryAnalysis{Iterations: 2, Metrics: builtinMetrics,
			Match: []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}}}})
		// Blue/green through the v1beta1 API, without metrics: the canary gets no traffic
		// before the last step, which routes all of it there.
		gwCanary(ctx, "bluegreen", flaggerv1.CanaryAnalysis{Iterations: 2}, func(c *flaggerv1.Canary) { c.Spec.Provider = flaggerv1.ProviderGatewayAPIV1Beta1 })
		// Blue/green with half the traffic mirrored: the copies are what the builtin checks see.
		gwCanary(ctx, "mirrored", flaggerv1.CanaryAnalysis{Iterations: 2, Mirror: true, MirrorWeight: 50, Metrics: builtinMetrics})
		gwCanary(ctx, "sticky", flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 40, Metrics: builtinMetrics,
			SessionAffinity: &flaggerv1.SessionAffinity{CookieName: "canary-flagger-cookie", MaxAge: 3600}})
		// A gRPC service (appProtocol grpc): a GRPCRoute, judged by a MetricTemplate on gRPC
		// statuses, with stepWeights.
		gwCanary(ctx, "grpc", flaggerv1.CanaryAnalysis{StepWeights: []int{10, 50}, Metrics: []flaggerv1.CanaryMetric{
			{Name: "grpc-error-rate", Interval: "30s", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "grpc-error-rate"}, ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(1.0)}},
		}}, func(c *flaggerv1.Canary) {
			c.Spec.Provider = flaggerv1.ProviderGatewayAPI
			c.Spec.Service.AppProtocol = "grpc"
		})

		for _, name := range []string{"weighted", "faulty", "abtest", "bluegreen", "mirrored", "sticky", "grpc"} {
			Eventually(phaseOf(ctx, name)).WithTimeout(90*time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized), name)
		}
		for _, name := range []string{"weighted", "faulty", "abtest", "bluegreen", "grpc"} {
			recorders[name] = recordWeights(ctx, name, name == "grpc")
		}
		recorders["mirrored"] = recordWeights(ctx, "mirrored", false, func(s split) {
			if s.MirrorPercent == 0 {
				return
			}
			// While the split mirrors, every request the canary serves is a copy.
			copies, _ := sim.Served(appsNS, "mirrored")
			obs.mu.Lock()
			obs.sawMirror, obs.mirror = true, s
			obs.routedWhileMirror, obs.copiesWhileMirror = routedTo("mirrored", "mirrored"), copies
			obs.mu.Unlock()
		})
		stickyCtx, stopSticky := context.WithCancel(context.WithoutCancel(ctx))
		DeferCleanup(stopSticky)
		go watchSticky(stickyCtx, obs)
		for _, name := range []string{"weighted", "abtest", "bluegreen", "mirrored", "sticky", "grpc"} {
			behave(ctx, name, 0)
		}
		behave(ctx, "faulty", 0.5)
	}, NodeTimeout(3*time.Minute))

	It("promotes a good version step by step, the HTTPRoute weights read back in order", func(ctx SpecContext) {
		rt := httpRoute(ctx, "weighted")
		Expect(metav1.IsControlledBy(rt, getCanary(ctx, appsNS, "weighted"))).To(BeTrue())
		Expect(rt.Spec.Hostnames).To(ConsistOf(gatewayv1.Hostname("weighted.example.com")))
		Expect(rt.Spec.ParentRefs).To(HaveLen(1))
		Expect(string(rt.Spec.ParentRefs[0].Name)).To(Equal("gateway"))
		Eventually(phaseOf(ctx, "weighted")).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(recorders["weighted"].seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 20, 40, 60, 30, 0}),
			"20, 40, 60, then back to the primary by 30 per interval")
		Expect(splitOfHTTP(httpRoute(ctx, "weighted"), "weighted")).To(Equal(split{Primary: 100, Canary: 0}))
		notes := eventsFor(ctx, "weighted")
		for _, w := range []int{20, 40, 60} {
			Expect(notes).To(ContainElement(fmt.Sprintf("Advance weighted.%s canary weight %d", appsNS, w)))
		}
		Expect(notes).To(ContainElement(fmt.Sprintf("Advance weighted.%s primary weight 70", appsNS)))
		// Flagger's Gateway API templates and the builtin checks were all run, and passed.
		metrics, err := scrape(herald.MetricsURL)
		Expect(err).NotTo(HaveOccurred())
		for _, m := range []string{"error-rate", "latency", "request-success-rate"} {
			Expect(metrics).To(MatchRegexp(`flagger_canary_metric_analysis\{metric="%s",name="weighted",namespace="gw"\} \d`, m))
		}

		By("a direct edit of the HTTPRoute is put back")
		rt = httpRoute(ctx, "weighted")
		rt.Spec.Hostnames = []gatewayv1.Hostname{"evil.example.com"}
		for i := range rt.Spec.Rules[0].BackendRefs {
			rt.Spec.Rules[0].BackendRefs[i].Weight = ptr.To[int32](50)
		}
		Expect(k8s.Update(ctx, rt)).To(Succeed())
		Eventually(func() split { return splitOfHTTP(httpRoute(ctx, "weighted"), "weighted") }).WithTimeout(10 * time.Second).
			Should(Equal(split{Primary: 100, Canary: 0}))
		Eventually(func() []gatewayv1.Hostname { return httpRoute(ctx, "weighted").Spec.Hostnames }).WithTimeout(10 * time.Second).
			Should(ConsistOf(gatewayv1.Hostname("weighted.example.com")))
	})

	It("rolls a bad version back, the HTTPRoute back at 100/0", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "faulty")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		Eventually(recorders["faulty"].seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 20, 0}), "the canary got 20%, then nothing")
		Expect(splitOfHTTP(httpRoute(ctx, "faulty"), "faulty")).To(Equal(split{Primary: 100, Canary: 0}))
		// Half its answers fail: the measured rate is near 50 %, on either side of it.
		Expect(eventsFor(ctx, "faulty")).To(ContainElement(MatchRegexp(`success rate [45]\d(\.\d+)?% < 99%`)))
		c := getCanary(ctx, appsNS, "faulty")
		Expect(c.Status.CanaryWeight).To(BeZero())
		var d appsv1.Deployment
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: "faulty-primary"}, &d)).To(Succeed())
		Expect(d.Spec.Template.Annotations).NotTo(HaveKey(traffic.ErrorRateAnnotation), "the primary still runs the old version")
	})

	It("sends only the requests that match to the canary during an A/B test", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "abtest")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(recorders["abtest"].seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 100, 0}),
			"the matching requests went to the canary for the iterations, then back to the primary")
		Expect(sim.ServedClass(appsNS, "abtest", "insider", "abtest")).To(BeNumerically(">", 20), "insiders reached the canary")
		for _, class := range []string{"plain", "browser"} {
			Expect(sim.ServedClass(appsNS, "abtest", class, "abtest")).To(BeZero(), "%s requests never reached the canary", class)
			Expect(sim.ServedClass(appsNS, "abtest", class, "abtest-primary")).To(BeNumerically(">", 20))
		}
		rt := httpRoute(ctx, "abtest")
		Expect(rt.Spec.Rules).To(HaveLen(2), "the matched rule stays, sending everyone to the primary")
		Expect(splitOfHTTP(rt, "abtest")).To(Equal(split{Primary: 100, Canary: 0}))
		Expect(rt.Spec.Rules[0].Matches).To(ConsistOf(HaveField("Headers", ConsistOf(HaveField("Name", gatewayv1.HTTPHeaderName("x-canary"))))))
	})

	It("runs a blue/green release: iterations on the primary, then all traffic to the canary, then the promotion", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "bluegreen")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(recorders["bluegreen"].seen).WithTimeout(5 * time.Second).Should(Equal([]int32{0, 100, 0}))
		Expect(routedTo("bluegreen", "bluegreen")).To(BeNumerically(">", 0), "the canary served the last step")
		Expect(canaryEventSeen(ctx, "bluegreen", "Routing all traffic to canary bluegreen."+appsNS)).To(BeTrue())
		// Written through gateway.networking.k8s.io/v1beta1 (provider gatewayapi:v1beta1).
		out, err := kubectl("-n", appsNS, "get", "httproutes.v1beta1.gateway.networking.k8s.io", "bluegreen", "-o", "jsonpath={.metadata.managedFields[*].apiVersion}")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("gateway.networking.k8s.io/v1beta1"))
	})

	It("mirrors half the traffic to the canary during a blue/green run", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "mirrored")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		obs.mu.Lock()
		defer obs.mu.Unlock()
		Expect(obs.sawMirror).To(BeTrue(), "the HTTPRoute mirrored to the canary")
		Expect(obs.mirror).To(Equal(split{Primary: 100, Canary: 0, MirrorPercent: 50}))
		Expect(obs.routedWhileMirror).To(BeZero(), "while mirroring, no request was routed to the canary")
		Expect(obs.copiesWhileMirror).To(BeNumerically(">", 20), "the canary served mirrored copies (which the builtin checks judged)")
		Expect(canaryEventSeen(ctx, "mirrored", "Routing all traffic to canary")).To(BeTrue())
		Expect(routeSplit(ctx, "mirrored", false)).To(Equal(split{Primary: 100, Canary: 0}))
	})

	It("keeps a client that got the canary's cookie on the canary, and expires the cookie after the run", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "sticky")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		obs.mu.Lock()
		o := obs
		Expect(o.stickyErr).NotTo(HaveOccurred())
		Expect("canary-flagger-cookie="+o.cookie).To(Equal(o.statusCookie), "the browser holds the cookie of the Canary's status")
		Expect(o.phaseLater).To(Equal(flaggerv1.CanaryPhaseProgressing), "the run was still going during the check")
		Expect(o.weightLater).To(BeNumerically(">", 0))
		Expect(o.primaryLater).To(Equal(o.primaryAtCookie), "the browser with the cookie never reached the primary")
		Expect(o.canaryLater).To(BeNumerically(">", o.canaryAtCookie+5), "it kept reaching the canary")
		Expect(o.plainPrimaryLater).To(BeNumerically(">", 0), "clients without the cookie were still split")
		obs.mu.Unlock()
		cookie := func() string { return sim.Cookie("browser", "HTTPRoute", appsNS, "sticky", "canary-flagger-cookie") }
		Eventually(cookie).WithTimeout(15*time.Second).Should(BeEmpty(), "the expire rule took the cookie back")
		Expect(getCanary(ctx, appsNS, "sticky").Status.PreviousSessionAffinityCookie).To(HavePrefix("canary-flagger-cookie="))
	})

	It("promotes a gRPC service through a GRPCRoute with stepWeights", func(ctx SpecContext) {
		Eventually(phaseOf(ctx, "grpc")).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(recorders["grpc"].seen).WithTimeout(5 * time.Second).Should(Equal([]int32{0, 10, 50, 0}))
		Expect(routeSplit(ctx, "grpc", true)).To(Equal(split{Primary: 100, Canary: 0}))
		err := k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: "grpc"}, &gatewayv1.HTTPRoute{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a gRPC service gets no HTTPRoute: %v", err)
		var rt gatewayv1.GRPCRoute
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: appsNS, Name: "grpc"}, &rt)).To(Succeed())
		Expect(rt.Status.Parents).NotTo(BeEmpty(), "the simulated gateway accepted the route")
		metrics, err := scrape(herald.MetricsURL)
		Expect(err).NotTo(HaveOccurred())
		Expect(metrics).To(MatchRegexp(`flagger_canary_metric_analysis\{metric="grpc-error-rate",name="grpc",namespace="gw"\} 0`))
	})

	It("accepts and routes every Gateway API manifest of Flagger's documentation unchanged", func(ctx SpecContext) {
		files, err := filepath.Glob("../../../../shared/compat/flagger-docs-canaries/*gatewayapi*.yaml")
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(4))
		var namespaces []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed())
			// Each in a namespace of its own: all four are test/podinfo.
			ns := "corpus-" + strings.SplitN(filepath.Base(f), "-", 2)[0]
			namespaces = append(namespaces, ns)
			createNamespace(ctx, ns)
			u.SetNamespace(ns)
			app(ctx, ns, "podinfo")
			Expect(k8s.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
					MinReplicas:    ptr.To[int32](1), MaxReplicas: 4,
				},
			})).To(Succeed())
			Expect(k8s.Create(ctx, u)).To(Succeed(), filepath.Base(f))
		}
		for _, ns := range namespaces {
			Eventually(func() flaggerv1.CanaryPhase { return getCanary(ctx, ns, "podinfo").Status.Phase }).WithTimeout(90*time.Second).
				Should(Equal(flaggerv1.CanaryPhaseInitialized), ns)
			var rt gatewayv1.HTTPRoute
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "podinfo"}, &rt)).To(Succeed(), ns)
			Expect(rt.Spec.Hostnames).To(ConsistOf(gatewayv1.Hostname("www.example.com")))
			Expect(rt.Spec.ParentRefs).To(ConsistOf(HaveField("Name", gatewayv1.ObjectName("gateway"))))
			Expect(string(*rt.Spec.ParentRefs[0].Namespace)).To(Equal(gatewayNS))
			Expect(splitOfHTTP(&rt, "podinfo")).To(Equal(split{Primary: 100, Canary: 0}), ns)
			Expect(metav1.IsControlledBy(&rt, getCanary(ctx, ns, "podinfo"))).To(BeTrue())
		}
	})

	It("adopts a user's existing HTTPRoute and gives it back unchanged when the Canary is deleted", func(ctx SpecContext) {
		app(ctx, appsNS, "adopted")
		mine := &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: "adopted", Namespace: appsNS, Labels: map[string]string{"owner": "me"}},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway", Namespace: ptr.To[gatewayv1.Namespace](gatewayNS)}}},
				Hostnames:       []gatewayv1.Hostname{"adopted.example.com"},
				Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "adopted", Port: ptr.To[gatewayv1.PortNumber](9898)}}}}}},
			},
		}
		Expect(k8s.Create(ctx, mine)).To(Succeed())
		before := httpRoute(ctx, "adopted").Spec
		gwCanary(ctx, "adopted", flaggerv1.CanaryAnalysis{StepWeight: 10, Metrics: builtinMetrics})
		Eventually(phaseOf(ctx, "adopted")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized))
		adopted := httpRoute(ctx, "adopted")
		Expect(adopted.OwnerReferences).To(BeEmpty(), "adopted, not owned: garbage collection must never delete it")
		Expect(adopted.Labels).To(HaveKeyWithValue(contract.LabelAdoptedBy, "adopted"))
		Expect(adopted.Annotations).To(HaveKey(contract.AnnotationOriginal))
		Expect(splitOfHTTP(adopted, "adopted")).To(Equal(split{Primary: 100, Canary: 0}))

		Expect(k8s.Delete(ctx, getCanary(ctx, appsNS, "adopted"))).To(Succeed())
		// Once the Canary is gone and the target serves again, the route is put back.
		Eventually(func(g Gomega) {
			restored := httpRoute(ctx, "adopted")
			g.Expect(restored.Spec).To(Equal(before))
			g.Expect(restored.Labels).To(Equal(map[string]string{"owner": "me"}))
			g.Expect(restored.Annotations).NotTo(HaveKey(contract.AnnotationOriginal))
			g.Expect(restored.OwnerReferences).To(BeEmpty())
		}).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Succeed())
	})
})

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
