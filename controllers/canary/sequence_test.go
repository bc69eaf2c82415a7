package canary

// Pass-by-pass tests of the Reconciler: a fake API server (controller-runtime's fake client),
// a fake clock, a fake Prometheus and a fake hook server. Every Deployment is "rolled out" by
// the test after each pass, since the fake client has no Deployment controller. After each
// pass the test records the phase, the status counters and the VirtualService split, and
// compares the sequence with Flagger's observed one (flagger-behaviour.md §3.3); Herald's
// first step runs as soon as the canary is ready, and Finalising is passed through within the
// pass that ends the promotion.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/controllers/router"
)

const (
	testNS       = "test"
	testName     = "podinfo"
	testInterval = time.Minute
	imageV1      = "ghcr.io/stefanprodan/podinfo:6.0.0"
	imageV2      = "ghcr.io/stefanprodan/podinfo:6.0.1"
	imageV3      = "ghcr.io/stefanprodan/podinfo:6.0.2"
	good, bad    = "100", "50" // success rates; the metric's minimum is 99
	noValues     = ""          // an empty vector
)

// fakeProm answers Prometheus's instant-query API with one sample whose value the test sets.
type fakeProm struct {
	srv     *httptest.Server
	mu      sync.Mutex
	value   string
	queries atomic.Int32
}

func newFakeProm(t *testing.T) *fakeProm {
	p := &fakeProm{value: good}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		p.queries.Add(1)
		p.mu.Lock()
		v := p.value
		p.mu.Unlock()
		result := "[]"
		if v != noValues {
			result = fmt.Sprintf(`[{"metric":{},"value":[1700000000,%q]}]`, v)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, result)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProm) set(v string) {
	p.mu.Lock()
	p.value = v
	p.mu.Unlock()
}

// hookServer answers every hook at /<hook name> with a status the test sets (200 unless told)
// and counts the calls.
type hookServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status map[string]int
	calls  map[string]int
	// blocks holds a hook's answers until its channel is closed.
	blocks map[string]chan struct{}
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{status: map[string]int{}, calls: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		h.mu.Lock()
		h.calls[name]++
		code, ok := h.status[name]
		block := h.blocks[name]
		h.mu.Unlock()
		if block != nil {
			<-block
		}
		if !ok {
			code = http.StatusOK
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) hook(typ flaggerv1.HookType) flaggerv1.CanaryWebhook {
	return flaggerv1.CanaryWebhook{Name: string(typ), Type: typ, URL: h.srv.URL + "/" + string(typ), Timeout: "5s"}
}

// block makes the hook answer only once release is closed.
func (h *hookServer) block(name flaggerv1.HookType, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocks == nil {
		h.blocks = map[string]chan struct{}{}
	}
	h.blocks[string(name)] = release
}

func (h *hookServer) set(name flaggerv1.HookType, code int) {
	h.mu.Lock()
	h.status[string(name)] = code
	h.mu.Unlock()
}

func (h *hookServer) count(name flaggerv1.HookType) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[string(name)]
}

// world is one Canary, its target and the fakes around the Reconciler.
type world struct {
	t      *testing.T
	ctx    context.Context
	cl     client.WithWatch
	r      *Reconciler
	rec    *record.FakeRecorder
	now    time.Time
	prom   *fakeProm
	hooks  *hookServer
	events []string // "Normal <message>" / "Warning <message>", in order
	// failStatus makes the next status write of the Canary fail.
	failStatus atomic.Bool
	// vsWrites are the splits of every VirtualService update, in order.
	vsWrites []string
	// vsUpdate, when set, sees each VirtualService update first; an error fails it.
	vsUpdate func(vs *istionet.VirtualService) error
	// broken names Deployments that never roll out: rollout leaves their updated pods
	// unready and past their progress deadline.
	broken map[string]bool
}

