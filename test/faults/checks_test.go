package faults

import (
	"path/filepath"
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// The checks themselves are tested here without a cluster: each must report what it names,
// or the suite could pass with Herald broken.

func testTimeline(t *testing.T) {
	t.Helper()
	if log == nil {
		log = newTimeline(filepath.Join(t.TempDir(), "timeline.log"))
	}
}

func pod(name string, labels map[string]string, ready, terminating bool) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if terminating {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func svc(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
}

func split(primary, canary int32) *istionetworking.VirtualService {
	return &istionetworking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: istioapi.VirtualService{Http: []*istioapi.HTTPRoute{{
		Route: []*istioapi.HTTPRouteDestination{
			{Destination: &istioapi.Destination{Host: "app-primary"}, Weight: primary},
			{Destination: &istioapi.Destination{Host: "app-canary.ns.svc.cluster.local"}, Weight: canary},
		},
	}}}}
}

func TestUnreadyTraffic(t *testing.T) {
	r := &routing{
		vs: map[string]*istionetworking.VirtualService{},
		services: map[string]*corev1.Service{
			"app":         svc("app", map[string]string{"app": "app-primary"}),
			"app-primary": svc("app-primary", map[string]string{"app": "app-primary"}),
			"app-canary":  svc("app-canary", map[string]string{"app": "app"}),
		},
	}
	primaryUp := []corev1.Pod{pod("p1", map[string]string{"app": "app-primary"}, true, false)}
	canaryDown := []corev1.Pod{pod("c1", map[string]string{"app": "app"}, false, false), pod("c2", map[string]string{"app": "app"}, true, true)}
	pods := append(append([]corev1.Pod{}, primaryUp...), canaryDown...)
	vsApex, svcApex := apex{name: "app", virtualService: true}, apex{name: "app"}

	for _, tc := range []struct {
		name       string
		vs         *istionetworking.VirtualService
		pods       []corev1.Pod
		a          apex
		wantUnread bool
	}{
		{"all on the primary", split(100, 0), pods, vsApex, false},
		{"weight on a canary with no ready pod (one unready, one terminating)", split(90, 10), pods, vsApex, true},
		{"the only destination gets everything whatever its weight", &istionetworking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec: istioapi.VirtualService{Http: []*istioapi.HTTPRoute{{Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: "app-canary"}}}}}}}, pods, vsApex, true},
		{"a destination that does not exist", &istionetworking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec: istioapi.VirtualService{Http: []*istioapi.HTTPRoute{{Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: "gone"}}}}}}}, pods, vsApex, true},
		{"no VirtualService sends nothing", nil, pods, vsApex, false},
		{"a Service apex with ready pods", nil, pods, svcApex, false},
		{"a Service apex whose pods are not ready", nil, canaryDown, svcApex, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delete(r.vs, "app")
			if tc.vs != nil {
				r.vs["app"] = tc.vs
			}
			why := unreadyTraffic(tc.a, r, tc.pods)
			if (why != "") != tc.wantUnread {
				t.Errorf("unreadyTraffic = %q, want unready %v", why, tc.wantUnread)
			}
		})
	}
}

func TestStableComparesWhatAnApexRoutesThrough(t *testing.T) {
	a := apex{name: "app", virtualService: true}
	mk := func(vsRV, canaryRV, otherRV string) *routing {
		vs := split(50, 50)
		vs.ResourceVersion = vsRV
		c := svc("app-canary", nil)
		c.ResourceVersion = canaryRV
		o := svc("unrelated", nil)
		o.ResourceVersion = otherRV
		return &routing{vs: map[string]*istionetworking.VirtualService{"app": vs}, services: map[string]*corev1.Service{"app-canary": c, "unrelated": o}}
	}
	if !stable(a, mk("1", "1", "1"), mk("1", "1", "2")) {
		t.Error("an unrelated Service changing makes the look unsettled")
	}
	if stable(a, mk("1", "1", "1"), mk("2", "1", "1")) || stable(a, mk("1", "1", "1"), mk("1", "2", "1")) {
		t.Error("a change of the VirtualService or of a Service it routes to goes unnoticed")
	}
}

