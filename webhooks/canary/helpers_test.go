/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// corpusDir holds Canary manifests taken from Flagger's documentation.
const corpusDir = "../../../shared/compat/flagger-docs-canaries"

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := flaggerv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func fakeClientBuilder(t testing.TB) *fake.ClientBuilder {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(testScheme(t))
}

func fakeReader(t testing.TB, objs ...client.Object) client.Reader {
	t.Helper()
	return fakeClientBuilder(t).WithObjects(objs...).Build()
}

// deployment returns an apps/v1 Deployment whose selector and pod template use labels.
func deployment(ns, name string, selector, podLabels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "podinfo:1"}}},
			},
		},
	}
}

// podinfo returns a Deployment selected by app: <name>.
func statefulSet(ns, name, governing string) *appsv1.StatefulSet {
	d := podinfo(ns, name)
	return &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{
		Selector: d.Spec.Selector, Template: d.Spec.Template, ServiceName: governing}}
}

func podinfo(ns, name string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return deployment(ns, name, l, map[string]string{"app": name})
}

func metricTemplate(ns, name string) *flaggerv1.MetricTemplate {
	return &flaggerv1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: flaggerv1.MetricTemplateSpec{
			Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: "http://prometheus:9090"},
			Query:    `sum(rate(x{namespace="{{ namespace }}"}[{{ interval }}]))`,
		},
	}
}

func alertProvider(ns, name string) *flaggerv1.AlertProvider {
	return &flaggerv1.AlertProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       flaggerv1.AlertProviderSpec{Type: "slack", Address: "https://hooks.slack.com/services/x"},
	}
}

type corpusCanary struct {
	file   string
	canary *flaggerv1.Canary
}

func loadCorpus(t testing.TB) []corpusCanary {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", corpusDir)
	}
	out := make([]corpusCanary, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := &flaggerv1.Canary{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Namespace == "" {
			c.Namespace = metav1.NamespaceDefault
		}
		out = append(out, corpusCanary{file: filepath.Base(f), canary: c})
	}
	return out
}

// dependencies returns the objects a Canary refers to: its target Deployment and the
// MetricTemplates and AlertProviders it names.
func dependencies(c *flaggerv1.Canary) []client.Object {
	objs := []client.Object{podinfo(c.Namespace, c.Spec.TargetRef.Name)}
	a := c.GetAnalysis()
	if a == nil {
		return objs
	}
	nsOr := func(ns string) string {
		if ns == "" {
			return c.Namespace
		}
		return ns
	}
	seen := map[string]bool{}
	for _, m := range a.Metrics {
		if r := m.TemplateRef; r != nil && !seen["mt/"+nsOr(r.Namespace)+"/"+r.Name] {
			seen["mt/"+nsOr(r.Namespace)+"/"+r.Name] = true
			objs = append(objs, metricTemplate(nsOr(r.Namespace), r.Name))
		}
	}
	for _, al := range a.Alerts {
		r := al.ProviderRef
		if !seen["ap/"+nsOr(r.Namespace)+"/"+r.Name] {
			seen["ap/"+nsOr(r.Namespace)+"/"+r.Name] = true
			objs = append(objs, alertProvider(nsOr(r.Namespace), r.Name))
		}
	}
	return objs
}

// causes returns the field paths of an Invalid status error, or fails the test.
func causes(t *testing.T, err error) []string {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want an API status error, got %T: %v", err, err)
	}
	if se.ErrStatus.Reason != metav1.StatusReasonInvalid || se.ErrStatus.Details == nil {
		t.Fatalf("want an Invalid status with details, got %+v", se.ErrStatus)
	}
	var fields []string
	for _, c := range se.ErrStatus.Details.Causes {
		fields = append(fields, c.Field)
	}
	return fields
}

func containsAll(t *testing.T, what string, got []string, want []string) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: %q not found in %q", what, w, got)
		}
	}
}

// panicReader fails the test on any read.
type panicReader struct{ t *testing.T }

func (r panicReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	r.t.Fatal("unexpected cache read")
	return nil
}

func (r panicReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	r.t.Fatal("unexpected cache list")
	return nil
}