func newWorld(t *testing.T, provider string, analysis *flaggerv1.CanaryAnalysis) *world {
	t.Helper()
	w := &world{t: t, ctx: ctrl.LoggerInto(context.Background(), logr.Discard()), now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	w.prom = newFakeProm(t)
	w.hooks = newHookServer(t)

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, flaggerv1.AddToScheme, router.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	canary := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, UID: "uid-podinfo"},
		Spec: flaggerv1.CanarySpec{
			Provider:  provider,
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: testName},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis:  analysis,
		},
	}
	w.cl = fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&flaggerv1.Canary{}).
		WithObjects(canary, targetDeployment()).
		WithInterceptorFuncs(interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if vs, ok := obj.(*istionet.VirtualService); ok {
					if w.vsUpdate != nil {
						if err := w.vsUpdate(vs); err != nil {
							return err
						}
					}
					w.vsWrites = append(w.vsWrites, describeRoutes(vs))
				}
				return c.Update(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if _, ok := obj.(*flaggerv1.Canary); ok && sub == "status" && w.failStatus.CompareAndSwap(true, false) {
					return apierrors.NewServiceUnavailable("etcd is briefly unavailable")
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	w.rec = record.NewFakeRecorder(1000)
	w.r = &Reconciler{
		Client:    w.cl,
		APIReader: w.cl,
		Events:    w.rec,
		Metrics:   &metrics.Recorder{},
		Hooks:     &hooks.Caller{},
		Checks:    &metricchecks.Checker{Reader: w.cl, DefaultAddress: w.prom.srv.URL},
		Options:   Options{SelectorLabels: []string{"app"}, PodPollInterval: 2 * time.Second},
		Now:       func() time.Time { return w.now },
	}
	return w
}

func targetDeployment() *appsv1.Deployment {
	replicas := int32(2)
	labels := map[string]string{"app": testName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: testName, Image: imageV1,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
}

// analysisWith is an analysis with the interval, the builtin success-rate metric (minimum 99)
// and the given changes.
func analysisWith(change func(a *flaggerv1.CanaryAnalysis)) *flaggerv1.CanaryAnalysis {
	minRate := 99.0
	a := &flaggerv1.CanaryAnalysis{
		Interval:  testInterval.String(),
		Threshold: 2,
		Metrics: []flaggerv1.CanaryMetric{{
			Name: metricchecks.RequestSuccessRate, Interval: "1m",
			ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: &minRate},
		}},
	}
	if change != nil {
		change(a)
	}
	return a
}

// reconcile runs one pass at the current time, then rolls every Deployment out and collects
// the events.
func (w *world) reconcile() error {
	_, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName}})
	w.rollout()
	for {
		select {
		case e := <-w.rec.Events:
			typ, rest, _ := strings.Cut(e, " ")
			_, msg, _ := strings.Cut(rest, " ") // drop the reason
			w.events = append(w.events, typ+" "+msg)
		default:
			return err
		}
	}
}

// tick advances the clock by the analysis interval and runs a pass, which must not fail; it
// returns the state after the pass.
func (w *world) tick() string {
	w.t.Helper()
	w.now = w.now.Add(testInterval)
	if err := w.reconcile(); err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	return w.state()
}

