package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/internal/contract"
)

const (
	revA = "4f3a2c1b9e0d77aa11bb22cc33dd44ee"
	revB = "9a8b7c6d5e4f0011223344556677889900"
)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(testClock.Add(-d)) }

// podinfo is an istio Canary paused at weight 20 of 50 with one failed metric.
func podinfo() *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", UID: "uid-podinfo", CreationTimestamp: ago(3 * 24 * time.Hour)},
		Spec: flaggerv1.CanarySpec{
			Provider:  "istio",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis: &flaggerv1.CanaryAnalysis{
				Interval: "1m", Threshold: 5, StepWeight: 10, MaxWeight: 50,
				Metrics: []flaggerv1.CanaryMetric{
					{Name: "request-success-rate", Interval: "1m", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
					{Name: "request-duration", Interval: "1m", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
				},
				Webhooks: []flaggerv1.CanaryWebhook{
					{Name: "approve-rollout", Type: flaggerv1.ConfirmRolloutHook, URL: "http://gate/approve"},
					{Name: "approve-promotion", Type: flaggerv1.ConfirmPromotionHook, URL: "http://gate/promote"},
					{Name: "load-test", Type: flaggerv1.RolloutHook, URL: "http://loadtester/"},
				},
			},
		},
		Status: flaggerv1.CanaryStatus{
			Phase: flaggerv1.CanaryPhaseProgressing, CanaryWeight: 20, FailedChecks: 1,
			LastAppliedSpec: revA, LastPromotedSpec: revB, LastTransitionTime: ago(time.Minute),
			Conditions: []flaggerv1.CanaryCondition{{Type: flaggerv1.PromotedType, Status: corev1.ConditionUnknown, Reason: "Progressing", Message: "Analysis paused by alice."}},
			LastRequest: &flaggerv1.CanaryRequestStatus{ID: "1d6f", Action: flaggerv1.RequestPause, Revision: revA, Outcome: flaggerv1.RequestHonoured,
				Message: "analysis paused", User: "alice", Time: ago(2 * time.Minute)},
			Paused: &flaggerv1.CanaryPauseStatus{Revision: revA, Since: ago(2 * time.Minute)},
			LastCheck: &flaggerv1.CanaryCheckStatus{Revision: revA, Time: ago(3 * time.Minute), Metrics: []flaggerv1.CanaryMetricResult{
				{Name: "request-success-rate", Value: "99.7", Passed: true},
				{Name: "request-duration", Value: "612", Passed: false, Message: "metric request-duration 612 > 500"},
			}},
		},
	}
}

// backend is a blue/green Canary on the kubernetes provider whose release failed.
func backend() *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "test", UID: "uid-backend", CreationTimestamp: ago(90 * time.Minute)},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "backend"},
			Service:   flaggerv1.CanaryService{Port: 8080},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: "30s", Threshold: 2, Iterations: 5},
		},
		Status: flaggerv1.CanaryStatus{
			Phase: flaggerv1.CanaryPhaseFailed, Iterations: 3, FailedChecks: 2, LastAppliedSpec: revA, LastPromotedSpec: revB,
			Conditions: []flaggerv1.CanaryCondition{{Type: flaggerv1.PromotedType, Status: corev1.ConditionFalse, Reason: "Failed",
				Message: "Canary analysis failed, Deployment scaled to zero: Rolling back backend.test failed checks threshold reached 2"}},
		},
	}
}

// frontend is a Canary of another namespace, promoted.
func frontend() *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "frontend", Namespace: "prod", UID: "uid-frontend", CreationTimestamp: ago(400 * 24 * time.Hour)},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "frontend"},
			Service:   flaggerv1.CanaryService{Port: 80},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: "1m", Threshold: 3, StepWeights: []int{5, 25, 50}},
		},
		Status: flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseSucceeded, LastAppliedSpec: revB, LastPromotedSpec: revB},
	}
}

// queued is a new Canary, backend's spec under another name, waiting for its turn to
// initialise: no phase yet.
func queued() *flaggerv1.Canary {
	const msg = "Waiting for a turn to initialise (-initialization-rate)"
	c := backend()
	c.Name, c.UID, c.CreationTimestamp, c.Spec.TargetRef.Name = "queued", "uid-queued", ago(5*time.Second), "queued"
	c.Status = flaggerv1.CanaryStatus{Conditions: []flaggerv1.CanaryCondition{
		{Type: flaggerv1.ReconcilingType, Status: corev1.ConditionTrue, Reason: flaggerv1.ReasonWaitingForTurn, Message: msg},
		{Type: flaggerv1.ReadyType, Status: corev1.ConditionFalse, Reason: flaggerv1.ReasonWaitingForTurn, Message: msg},
	}}
	return c
}

