/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package crd

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	heraldv1beta1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// corpusDir holds Canary manifests taken from Flagger's documentation; it sits beside the
// repository.
var corpusDir = filepath.Join("..", "..", "..", "shared", "compat", "flagger-docs-canaries")

const fieldOwner = client.FieldOwner("herald-crd-test")

func ensureNamespace(name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

func decode(manifest []byte) *unstructured.Unstructured {
	data, err := yaml.YAMLToJSON(manifest)
	Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{}
	Expect(u.UnmarshalJSON(data)).To(Succeed())
	return u
}

func apply(u *unstructured.Unstructured) error {
	return k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership)
}

func corpusEntries() []TableEntry {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		// Surfaces as a failing spec instead of an empty table.
		return []TableEntry{Entry("corpus directory "+corpusDir, "")}
	}
	sort.Strings(files)
	entries := make([]TableEntry, 0, len(files))
	for _, f := range files {
		entries = append(entries, Entry(filepath.Base(f), f))
	}
	return entries
}

var _ = Describe("Flagger documentation manifests", func() {
	DescribeTable("are accepted unchanged by server-side apply and read back without pruning",
		func(file string) {
			Expect(file).NotTo(BeEmpty(), "no manifests found in %s", corpusDir)
			data, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			want := decode(data)
			if want.GetNamespace() == "" {
				want.SetNamespace(metav1.NamespaceDefault)
			}
			ensureNamespace(want.GetNamespace())

			Expect(apply(want.DeepCopy())).To(Succeed())
			DeferCleanup(func() {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, want.DeepCopy()))).To(Succeed())
			})

			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(heraldv1beta1.GroupVersion.WithKind(heraldv1beta1.CanaryKind))
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(want), got)).To(Succeed())
			Expect(got.Object["spec"]).To(Equal(want.Object["spec"]), "the stored spec differs from the manifest")
			Expect(got.GetLabels()).To(Equal(want.GetLabels()))
			Expect(got.GetAnnotations()).To(Equal(want.GetAnnotations()))
		},
		corpusEntries(),
	)
})

// baseCanary is a valid Canary that the invalid cases below break one field at a time.
const baseCanary = `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: base
  namespace: crd-validation
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    targetPort: 9898
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      interval: 1m
      thresholdRange:
        min: 99
    webhooks:
    - name: load-test
      url: http://flagger-loadtester.test/
      timeout: 5s
`

func canary(name string, mutate func(obj map[string]any)) *unstructured.Unstructured {
	u := decode([]byte(baseCanary))
	u.SetName(name)
	if mutate != nil {
		mutate(u.Object)
	}
	return u
}

func set(value any, path ...string) func(map[string]any) {
	return func(obj map[string]any) {
		Expect(unstructured.SetNestedField(obj, value, path...)).To(Succeed())
	}
}

func unset(path ...string) func(map[string]any) {
	return func(obj map[string]any) { unstructured.RemoveNestedField(obj, path...) }
}

func all(mutations ...func(map[string]any)) func(map[string]any) {
	return func(obj map[string]any) {
		for _, m := range mutations {
			m(obj)
		}
	}
}

// setItem sets a field of the first item of a list.
func setItem(list []string, field string, value any) func(map[string]any) {
	return func(obj map[string]any) {
		items, found, err := unstructured.NestedSlice(obj, list...)
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		items[0].(map[string]any)[field] = value
		Expect(unstructured.SetNestedSlice(obj, items, list...)).To(Succeed())
	}
}

func ints(v ...int64) []any {
	out := make([]any, len(v))
	for i := range v {
		out[i] = v[i]
	}
	return out
}