// rollout makes every Deployment of the namespace look rolled out at its current spec.
func (w *world) rollout() {
	w.t.Helper()
	var list appsv1.DeploymentList
	if err := w.cl.List(w.ctx, &list, client.InNamespace(testNS)); err != nil {
		w.t.Fatal(err)
	}
	for i := range list.Items {
		d := &list.Items[i]
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		st := &d.Status
		if w.broken[d.Name] {
			st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, st.ReadyReplicas = d.Generation, n, n, 0, 0
			st.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
			if err := w.cl.Status().Update(w.ctx, d); err != nil {
				w.t.Fatal(err)
			}
			continue
		}
		if st.ObservedGeneration == d.Generation && st.Replicas == n && st.UpdatedReplicas == n && st.AvailableReplicas == n && st.ReadyReplicas == n && len(st.Conditions) == 0 {
			continue
		}
		st.Conditions = nil
		st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, st.ReadyReplicas = d.Generation, n, n, n, n
		if err := w.cl.Status().Update(w.ctx, d); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) canary() *flaggerv1.Canary {
	w.t.Helper()
	var c flaggerv1.Canary
	if err := w.cl.Get(w.ctx, types.NamespacedName{Namespace: testNS, Name: testName}, &c); err != nil {
		w.t.Fatal(err)
	}
	return &c
}

func (w *world) deployment(name string) *appsv1.Deployment {
	w.t.Helper()
	var d appsv1.Deployment
	if err := w.cl.Get(w.ctx, types.NamespacedName{Namespace: testNS, Name: name}, &d); err != nil {
		w.t.Fatal(err)
	}
	return &d
}

// state is "<phase> w<canaryWeight> i<iterations> f<failedChecks> | <routes>".
func (w *world) state() string {
	s := w.canary().Status
	return fmt.Sprintf("%s w%d i%d f%d | %s", s.Phase, s.CanaryWeight, s.Iterations, s.FailedChecks, w.routes())
}

// routes describes the VirtualService's HTTP routes as "primary/canary" weights, with
// "+mirror" when the route mirrors to the canary; "no-vs" when there is none.
func (w *world) routes() string {
	vs, ok := w.virtualService()
	if !ok {
		return "no-vs"
	}
	return describeRoutes(vs)
}

func describeRoutes(vs *istionet.VirtualService) string {
	var out []string
	for _, r := range vs.Spec.Http {
		var p, c int32
		for _, d := range r.Route {
			switch d.Destination.GetHost() {
			case testName + "-primary":
				p = d.Weight
				if len(r.Route) == 1 && p == 0 {
					p = 100
				}
			case testName + "-canary":
				c = d.Weight
			}
		}
		s := fmt.Sprintf("%d/%d", p, c)
		if r.Mirror != nil {
			if r.Mirror.GetHost() != testName+"-canary" {
				s += "+mirror(" + r.Mirror.GetHost() + ")"
			} else {
				s += "+mirror"
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func (w *world) virtualService() (*istionet.VirtualService, bool) {
	w.t.Helper()
	var vs istionet.VirtualService
	err := w.cl.Get(w.ctx, types.NamespacedName{Namespace: testNS, Name: testName}, &vs)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return &vs, true
}

// initialise runs the passes that create the primary, route all traffic to it and scale the
// target to zero.
func (w *world) initialise() {
	w.t.Helper()
	if err := w.reconcile(); err != nil {
		w.t.Fatalf("first pass: %v", err)
	}
	if got := w.canary().Status.Phase; got != flaggerv1.CanaryPhaseInitializing {
		w.t.Fatalf("first pass: phase %s, want Initializing (the primary is not ready yet)", got)
	}
	got := w.tick()
	if want := "Initialized w0 i0 f0 | " + w.idleRoutes(); got != want {
		w.t.Fatalf("after initialisation: %q, want %q", got, want)
	}
	w.wantReplicas(testName, 0)
	w.wantReplicas(testName+"-primary", 2)
	w.wantEvent("Normal Initialization done! podinfo.test", 1)
}

// idleRoutes is the VirtualService of an idle Canary: all on the primary.
func (w *world) idleRoutes() string {
	c := w.canary()
	switch {
	case c.GetProvider("") == flaggerv1.ProviderKubernetes:
		return "no-vs"
	case c.DeploymentStrategy() == flaggerv1.StrategyABTesting:
		return "100/0, 100/0"
	}
	return "100/0"
}

// release applies a new image to the target.
func (w *world) release(image string) {
	w.t.Helper()
	d := w.deployment(testName)
	d.Spec.Template.Spec.Containers[0].Image = image
	if err := w.cl.Update(w.ctx, d); err != nil {
		w.t.Fatal(err)
	}
}

// runToEnd ticks until the run ends (Succeeded or Failed) and returns the states.
func (w *world) runToEnd() []string {
	w.t.Helper()
	var states []string
	for range 30 {
		s := w.tick()
		states = append(states, s)
		if strings.HasPrefix(s, string(flaggerv1.CanaryPhaseSucceeded)) || strings.HasPrefix(s, string(flaggerv1.CanaryPhaseFailed)) {
			return states
		}
	}
	w.t.Fatalf("the run did not end in 30 passes: %q", states)
	return nil
}

func (w *world) wantReplicas(name string, n int32) {
	w.t.Helper()
	d := w.deployment(name)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != n {
		w.t.Errorf("%s replicas = %v, want %d", name, d.Spec.Replicas, n)
	}
}

func (w *world) primaryImage() string {
	return w.deployment(testName + "-primary").Spec.Template.Spec.Containers[0].Image
}

// countEvents counts the events equal to event, or starting with it when it ends with "…".
func (w *world) countEvents(event string) int {
	prefix, isPrefix := strings.CutSuffix(event, "…")
	n := 0
	for _, e := range w.events {
		if e == event || (isPrefix && strings.HasPrefix(e, prefix)) {
			n++
		}
	}
	return n
}

func (w *world) wantEvent(event string, n int) {
	w.t.Helper()
	if got := w.countEvents(event); got != n {
		w.t.Errorf("event %q seen %d times, want %d; events:\n  %s", event, got, n, strings.Join(w.events, "\n  "))
	}
}

func sameStates(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("states after each pass:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestRunSequences(t *testing.T) {
	type hookSpec struct {
		typ  flaggerv1.HookType
		code int
	}
	cases := []struct {
		name     string
		provider string
		analysis *flaggerv1.CanaryAnalysis
		hooks    []hookSpec
		metric   string // the fake Prometheus's answer
		want     []string
		// checks is the number of metric queries of the run.
		checks int
		// events must each be seen exactly once.
		events []string
		// condition is a part of the Promoted condition's message at the end.
		condition string
	}{
		{
			name:     "weighted",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }),
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w10 i0 f0 | 90/10",
				"Progressing w20 i0 f0 | 80/20",
				"Progressing w30 i0 f0 | 70/30",
				"Progressing w40 i0 f0 | 60/40",
				"Progressing w50 i0 f0 | 50/50",
				"Promoting w50 i0 f0 | 50/50",
				"Succeeded w0 i0 f0 | 100/0",
			},
			// The first step (weight 10) checks no metrics, as in Flagger.
			checks: 5,
			events: []string{
				"Normal New revision detected! Scaling up podinfo.test",
				"Normal Starting canary analysis for podinfo.test",
				"Normal Advance podinfo.test canary weight 10",
				"Normal Advance podinfo.test canary weight 20",
				"Normal Advance podinfo.test canary weight 30",
				"Normal Advance podinfo.test canary weight 40",
				"Normal Advance podinfo.test canary weight 50",
				"Normal Copying podinfo.test template spec to podinfo-primary.test",
				"Normal Promotion completed! Scaling down podinfo.test",
			},
			condition: "promotion finished",
		},
		{
			name:     "step weights with stepped promotion",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeights, a.StepWeightPromotion = []int{1, 5, 20}, 25 }),
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w1 i0 f0 | 99/1",
				"Progressing w5 i0 f0 | 95/5",
				"Progressing w20 i0 f0 | 80/20",
				"Promoting w20 i0 f0 | 80/20",
				// 80 + 25 reaches 100 in one promotion step.
				"Succeeded w0 i0 f0 | 100/0",
			},
			checks: 3,
			events: []string{
				"Normal Advance podinfo.test canary weight 1",
				"Normal Advance podinfo.test canary weight 5",
				"Normal Advance podinfo.test canary weight 20",
				"Normal Advance podinfo.test primary weight 100",
			},
		},
		{
			name:     "step weights with two promotion steps",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeights, a.StepWeightPromotion = []int{1, 5, 20, 50}, 25 }),
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w1 i0 f0 | 99/1",
				"Progressing w5 i0 f0 | 95/5",
				"Progressing w20 i0 f0 | 80/20",
				"Progressing w50 i0 f0 | 50/50",
				"Promoting w50 i0 f0 | 50/50",
				"Promoting w25 i0 f0 | 75/25",
				"Succeeded w0 i0 f0 | 100/0",
			},
			checks: 4,
			events: []string{
				"Normal Advance podinfo.test primary weight 75",
				"Normal Advance podinfo.test primary weight 100",
			},
		},
		{
			name:     "weighted with mirroring",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Mirror = 10, 50, true }),
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w0 i0 f0 | 100/0+mirror",
				"Progressing w10 i0 f0 | 90/10",
				"Progressing w20 i0 f0 | 80/20",
				"Progressing w30 i0 f0 | 70/30",
				"Progressing w40 i0 f0 | 60/40",
				"Progressing w50 i0 f0 | 50/50",
				"Promoting w50 i0 f0 | 50/50",
				"Succeeded w0 i0 f0 | 100/0",
			},
			checks: 6,
			events: []string{
				"Normal Start traffic mirroring to podinfo.test",
				"Normal Starting canary analysis for podinfo.test",
				"Normal Advance podinfo.test canary weight 10",
				"Normal Advance podinfo.test canary weight 50",
			},
		},
		{
			name:     "blue/green with mirroring",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations, a.Mirror = 3, true }),
			hooks:    []hookSpec{{flaggerv1.ConfirmPromotionHook, http.StatusOK}},
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w0 i1 f0 | 100/0+mirror",
				"Progressing w0 i2 f0 | 100/0+mirror",
				"Progressing w0 i3 f0 | 100/0+mirror",
				"Progressing w100 i4 f0 | 0/100",
				"Promoting w100 i4 f0 | 0/100",
				"Succeeded w0 i0 f0 | 100/0",
			},
			checks: 4,
			events: []string{
				"Normal Advance podinfo.test canary iteration 1/3",
				"Normal Advance podinfo.test canary iteration 3/3",
				"Normal Routing all traffic to canary podinfo.test",
			},
			// How often the gate is asked: TestBlueGreenConfirmPromotionAskedOnce.
		},
		{
			name:     "A/B testing",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) {
				a.Iterations = 3
				a.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}}}
			}),
			metric: good,
			want: []string{
				"Progressing w0 i0 f0 | 100/0, 100/0",
				"Progressing w0 i1 f0 | 0/100, 100/0",
				"Progressing w0 i2 f0 | 0/100, 100/0",
				"Progressing w0 i3 f0 | 0/100, 100/0",
				"Promoting w0 i3 f0 | 0/100, 100/0",
				"Succeeded w0 i0 f0 | 100/0, 100/0",
			},
			checks: 3,
			events: []string{
				"Normal Advance podinfo.test canary iteration 1/3",
				"Normal Advance podinfo.test canary iteration 3/3",
			},
		},
		{
			name:     "kubernetes blue/green",
			provider: "kubernetes",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 2 }),
			metric:   good,
			want: []string{
				"Progressing w0 i0 f0 | no-vs",
				"Progressing w0 i1 f0 | no-vs",
				"Progressing w0 i2 f0 | no-vs",
				"Promoting w0 i2 f0 | no-vs",
				"Succeeded w0 i0 f0 | no-vs",
			},
			checks: 2,
		},
		{
			name:     "failing metric rolls back at the threshold",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Threshold = 10, 50, 2 }),
			metric:   bad,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w10 i0 f0 | 90/10",
				"Progressing w10 i0 f1 | 90/10",
				// Herald rolls back on the pass that reaches the threshold (Flagger one later).
				"Failed w0 i0 f0 | 100/0",
			},
			checks: 2,
			events: []string{
				"Warning Rolling back podinfo.test failed checks threshold reached 2…",
				"Warning Canary failed! Scaling down podinfo.test",
			},
			condition: "Halt podinfo.test advancement success rate 50.00% < 99%",
		},
		{
			name:     "no values is a failed check",
			provider: "istio",
			analysis: analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Threshold = 10, 50, 1 }),
			metric:   noValues,
			want: []string{
				"Progressing w0 i0 f0 | 100/0",
				"Progressing w10 i0 f0 | 90/10",
				"Failed w0 i0 f0 | 100/0",
			},
			checks: 1,
			events: []string{
				"Warning Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic",
			},
			condition: "no values found",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.provider, tc.analysis)
			if len(tc.hooks) > 0 {
				c := w.canary()
				for _, h := range tc.hooks {
					c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, w.hooks.hook(h.typ))
					w.hooks.set(h.typ, h.code)
				}
				if err := w.cl.Update(w.ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			w.prom.set(tc.metric)
			w.initialise()
			if n := w.prom.queries.Load(); n != 0 {
				t.Errorf("%d metric queries during initialisation, want none", n)
			}
			w.release(imageV2)
			sameStates(t, w.runToEnd(), tc.want)

			if n := int(w.prom.queries.Load()); n != tc.checks {
				t.Errorf("%d metric checks, want %d", n, tc.checks)
			}
			for _, e := range tc.events {
				w.wantEvent(e, 1)
			}
			// Whatever the outcome, the target ends at zero replicas.
			w.wantReplicas(testName, 0)
			c := w.canary()
			wantImage := imageV2
			if c.Status.Phase == flaggerv1.CanaryPhaseFailed {
				wantImage = imageV1
			}
			if got := w.primaryImage(); got != wantImage {
				t.Errorf("primary image %s, want %s", got, wantImage)
			}
			if tc.condition != "" {
				if len(c.Status.Conditions) == 0 || !strings.Contains(c.Status.Conditions[0].Message, tc.condition) {
					t.Errorf("conditions %+v, want a message containing %q", c.Status.Conditions, tc.condition)
				}
			}
			if tc.provider == "kubernetes" {
				var list istionet.VirtualServiceList
				if err := w.cl.List(w.ctx, &list, client.InNamespace(testNS)); err != nil || len(list.Items) > 0 {
					t.Errorf("kubernetes provider: %d VirtualServices (err %v), want none", len(list.Items), err)
				}
			}
		})
	}
}