func deployment(name string, replicas, ready int32, annotations map[string]string, template map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: template},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/stefanprodan/podinfo:6.0.1"}}},
			},
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"}, Spec: corev1.ServiceSpec{Selector: selector}}
}

func event(c *flaggerv1.Canary, n int, typ, msg string, at time.Duration) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", c.Name, n), Namespace: c.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Canary", Name: c.Name, Namespace: c.Namespace, UID: c.UID},
		Type:           typ, Reason: "Synced", Message: msg, LastTimestamp: ago(at),
	}
}

// cluster holds the three Canaries and podinfo's objects, with its VirtualService at 80/20
// made by Herald's own router.
func cluster(t *testing.T) *harness {
	t.Helper()
	p := podinfo()
	h := newHarness(t, p, backend(), frontend(),
		deployment("podinfo", 2, 2, map[string]string{contract.AnnotationRevision: revA}, nil),
		deployment("podinfo-primary", 2, 2, nil, map[string]string{contract.AnnotationPromotedRevision: revB}),
		service("podinfo", map[string]string{"app": "podinfo-primary"}),
		service("podinfo-primary", map[string]string{"app": "podinfo-primary"}),
		service("podinfo-canary", map[string]string{"app": "podinfo"}),
		event(p, 1, "Normal", "New revision detected! Scaling up podinfo.test", 10*time.Minute),
		event(p, 2, "Normal", "Advance podinfo.test canary weight 10", 8*time.Minute),
		event(p, 3, "Normal", "Advance podinfo.test canary weight 20", 6*time.Minute),
		event(p, 4, "Warning", "Halt advancement podinfo.test: metric request-duration 612 > 500", 3*time.Minute),
		event(p, 5, "Normal", "Analysis of podinfo.test paused by alice", 2*time.Minute),
		event(backend(), 1, "Warning", "Canary failed! Scaling down backend.test", time.Minute),
	)
	ctx := context.Background()
	r := router.For("istio", h.cl)
	if err := r.Reconcile(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, p, 80, 20, false); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGetGolden(t *testing.T) {
	h := cluster(t)
	for _, tc := range []struct {
		file string
		args []string
	}{
		{"get.golden", []string{"get"}},
		{"get-all-namespaces.golden", []string{"get", "-A"}},
		{"get-wide.golden", []string{"get", "-o", "wide"}},
	} {
		if code := h.run(tc.args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, h.err.String())
		}
		golden(t, tc.file, h.out.String())
	}
}

