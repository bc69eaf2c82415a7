package main

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
	canaryhook "github.com/herald-rollouts/herald/webhooks/canary"
)

// TestFlaggerDifferences checks the README's table of deliberate differences from Flagger
// against the code: every row has a check here, every check a row, and every check passes.
// Behaviour only a reconcile shows is checked by the controller's tests, named here and
// required to exist.
func TestFlaggerDifferences(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "<!-- flagger-differences:start -->")
	table, _, ok2 := strings.Cut(table, "<!-- flagger-differences:end -->")
	if !ok || !ok2 {
		t.Fatal("README has no flagger-differences table")
	}
	var ids []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|").FindAllStringSubmatch(table, -1) {
		ids = append(ids, m[1])
	}
	checks := differenceChecks(t)
	for _, id := range ids {
		check, ok := checks[id]
		if !ok {
			t.Errorf("README row %q has no check in TestFlaggerDifferences", id)
			continue
		}
		t.Run(id, check)
	}
	for id := range checks {
		if !slices.Contains(ids, id) {
			t.Errorf("check %q has no row in the README's table", id)
		}
	}
}

func differenceChecks(t *testing.T) map[string]func(*testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "podinfo"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "podinfod", Image: "podinfo:1"}}},
	}
	target := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo", Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: "{}", "deployment.kubernetes.io/revision": "3", "app.kubernetes.io/part-of": "shop",
		}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}}, Template: *tmpl},
	}
	validate := func(t *testing.T, mutate func(c *flaggerv1.Canary)) ([]string, error) {
		t.Helper()
		scheme := runtime.NewScheme()
		_ = clientgoscheme.AddToScheme(scheme)
		_ = flaggerv1.AddToScheme(scheme)
		c := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
			Spec: flaggerv1.CanarySpec{
				Provider:  "kubernetes",
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis:  &flaggerv1.CanaryAnalysis{Interval: "1m", Threshold: 2, Iterations: 3},
			},
		}
		mutate(c)
		reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(target.DeepCopy()).Build()
		return canaryhook.NewCanaryValidator(canaryhook.Options{Reader: reader}).ValidateCreate(context.Background(), c)
	}
	warned := func(t *testing.T, mutate func(c *flaggerv1.Canary), want string) {
		t.Helper()
		warns, err := validate(t, mutate)
		if err != nil || !slices.ContainsFunc(warns, func(w string) bool { return strings.Contains(w, want) }) {
			t.Fatalf("want accepted with a warning %q; warnings %q, error %v", want, warns, err)
		}
	}
	controllerTest := func(name string) func(*testing.T) {
		return func(t *testing.T) {
			if !hasTestFunc(t, "../../controllers/canary", name) {
				t.Fatalf("controllers/canary has no %s, which checks this row", name)
			}
		}
	}
	return map[string]func(*testing.T){
		"revision": func(t *testing.T) {
			rev, err := contract.Revision(tmpl, nil)
			if err != nil || !contract.IsRevision(rev) {
				t.Fatalf("revision %q, %v", rev, err)
			}
		},
		"binary-data": func(t *testing.T) {
			bin := map[string][]byte{"k": []byte("v")}
			if contract.ConfigChecksum(nil, bin) == contract.ConfigChecksum(nil, nil) {
				t.Fatal("binaryData does not count")
			}
			cm := workloads.PrimaryConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, BinaryData: bin}, nil)
			if string(cm.BinaryData["k"]) != "v" {
				t.Fatal("binaryData not copied")
			}
		},
		"label-prefix": func(t *testing.T) {
			p := workloads.PrimaryDeployment(target, nil, "app", "podinfo", nil, nil, workloads.LabelPrefixes{"*"})
			if _, ok := p.Annotations[corev1.LastAppliedConfigAnnotation]; ok || p.Annotations["app.kubernetes.io/part-of"] != "shop" || len(p.Annotations) != 1 {
				t.Fatalf("primary annotations with *: %v", p.Annotations)
			}
			cm := workloads.PrimaryConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{"app.kubernetes.io/x": "y"}}},
				workloads.LabelPrefixes{"app.kubernetes.io"})
			if cm.Annotations["app.kubernetes.io/x"] != "y" {
				t.Fatalf("config copy annotations %v", cm.Annotations)
			}
		},
		"threadiness": func(t *testing.T) {
			if o := parseFlags(t); o.flagger.threadiness != 8 {
				t.Fatalf("-threadiness default %d", o.flagger.threadiness)
			}
		},
		"log-level": func(t *testing.T) {
			if o := parseFlags(t); o.logLevel != "info" {
				t.Fatalf("-log-level default %q", o.logLevel)
			}
		},
		"leader-election-namespace": func(t *testing.T) {
			if o := parseFlags(t); o.leaderElectionNamespace != "" {
				t.Fatalf("-leader-election-namespace default %q, want Herald's own namespace", o.leaderElectionNamespace)
			}
		},
		"mesh-provider": func(t *testing.T) {
			_, err := validate(t, func(c *flaggerv1.Canary) { c.Spec.Provider = "contour" })
			if err == nil || !strings.Contains(err.Error(), `"contour"`) {
				t.Fatalf("provider contour: %v", err)
			}
		},
		"keda": func(t *testing.T) {
			_, err := validate(t, func(c *flaggerv1.Canary) {
				c.Spec.AutoscalerRef = &flaggerv1.AutoscalerReference{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "so"}
			})
			if err == nil || !strings.Contains(err.Error(), "KEDA") {
				t.Fatalf("ScaledObject: %v", err)
			}
		},
		"missing-reference": func(t *testing.T) {
			warned(t, func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Metrics = []flaggerv1.CanaryMetric{{Name: "errors", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "later"}}}
			}, "Stalled (MetricTemplateNotFound)")
			controllerTest("TestWaitsForMetricTemplate")(t)
		},
		"threshold": func(t *testing.T) {
			warned(t, func(c *flaggerv1.Canary) { c.Spec.Analysis.Threshold = 0 }, "spec.analysis.threshold: is 0: 1 is used")
		},
		"kubernetes-iterations": func(t *testing.T) {
			warned(t, func(c *flaggerv1.Canary) { c.Spec.Analysis.Iterations = 0 }, "with 10 iterations as Flagger does")
		},
		"traffic-increase-alert": controllerTest("TestFlaggerEventsAndAlerts"),
		"rollback-hook-event": func(t *testing.T) {
			files, _ := filepath.Glob("../../controllers/canary/*.go")
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if !strings.HasSuffix(f, "_test.go") && strings.Contains(string(b), "not signaling a rollback") {
					t.Fatalf("%s emits Flagger's rollback-hook event", f)
				}
			}
		},
		"severity": func(t *testing.T) {
			if !alerts.Wants("", flaggerv1.SeverityInfo) {
				t.Fatal(`severity "" receives nothing`)
			}
		},
		"global-alerts": func(t *testing.T) {
			g := alerts.GlobalFlags{SlackURL: "https://hooks.slack.test/x", MSTeamsURL: "https://teams.test/x"}
			d, err := g.Destinations(func(string) string { return "" })
			if err != nil || len(d) != 2 {
				t.Fatalf("destinations %v, %v", d, err)
			}
		},
		"deletion": func(t *testing.T) {
			if contract.FlaggerFinalizer != "finalizer.flagger.app" {
				t.Fatalf("Flagger's finalizer is %q", contract.FlaggerFinalizer)
			}
			controllerTest("TestTakeOverFromFlagger")(t)
		},
		"daemonset-ready": func(t *testing.T) {
			if workloads.DaemonSetReady(&appsv1.DaemonSet{}, 100, metav1.Now().Time, 0, metav1.Now().Time).Ready {
				t.Fatal("a DaemonSet on no node is ready")
			}
		},
		"conditions": func(t *testing.T) {
			for _, c := range []flaggerv1.CanaryConditionType{flaggerv1.ReadyType, flaggerv1.ReconcilingType, flaggerv1.StalledType} {
				if c == "" {
					t.Fatal("a kstatus condition type is empty")
				}
			}
			controllerTest("TestWaitsForMetricTemplate")(t)
		},
		"statefulset": func(t *testing.T) {
			if _, err := workloads.New("StatefulSet"); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// hasTestFunc reports whether a Go test function named name is declared in dir's test files.
func hasTestFunc(t *testing.T, dir, name string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if obj := file.Scope.Lookup(name); obj != nil {
			return true
		}
	}
	return false
}