// A watch event between two steps (the canary's pods changing, say) must not advance the run.
func TestPassBetweenStepsDoesNothing(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // 10
	w.tick() // 20
	before, queries, events := w.state(), w.prom.queries.Load(), len(w.events)
	w.now = w.now.Add(testInterval / 2)
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := w.state(); got != before {
		t.Errorf("a pass half an interval after a step changed %q into %q", before, got)
	}
	if w.prom.queries.Load() != queries || len(w.events) != events {
		t.Errorf("a pass between steps queried metrics or recorded events: %q", w.events[events:])
	}
	// The next step still comes one interval after the previous one.
	w.now = w.now.Add(testInterval / 2)
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got, want := w.state(), "Progressing w30 i0 f0 | 70/30"; got != want {
		t.Errorf("one interval after the step: %q, want %q", got, want)
	}
}

// A new revision while the promotion waits for approval restarts the run from 100/0 with its
// counters reset; the later promotion promotes the newest revision.
func TestNewRevisionDuringWaitingPromotion(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight, a.Threshold = 25, 50, 3 }))
	c := w.canary()
	c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{w.hooks.hook(flaggerv1.ConfirmPromotionHook)}
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.hooks.set(flaggerv1.ConfirmPromotionHook, http.StatusForbidden)
	w.initialise()
	w.release(imageV2)

	var got []string
	for range 4 {
		got = append(got, w.tick())
	}
	w.prom.set(bad) // a failed check while waiting, so that there is a counter to reset
	got = append(got, w.tick())
	w.prom.set(good)
	w.release(imageV3)
	got = append(got, w.tick())
	sameStates(t, got, []string{
		"Progressing w0 i0 f0 | 100/0",
		"Progressing w25 i0 f0 | 75/25",
		"Progressing w50 i0 f0 | 50/50",
		"WaitingPromotion w50 i0 f0 | 50/50",
		"WaitingPromotion w50 i0 f1 | 50/50",
		"Progressing w0 i0 f0 | 100/0",
	})
	w.wantEvent("Warning Halt podinfo.test advancement waiting for promotion approval confirm-promotion", 1)
	w.wantEvent("Normal New revision detected! Restarting analysis for podinfo.test", 1)
	if c := w.canary(); c.Status.LastAppliedSpec == c.Status.LastPromotedSpec {
		t.Errorf("lastAppliedSpec %q must be the new revision, not the promoted one", c.Status.LastAppliedSpec)
	}

	w.hooks.set(flaggerv1.ConfirmPromotionHook, http.StatusOK)
	sameStates(t, w.runToEnd(), []string{
		"Progressing w25 i0 f0 | 75/25",
		"Progressing w50 i0 f0 | 50/50",
		"Promoting w50 i0 f0 | 50/50",
		"Succeeded w0 i0 f0 | 100/0",
	})
	if img := w.primaryImage(); img != imageV3 {
		t.Errorf("primary image %s, want the newest %s", img, imageV3)
	}
	w.wantReplicas(testName, 0)
}