func TestCheckStepsReportsRepeats(t *testing.T) {
	testTimeline(t)
	at := time.Now()
	ev := func(d time.Duration, checksum, msg string) hookCall {
		return hookCall{at: at.Add(d), path: hookEvent, namespace: "ns", canary: "app", checksum: checksum, message: msg, code: 200}
	}
	call := func(d time.Duration, path, checksum string, code int) hookCall {
		return hookCall{at: at.Add(d), path: path, namespace: "ns", canary: "app", checksum: checksum, code: code}
	}
	clean := []hookCall{
		ev(0, "r1", "New revision detected! Scaling up app.ns"),
		ev(time.Second, "r1", "Advance app.ns canary weight 30"),
		ev(2*time.Second, "r1", "Halt app.ns advancement waiting for approval"), // repeats are fine
		ev(3*time.Second, "r1", "Halt app.ns advancement waiting for approval"),
		ev(4*time.Second, "r2", "Advance app.ns canary weight 30"), // another revision
		call(0, hookPre, "r1", 0),                                  // hung, then retried
		call(time.Second, hookPre, "r1", 200),
		call(0, hookRollout, "r1", 200),
		call(interval, hookRollout, "r1", 200),
	}
	if v := checkSteps(clean); len(v) != 0 {
		t.Fatalf("violations in a clean run: %v", v)
	}
	for name, extra := range map[string]hookCall{
		"an advance twice": ev(5*time.Second, "r1", "Advance app.ns canary weight 30"),
		"the same advance in another revision, twice": ev(5*time.Second, "r2", "Advance app.ns canary weight 30"),
		"a pre-rollout hook twice":                    call(20*time.Second, hookPre, "r1", 200),
		"a rollout step run twice":                    call(interval+time.Second, hookRollout, "r1", 200),
		"a post-rollout hook twice":                   call(30*time.Second, hookPost, "r1", 200),
	} {
		calls := append(append([]hookCall{}, clean...), extra)
		if extra.path == hookPost {
			calls = append(calls, call(40*time.Second, hookPost, "r1", 204))
		}
		if v := checkSteps(calls); len(v) != 1 || v[0].kind != violationTwice {
			t.Errorf("%s: got %v, want one %q", name, v, violationTwice)
		}
	}
}

func TestCheckCanariesReportsLostStatus(t *testing.T) {
	testTimeline(t)
	canary := func(phase flaggerv1.CanaryPhase, rev string, weight int) flaggerv1.Canary {
		c := flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", UID: types.UID("u1")}}
		c.Status.Phase, c.Status.LastAppliedSpec, c.Status.CanaryWeight = phase, rev, weight
		return c
	}
	for _, tc := range []struct {
		name string
		seq  []flaggerv1.Canary
		want int
	}{
		{"a normal run", []flaggerv1.Canary{canary("Initialized", "r0", 0), canary("Progressing", "r1", 0), canary("Progressing", "r1", 30),
			canary("Promoting", "r1", 30), canary("Finalising", "r1", 0), canary("Succeeded", "r1", 0), canary("Progressing", "r2", 0)}, 0},
		{"the weight goes back", []flaggerv1.Canary{canary("Progressing", "r1", 30), canary("Progressing", "r1", 0)}, 1},
		{"the phase goes back", []flaggerv1.Canary{canary("Promoting", "r1", 30), canary("Progressing", "r1", 30)}, 1},
		{"a failed run succeeds", []flaggerv1.Canary{canary("Failed", "r1", 0), canary("Succeeded", "r1", 0)}, 1},
		{"an old revision comes back", []flaggerv1.Canary{canary("Succeeded", "r1", 0), canary("Progressing", "r2", 0), canary("Succeeded", "r1", 0)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sampler{canaries: map[string]*canaryTrack{}}
			for _, c := range tc.seq {
				s.checkCanaries(time.Now(), []flaggerv1.Canary{c})
			}
			if len(s.violations) != tc.want {
				t.Errorf("violations %v, want %d", s.violations, tc.want)
			}
		})
	}
}

func TestPlanDependsOnlyOnTheSeed(t *testing.T) {
	a, b := newPlan(7, 2, streamCanaries()), newPlan(7, 2, streamCanaries())
	if a.String() != b.String() || len(a.faults) != 16 {
		t.Errorf("the same seed gives different plans (or not 2 rounds of 8 faults):\n%s\n%s", a, b)
	}
	if c := newPlan(8, 2, streamCanaries()); c.String() == a.String() {
		t.Error("another seed gives the same plan")
	}
	for _, f := range a.faults {
		if f.kind == faultKillLeader && f.canary == "skipper" {
			t.Error("a leader kill waits for a step of the skipAnalysis Canary, which has none")
		}
	}
}

func TestCheckIdleReportsAnIdleTargetRunningPods(t *testing.T) {
	testTimeline(t)
	d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: map[string]string{contract.AnnotationIdle: "r1"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}}}
	c := flaggerv1.Canary{Spec: flaggerv1.CanarySpec{TargetRef: flaggerv1.LocalObjectReference{Name: "app"}, Analysis: &flaggerv1.CanaryAnalysis{Interval: "10s"}}}
	running := []corev1.Pod{pod("a", map[string]string{"app": "app"}, true, false), pod("b", map[string]string{"app": "app-primary"}, true, false)}
	leaving := []corev1.Pod{pod("a", map[string]string{"app": "app"}, true, true)}
	t0 := time.Now()
	for _, tc := range []struct {
		name  string
		looks [][]corev1.Pod
		gap   time.Duration
		want  int
	}{
		{"pods for longer than the interval", [][]corev1.Pod{running, running, running}, 6 * time.Second, 1},
		{"pods for less than the interval", [][]corev1.Pod{running, running, nil}, 4 * time.Second, 0},
		{"terminating pods do not run", [][]corev1.Pod{leaving, leaving, leaving}, 6 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sampler{idle: map[string]*idleEpisode{}}
			for i, pods := range tc.looks {
				s.checkIdle(t0.Add(time.Duration(i)*tc.gap), []appsv1.Deployment{d}, pods, []flaggerv1.Canary{c})
			}
			if len(s.violations) != tc.want {
				t.Errorf("violations %v, want %d", s.violations, tc.want)
			}
		})
	}
}
