package canary

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// TestWaitsForMetricTemplate: a Canary applied before its MetricTemplate (kubectl apply -f dir/
// goes alphabetically) is Stalled, naming the field and the template, and proceeds on its own
// once the template exists.
func TestWaitsForMetricTemplate(t *testing.T) {
	w := newWorld(t, "kubernetes", nil)
	c := w.canary()
	c.Spec.Analysis = analysisWith(func(a *flaggerv1.CanaryAnalysis) {
		a.Iterations = 1
		a.Metrics = []flaggerv1.CanaryMetric{{Name: "errors", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate"}}}
	})
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := w.reconcile(); err != nil {
		t.Fatalf("pass: %v", err)
	}
	got := w.canary()
	stall := flaggerv1.FindCondition(got.Status.Conditions, flaggerv1.StalledType)
	if stall == nil || stall.Status != corev1.ConditionTrue || stall.Reason != "MetricTemplateNotFound" ||
		!strings.Contains(stall.Message, "spec.analysis.metrics[0].templateRef: MetricTemplate test/error-rate not found") {
		t.Fatalf("conditions %+v: want Stalled MetricTemplateNotFound naming the field", got.Status.Conditions)
	}
	if got.Status.Phase != "" {
		t.Fatalf("phase %q: nothing may start before the template exists", got.Status.Phase)
	}
	w.wantEvent("Warning spec.analysis.metrics[0].templateRef: MetricTemplate test/error-rate not found, waiting for it", 1)

	tmpl := &flaggerv1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "error-rate"},
		Spec: flaggerv1.MetricTemplateSpec{Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: w.prom.srv.URL}, Query: "1"}}
	if err := w.cl.Create(w.ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	w.reconcile()
	if s := w.tick(); !strings.HasPrefix(s, "Initialized") {
		t.Fatalf("after the template appeared: %q, want Initialized", s)
	}
	if stall := flaggerv1.FindCondition(w.canary().Status.Conditions, flaggerv1.StalledType); stall != nil {
		t.Errorf("still Stalled: %+v", stall)
	}
}

// TestNoCrossNamespaceRefs: with -no-cross-namespace-refs, a Canary naming a MetricTemplate of
// another namespace does not run, as in Flagger; it is Stalled, naming the field.
func TestNoCrossNamespaceRefs(t *testing.T) {
	w := newWorld(t, "kubernetes", nil)
	w.r.Options.NoCrossNamespaceRefs = true
	c := w.canary()
	c.Spec.Analysis = analysisWith(func(a *flaggerv1.CanaryAnalysis) {
		a.Iterations = 1
		a.Metrics = []flaggerv1.CanaryMetric{{Name: "errors", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate", Namespace: "shared"}}}
	})
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	tmpl := &flaggerv1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: "shared", Name: "error-rate"},
		Spec: flaggerv1.MetricTemplateSpec{Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: w.prom.srv.URL}, Query: "1"}}
	if err := w.cl.Create(w.ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	if err := w.reconcile(); err != nil {
		t.Fatal(err)
	}
	stall := flaggerv1.FindCondition(w.canary().Status.Conditions, flaggerv1.StalledType)
	if stall == nil || stall.Reason != "CrossNamespaceRef" || !strings.Contains(stall.Message, "spec.analysis.metrics[0].templateRef.namespace") {
		t.Fatalf("conditions %+v: want Stalled CrossNamespaceRef", w.canary().Status.Conditions)
	}
	w.r.Options.NoCrossNamespaceRefs = false
	w.reconcile()
	if s := w.tick(); !strings.HasPrefix(s, "Initialized") {
		t.Fatalf("without the flag: %q, want Initialized", s)
	}
}

// TestReferenceOutsideTheWatchedNamespace: with -namespace the cache covers one namespace, and
// reading a MetricTemplate of another one from it fails with an error that is not NotFound.
// The reference is then read from the API server, as the metric checks read it, instead of the
// Canary failing every pass.
func TestReferenceOutsideTheWatchedNamespace(t *testing.T) {
	w := newWorld(t, "kubernetes", nil)
	w.r.Client = interceptor.NewClient(w.cl, interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if key.Namespace != testNS {
				return fmt.Errorf("unable to get: %s because of unknown namespace for the cache", key)
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	})
	tmpl := &flaggerv1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: "flagger-system", Name: "error-rate"},
		Spec: flaggerv1.MetricTemplateSpec{Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: w.prom.srv.URL}, Query: "1"}}
	if err := w.cl.Create(w.ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	c := w.canary()
	c.Spec.Analysis = analysisWith(func(a *flaggerv1.CanaryAnalysis) {
		a.Iterations = 1
		a.Metrics = []flaggerv1.CanaryMetric{{Name: "errors", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate", Namespace: "flagger-system"}}}
	})
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := w.reconcile(); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if s := w.tick(); !strings.HasPrefix(s, "Initialized") {
		t.Fatalf("%q, want Initialized", s)
	}
}