// skipAnalysis set on a run in progress promotes it at once.
func TestSkipAnalysisMidRun(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // 10
	if got, want := w.tick(), "Progressing w20 i0 f0 | 80/20"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	c := w.canary()
	c.Spec.SkipAnalysis = true
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	queries := w.prom.queries.Load()
	sameStates(t, w.runToEnd(), []string{
		"Promoting w0 i0 f0 | 100/0",
		"Succeeded w0 i0 f0 | 100/0",
	})
	if n := w.prom.queries.Load() - queries; n != 0 {
		t.Errorf("%d metric checks after skipAnalysis was set, want none", n)
	}
	if img := w.primaryImage(); img != imageV2 {
		t.Errorf("primary image %s, want %s", img, imageV2)
	}
	w.wantReplicas(testName, 0)
	w.wantEvent("Normal Advance podinfo.test canary weight 30", 0)
}

// The VirtualService is Herald's: a direct edit of its split is put back on the next pass.
func TestRoutesEditedByHandArePutBack(t *testing.T) {
	cases := []struct {
		name  string
		steps int // ticks after the release before the edit
		want  string
	}{
		{"while Succeeded", 8, "Succeeded w0 i0 f0 | 100/0"},
		{"while Progressing", 3, "Progressing w20 i0 f0 | 80/20"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
			w.initialise()
			w.release(imageV2)
			for range tc.steps {
				w.tick()
			}
			if got := w.state(); got != tc.want {
				t.Fatalf("before the edit: %q, want %q", got, tc.want)
			}
			vs, _ := w.virtualService()
			vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 40, 60
			vs.Spec.Http[0].Mirror = vs.Spec.Http[0].Route[1].Destination
			if err := w.cl.Update(w.ctx, vs); err != nil {
				t.Fatal(err)
			}
			events := len(w.events)
			// A watch event brings the pass at once, before the next step is due.
			w.now = w.now.Add(time.Second)
			if err := w.reconcile(); err != nil {
				t.Fatal(err)
			}
			if got := w.state(); got != tc.want {
				t.Errorf("after the edit and one pass: %q, want %q", got, tc.want)
			}
			if len(w.events) != events {
				t.Errorf("putting the routes back recorded events: %q", w.events[events:])
			}
		})
	}
}