var _ = Describe("Canary validation", func() {
	BeforeEach(func() { ensureNamespace("crd-validation") })

	It("accepts the base Canary", func() {
		Expect(apply(canary("valid-base", nil))).To(Succeed())
	})

	DescribeTable("accepts valid settings",
		func(mutate func(map[string]any)) {
			name := fmt.Sprintf("valid-%d", GinkgoParallelProcess()*1000+CurrentSpecReport().LeafNodeLocation.LineNumber)
			Expect(apply(canary(name, mutate))).To(Succeed())
		},
		Entry("threshold above iterations (Flagger's own manifests do this)",
			all(unset("spec", "analysis", "stepWeight"), unset("spec", "analysis", "maxWeight"),
				set(int64(10), "spec", "analysis", "threshold"), set(int64(5), "spec", "analysis", "iterations"))),
		Entry("strictly increasing stepWeights", set(ints(1, 5, 10, 20, 50), "spec", "analysis", "stepWeights")),
		Entry("stepWeight equal to maxWeight", set(int64(50), "spec", "analysis", "stepWeight")),
		Entry("stepWeight with maxWeight 0 (meaning 100)", set(int64(0), "spec", "analysis", "maxWeight")),
		Entry("compound and sub-second durations",
			all(set("1m30s", "spec", "analysis", "interval"), setItem([]string{"spec", "analysis", "webhooks"}, "timeout", "500ms"),
				setItem([]string{"spec", "analysis", "metrics"}, "interval", "2h"), set("1.5s", "spec", "service", "timeout"))),
		Entry("ready thresholds 0 and 100",
			all(set(int64(0), "spec", "analysis", "primaryReadyThreshold"), set(int64(100), "spec", "analysis", "canaryReadyThreshold"))),
		Entry("distinct cookie names", set(map[string]any{"cookieName": "canary", "primaryCookieName": "primary"}, "spec", "analysis", "sessionAffinity")),
		Entry("a provider Herald does not implement (refused later by the webhook)", set("appmesh:v1beta2", "spec", "provider")),
		Entry("no analysis at all", unset("spec", "analysis")),
		Entry("the deprecated canaryAnalysis",
			func(obj map[string]any) {
				spec := obj["spec"].(map[string]any)
				spec["canaryAnalysis"] = spec["analysis"]
				delete(spec, "analysis")
			}),
	)

	DescribeTable("refuses invalid settings with an error naming the field",
		func(mutate func(map[string]any), fieldPaths ...string) {
			name := fmt.Sprintf("invalid-%d", CurrentSpecReport().LeafNodeLocation.LineNumber)
			err := apply(canary(name, mutate))
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			for _, p := range fieldPaths {
				Expect(err.Error()).To(ContainSubstring(p))
			}
		},
		Entry("maxWeight 120", set(int64(120), "spec", "analysis", "maxWeight"), "spec.analysis.maxWeight"),
		Entry("negative stepWeight", set(int64(-1), "spec", "analysis", "stepWeight"), "spec.analysis.stepWeight"),
		Entry("stepWeight above maxWeight", set(int64(60), "spec", "analysis", "stepWeight"),
			"spec.analysis.stepWeight", "stepWeight must not be greater than maxWeight"),
		Entry("stepWeights decreasing", set(ints(10, 5), "spec", "analysis", "stepWeights"),
			"spec.analysis.stepWeights", "must be strictly increasing"),
		Entry("stepWeights repeated", set(ints(10, 10), "spec", "analysis", "stepWeights"),
			"spec.analysis.stepWeights", "must be strictly increasing"),
		Entry("stepWeights item above 100", set(ints(50, 120), "spec", "analysis", "stepWeights"), "spec.analysis.stepWeights[1]"),
		Entry("stepWeightPromotion 101", set(int64(101), "spec", "analysis", "stepWeightPromotion"), "spec.analysis.stepWeightPromotion"),
		Entry("mirrorWeight 101", set(int64(101), "spec", "analysis", "mirrorWeight"), "spec.analysis.mirrorWeight"),
		Entry("threshold 0", set(int64(0), "spec", "analysis", "threshold"), "spec.analysis.threshold"),
		Entry("port 0", set(int64(0), "spec", "service", "port"), "spec.service.port"),
		Entry("port 70000", set(int64(70000), "spec", "service", "port"), "spec.service.port"),
		Entry("port missing", unset("spec", "service", "port"), "spec.service.port", "Required value"),
		Entry("interval abc", set("abc", "spec", "analysis", "interval"), "spec.analysis.interval", "must be a duration"),
		Entry("metric interval in words", setItem([]string{"spec", "analysis", "metrics"}, "interval", "5 minutes"),
			"spec.analysis.metrics[0].interval", "must be a duration"),
		Entry("webhook timeout x", setItem([]string{"spec", "analysis", "webhooks"}, "timeout", "x"),
			"spec.analysis.webhooks[0].timeout", "must be a duration"),
		Entry("service timeout", set("soon", "spec", "service", "timeout"), "spec.service.timeout", "must be a duration"),
		Entry("cookieName equal to primaryCookieName",
			set(map[string]any{"cookieName": "flagger", "primaryCookieName": "flagger"}, "spec", "analysis", "sessionAffinity"),
			"spec.analysis.sessionAffinity.primaryCookieName", "primaryCookieName must differ from cookieName"),
		Entry("primaryReadyThreshold 150", set(int64(150), "spec", "analysis", "primaryReadyThreshold"), "spec.analysis.primaryReadyThreshold"),
		Entry("canaryReadyThreshold 150", set(int64(150), "spec", "analysis", "canaryReadyThreshold"), "spec.analysis.canaryReadyThreshold"),
		Entry("unknown provider", set("envoy", "spec", "provider"), "spec.provider"),
		Entry("unknown target kind", set("ReplicaSet", "spec", "targetRef", "kind"), "spec.targetRef.kind"),
		Entry("unknown webhook type", setItem([]string{"spec", "analysis", "webhooks"}, "type", "pre-flight"), "spec.analysis.webhooks[0].type"),
		Entry("the same rules on the deprecated canaryAnalysis",
			func(obj map[string]any) {
				spec := obj["spec"].(map[string]any)
				spec["canaryAnalysis"] = spec["analysis"]
				delete(spec, "analysis")
				Expect(unstructured.SetNestedField(obj, int64(120), "spec", "canaryAnalysis", "maxWeight")).To(Succeed())
			},
			"spec.canaryAnalysis.maxWeight"),
	)

	It("reports every mistake of a manifest in one error", func() {
		err := apply(canary("invalid-many", all(
			set(int64(120), "spec", "analysis", "maxWeight"),
			set(int64(0), "spec", "analysis", "threshold"),
			set(ints(10, 5), "spec", "analysis", "stepWeights"),
			set(int64(0), "spec", "service", "port"),
			set("abc", "spec", "analysis", "interval"),
			setItem([]string{"spec", "analysis", "metrics"}, "interval", "5 minutes"),
			setItem([]string{"spec", "analysis", "webhooks"}, "timeout", "x"),
			set(map[string]any{"cookieName": "c", "primaryCookieName": "c"}, "spec", "analysis", "sessionAffinity"),
		)))
		Expect(err).To(HaveOccurred())
		msg := err.Error()
		GinkgoWriter.Println(msg)
		for _, p := range []string{
			"spec.analysis.maxWeight",
			"spec.analysis.threshold",
			"spec.analysis.stepWeights",
			"spec.service.port",
			"spec.analysis.interval",
			"spec.analysis.metrics[0].interval",
			"spec.analysis.webhooks[0].timeout",
			"spec.analysis.sessionAffinity.primaryCookieName",
		} {
			Expect(msg).To(ContainSubstring(p))
		}
		Expect(strings.Count(msg, "spec.")).To(BeNumerically(">=", 8))
	})
})