func TestStatusGolden(t *testing.T) {
	h := cluster(t)
	if code := h.run("status", "podinfo"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	golden(t, "status-podinfo.golden", h.out.String())
	if code := h.run("status", "backend"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	golden(t, "status-backend.golden", h.out.String())
}

func TestGetShowsANewCanaryWaitingForItsTurn(t *testing.T) {
	h := newHarness(t, queued())
	if code := h.run("get", "-o", "wide"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the header and one row, got:\n%s", h.out.String())
	}
	row := strings.Fields(lines[1])
	if row[0] != "queued" || row[1] != "WaitingForTurn" || !strings.HasSuffix(lines[1], "Waiting for a turn to initialise (-initialization-rate)") {
		t.Errorf("the waiting Canary's row does not say it waits for its turn:\n%s", h.out.String())
	}
}

func TestGetStructuredOutput(t *testing.T) {
	h := cluster(t)
	if code := h.run("get", "podinfo", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	var c flaggerv1.Canary
	if err := json.Unmarshal(h.out.Bytes(), &c); err != nil {
		t.Fatalf("-o json: %v\n%s", err, h.out.String())
	}
	if c.Kind != "Canary" || c.APIVersion != "flagger.app/v1beta1" || c.Status.CanaryWeight != 20 {
		t.Errorf("-o json gave %s %s weight %d", c.APIVersion, c.Kind, c.Status.CanaryWeight)
	}
	if code := h.run("get", "-o", "yaml"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	var list struct {
		Kind  string
		Items []flaggerv1.Canary
	}
	if err := yaml.Unmarshal(h.out.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Name != "backend" || list.Items[0].Kind != "Canary" {
		t.Errorf("-o yaml listed %+v", list)
	}
	if code := h.run("get", "-o", "nonsense"); code == 0 || !strings.Contains(h.err.String(), "nonsense") {
		t.Errorf("an unknown -o was accepted (exit %d): %s", code, h.err.String())
	}
}

func TestGetUnknownCanary(t *testing.T) {
	h := cluster(t)
	if code := h.run("get", "nope"); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	contains(t, h.err.String(), `error: canary "nope" not found in namespace "test"`)
	if code := h.run("status", "nope"); code != 1 {
		t.Errorf("status: exit %d, want 1", code)
	}
	h.ns = "empty"
	if code := h.run("get"); code != 0 {
		t.Errorf("get in an empty namespace: exit %d", code)
	}
	contains(t, h.err.String(), "No Canaries found in empty namespace.")
}

// Names and messages come from the cluster: a hostile one must not reach the terminal as
// escape sequences or break the table's rows.
func TestOutputEscapesTerminalSequences(t *testing.T) {
	c := backend()
	c.Status.Conditions[0].Message = "evil \x1b[2J\x1b]0;title\x07 line\nbreak\ttab"
	h := newHarness(t, c)
	if code := h.run("get", "-o", "wide"); code != 0 {
		t.Fatal(h.err.String())
	}
	if strings.Contains(h.out.String(), "\x1b") {
		t.Errorf("an escape sequence reached the output: %q", h.out.String())
	}
	if n := strings.Count(h.out.String(), "\n"); n != 2 {
		t.Errorf("%d lines, want a header and one row: %q", n, h.out.String())
	}
}

func TestColoursOnlyWhenAsked(t *testing.T) {
	if got := colorize("x  Failed  y", false); got != "x  Failed  y" {
		t.Errorf("colour without a terminal: %q", got)
	}
	if got := colorize("x  Failed  y", true); got != "x  "+red+"Failed"+reset+"  y" {
		t.Errorf("colour: %q", got)
	}
}

func TestStatusWatchEndsWithTheRelease(t *testing.T) {
	for _, tc := range []struct {
		phase flaggerv1.CanaryPhase
		code  int
	}{{flaggerv1.CanaryPhaseSucceeded, 0}, {flaggerv1.CanaryPhaseFailed, 1}} {
		t.Run(string(tc.phase), func(t *testing.T) {
			h := cluster(t)
			p := podinfo()
			p.Status.Paused = nil
			done := make(chan int, 1)
			go func() { done <- h.run("status", "podinfo", "-w") }()
			time.Sleep(300 * time.Millisecond)
			select {
			case code := <-done:
				t.Fatalf("status -w ended (exit %d) while the release runs: %s", code, h.err.String())
			default:
			}
			var c flaggerv1.Canary
			if err := h.cl.Get(context.Background(), types.NamespacedName{Namespace: "test", Name: "podinfo"}, &c); err != nil {
				t.Fatal(err)
			}
			c.Status.Phase = tc.phase
			if err := h.cl.Status().Update(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != tc.code {
					t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, h.err.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("status -w did not end with the release")
			}
		})
	}
}

func TestStatusWatchWaitsForARevisionNotTakenIn(t *testing.T) {
	f := frontend()
	f.Namespace = "test"
	target := deployment("frontend", 1, 1, map[string]string{contract.AnnotationRevision: "c0ffee"}, nil)
	h := newHarness(t, f, target)
	code := make(chan int, 1)
	go func() { code <- h.run("status", "frontend", "-w", "--timeout", "500ms") }()
	select {
	case c := <-code:
		if c != 1 || !strings.Contains(h.err.String(), "timed out") {
			t.Errorf("exit %d (%s): a Succeeded Canary whose target has a new revision is not done", c, h.err.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--timeout was not honoured")
	}
}

var _ client.Object = (*flaggerv1.Canary)(nil)

// get -w off a terminal: the table, then one row per change, as kubectl get -w.
func TestGetWatchPrintsARowPerChange(t *testing.T) {
	h := cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- h.runCtx(ctx, "get", "-w") }()
	time.Sleep(300 * time.Millisecond)
	var c flaggerv1.Canary
	if err := h.cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "backend"}, &c); err != nil {
		t.Fatal(err)
	}
	c.Status.Phase, c.Status.Iterations = flaggerv1.CanaryPhaseProgressing, 1
	if err := h.cl.Status().Update(ctx, &c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want the header, two rows and one change, got:\n%s", h.out.String())
	}
	if !strings.HasPrefix(lines[3], "backend") || !strings.Contains(lines[3], "Progressing") || !strings.Contains(lines[3], "1/5") {
		t.Errorf("change row %q", lines[3])
	}
}