// A blue/green run asks the confirm-promotion gate once, before all traffic moves to the
// canary; the promotion one interval later must not ask again.
func TestBlueGreenConfirmPromotionAskedOnce(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.Iterations = 3 }))
	c := w.canary()
	c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{w.hooks.hook(flaggerv1.ConfirmPromotionHook)}
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.initialise()
	w.release(imageV2)
	var got []string
	for range 5 {
		got = append(got, w.tick())
	}
	sameStates(t, got, []string{
		"Progressing w0 i0 f0 | 100/0",
		"Progressing w0 i1 f0 | 100/0",
		"Progressing w0 i2 f0 | 100/0",
		"Progressing w0 i3 f0 | 100/0",
		"Progressing w100 i4 f0 | 0/100",
	})
	if n := w.hooks.count(flaggerv1.ConfirmPromotionHook); n != 1 {
		t.Errorf("after the switch to the canary: confirm-promotion called %d times, want 1", n)
	}
	if got, want := w.tick(), "Promoting w100 i4 f0 | 0/100"; got != want {
		t.Errorf("promotion pass: %q, want %q", got, want)
	}
	if n := w.hooks.count(flaggerv1.ConfirmPromotionHook); n != 1 {
		t.Errorf("after the promotion: confirm-promotion called %d times, want 1 for the run", n)
	}
}