var _ = Describe("MetricTemplate and AlertProvider validation", func() {
	BeforeEach(func() { ensureNamespace("crd-validation") })

	It("accepts a MetricTemplate and refuses an unknown provider type", func() {
		mt := decode([]byte(`
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: crd-validation}
spec:
  provider:
    type: prometheus
    address: http://prometheus.istio-system:9090
    headers: {X-Scope-OrgID: [tenant-a]}
    secretRef: {name: prom-auth}
  query: histogram_quantile(0.99, sum(rate(x{namespace="{{ namespace }}"}[{{ interval }}])) by (le))
`))
		Expect(apply(mt.DeepCopy())).To(Succeed())
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(mt.GroupVersionKind())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(mt), got)).To(Succeed())
		Expect(got.Object["spec"]).To(Equal(mt.Object["spec"]))

		Expect(unstructured.SetNestedField(mt.Object, "victoria", "spec", "provider", "type")).To(Succeed())
		err := apply(mt)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.provider.type"))
	})

	It("accepts an AlertProvider with an address or a secret and refuses one with neither", func() {
		ap := decode([]byte(`
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: on-call, namespace: crd-validation}
spec: {type: slack, channel: on-call, username: herald, address: https://hooks.slack.com/services/x}
`))
		Expect(apply(ap.DeepCopy())).To(Succeed())
		withSecret := ap.DeepCopy()
		withSecret.SetName("on-call-secret")
		unstructured.RemoveNestedField(withSecret.Object, "spec", "address")
		Expect(unstructured.SetNestedField(withSecret.Object, map[string]any{"name": "slack-url"}, "spec", "secretRef")).To(Succeed())
		Expect(apply(withSecret)).To(Succeed())

		neither := ap.DeepCopy()
		neither.SetName("on-call-neither")
		unstructured.RemoveNestedField(neither.Object, "spec", "address")
		err := apply(neither)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.address"))
		Expect(err.Error()).To(ContainSubstring("address or secretRef is required"))

		badType := ap.DeepCopy()
		badType.SetName("on-call-bad")
		Expect(unstructured.SetNestedField(badType.Object, "pagerduty", "spec", "type")).To(Succeed())
		err = apply(badType)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.type"))
	})
})