// A status write that fails after a step's writes is retried at once by the workqueue. The
// retry must not repeat the step's events nor move the traffic back and forth, and the run
// must go on without skipping a step. The step's checks (hooks, metrics) were not recorded,
// so the retry runs them again: checks run at least once, never skipped.
func TestFailedStatusWriteDoesNotRepeatTheStep(t *testing.T) {
	cases := []struct {
		name   string
		before int    // ticks after the release before the failing pass
		want   string // the state after the retry
		events []string
		hooks  []flaggerv1.HookType // each called once by the failing pass and its retry
		checks int32
		routes string // every VirtualService write must route this ("" = none expected)
	}{
		{
			name: "first step", before: 1, want: "Progressing w10 i0 f0 | 90/10",
			events: []string{"Normal Starting canary analysis for podinfo.test", "Normal Advance podinfo.test canary weight 10"},
			hooks:  []flaggerv1.HookType{flaggerv1.PreRolloutHook},
			checks: 0, routes: "90/10",
		},
		{
			name: "weight step", before: 2, want: "Progressing w20 i0 f0 | 80/20",
			events: []string{"Normal Advance podinfo.test canary weight 20"},
			hooks:  []flaggerv1.HookType{flaggerv1.RolloutHook},
			checks: 1, routes: "80/20",
		},
		{
			name: "promotion", before: 6, want: "Promoting w50 i0 f0 | 50/50",
			events: []string{"Normal Copying podinfo.test template spec to podinfo-primary.test"},
			hooks:  []flaggerv1.HookType{flaggerv1.RolloutHook, flaggerv1.ConfirmPromotionHook},
			checks: 1,
		},
		{
			name: "end of the promotion", before: 7, want: "Succeeded w0 i0 f0 | 100/0",
			events: []string{"Normal Promotion completed! Scaling down podinfo.test"},
			hooks:  []flaggerv1.HookType{flaggerv1.PostRolloutHook},
			checks: 0, routes: "100/0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
			c := w.canary()
			for _, h := range []flaggerv1.HookType{flaggerv1.PreRolloutHook, flaggerv1.RolloutHook, flaggerv1.ConfirmPromotionHook, flaggerv1.PostRolloutHook} {
				c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, w.hooks.hook(h))
			}
			if err := w.cl.Update(w.ctx, c); err != nil {
				t.Fatal(err)
			}
			w.initialise()
			w.release(imageV2)
			var states []string
			for range tc.before {
				states = append(states, w.tick())
			}
			calls := map[flaggerv1.HookType]int{}
			for _, h := range tc.hooks {
				calls[h] = w.hooks.count(h)
			}
			queries := w.prom.queries.Load()
			w.vsWrites = nil

			w.failStatus.Store(true)
			w.now = w.now.Add(testInterval)
			if err := w.reconcile(); err == nil {
				t.Fatal("the pass whose status write failed returned no error")
			}
			w.now = w.now.Add(time.Second) // the workqueue's retry
			if err := w.reconcile(); err != nil {
				t.Fatalf("retry: %v", err)
			}

			if got := w.state(); got != tc.want {
				t.Errorf("after the retry: %q, want %q", got, tc.want)
			}
			for _, e := range tc.events {
				w.wantEvent(e, 1)
			}
			for _, h := range tc.hooks {
				if n := w.hooks.count(h) - calls[h]; n < 1 || n > 2 {
					t.Errorf("hook %s called %d times by the step and its retry, want 1 or 2", h, n)
				}
			}
			if n := w.prom.queries.Load() - queries; n < tc.checks || n > 2*tc.checks {
				t.Errorf("%d metric checks by the step and its retry, want %d to %d", n, tc.checks, 2*tc.checks)
			}
			for _, r := range w.vsWrites {
				if r != tc.routes {
					t.Errorf("VirtualService writes by the step and its retry: %q, want only %q", w.vsWrites, tc.routes)
					break
				}
			}
			// The run goes on (or has ended) without skipping or repeating a step.
			if !strings.HasPrefix(tc.want, "Succeeded") {
				states = append(states, tc.want)
				states = append(states, w.runToEnd()...)
				sameStates(t, states, []string{
					"Progressing w0 i0 f0 | 100/0",
					"Progressing w10 i0 f0 | 90/10",
					"Progressing w20 i0 f0 | 80/20",
					"Progressing w30 i0 f0 | 70/30",
					"Progressing w40 i0 f0 | 60/40",
					"Progressing w50 i0 f0 | 50/50",
					"Promoting w50 i0 f0 | 50/50",
					"Succeeded w0 i0 f0 | 100/0",
				})
			}
		})
	}
}

// A revision pushed while a promotion finishes is analysed next, at once: the pass that saw it
// was promoting, and nothing else is bound to wake the Canary once it is idle (the event of
// its own scale-down may be handled before the cache shows it Succeeded; a failed promotion
// that hands the users to the canary writes only the route, whose event wakes nothing).
func TestRevisionPushedDuringPromotionIsAnalysedNext(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 50, 50 }))
	w.initialise()
	w.release(imageV2)
	for range 10 {
		if strings.HasPrefix(w.tick(), string(flaggerv1.CanaryPhasePromoting)) {
			break
		}
	}
	if c := w.canary(); c.Status.Phase != flaggerv1.CanaryPhasePromoting {
		t.Fatalf("phase %s, want Promoting", c.Status.Phase)
	}
	w.release(imageV3)
	w.now = w.now.Add(testInterval)
	res, err := w.r.Reconcile(w.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNS, Name: testName}})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.state(); !strings.HasPrefix(got, string(flaggerv1.CanaryPhaseSucceeded)) {
		t.Fatalf("after the promotion's last pass: %q, want Succeeded", got)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 5*time.Second {
		t.Errorf("the promotion's last pass comes back after %v, with a newer revision waiting", res.RequeueAfter)
	}
	if img := w.primaryImage(); img != imageV2 {
		t.Errorf("primary image %s, want the promoted %s", img, imageV2)
	}
	w.rollout()
	if got := w.tick(); !strings.HasPrefix(got, string(flaggerv1.CanaryPhaseProgressing)) {
		t.Errorf("the next pass: %q, want the newer revision Progressing", got)
	}
}
