/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func ptr[T any](v T) *T { return &v }

// validCanary is an Istio canary of the Deployment test/podinfo that passes every check
// without a warning.
func validCanary() *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   flaggerv1.CanaryService{Port: 9898, Timeout: "15s"},
			Analysis: &flaggerv1.CanaryAnalysis{
				Interval:   "1m",
				Threshold:  5,
				MaxWeight:  50,
				StepWeight: 10,
				Metrics: []flaggerv1.CanaryMetric{
					{Name: "request-success-rate", Interval: "1m", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr(99.0)}},
					{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr(500.0)}},
					{Name: "errors", Interval: "1m", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "error-rate"},
						ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr(1.0)}},
				},
				Webhooks: []flaggerv1.CanaryWebhook{
					{Name: "acceptance", Type: flaggerv1.PreRolloutHook, URL: "http://loadtester.test/", Timeout: "30s"},
					{Name: "load", URL: "http://loadtester.test/", Timeout: "5s"},
				},
				Alerts: []flaggerv1.CanaryAlert{
					{Name: "on-call", Severity: flaggerv1.SeverityError, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "slack"}},
				},
			},
		},
	}
}

func validObjects() []client.Object {
	return []client.Object{
		podinfo("test", "podinfo"),
		metricTemplate("test", "error-rate"),
		alertProvider("test", "slack"),
	}
}

func TestValidCanaryHasNoWarnings(t *testing.T) {
	v := NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)})
	warns, err := v.ValidateCreate(context.Background(), validCanary())
	if err != nil || len(warns) != 0 {
		t.Fatalf("got warnings %q, error %v", warns, err)
	}
}

// TestRules checks each rule alone: the mutation of a valid Canary gives exactly the
// listed error field paths (and the listed warnings, as substrings).
func TestRules(t *testing.T) {
	bg := func(c *flaggerv1.Canary) { // blue/green, no traffic steps
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.Iterations = 0, 0, 10
	}
	cases := []struct {
		name    string
		opts    Options
		objs    []client.Object // replaces validObjects when set
		mutate  func(c *flaggerv1.Canary)
		errs    []string // field paths, all and only
		errText []string // substrings of the error
		warns   []string // substrings, each in some warning
	}{
		// 1. provider
		{name: "provider istio", mutate: func(c *flaggerv1.Canary) { c.Spec.Provider = "istio" }},
		{name: "provider kubernetes blue/green", mutate: func(c *flaggerv1.Canary) { c.Spec.Provider = "kubernetes"; bg(c) }},
		{name: "provider nginx", mutate: func(c *flaggerv1.Canary) { c.Spec.Provider = "nginx" },
			errs: []string{"spec.provider"}, errText: []string{`spec.provider: Unsupported value: "nginx": supported values: "istio", "kubernetes"`}},
		{name: "provider made up", mutate: func(c *flaggerv1.Canary) { c.Spec.Provider = "foo" },
			errs: []string{"spec.provider"}, errText: []string{`"foo"`}},
		{name: "default provider unsupported", opts: Options{DefaultProvider: "nginx"},
			errs: []string{"spec.provider"}, errText: []string{`"nginx"`, "--mesh-provider=nginx"}},
		{name: "default provider kubernetes", opts: Options{DefaultProvider: "kubernetes"}, mutate: bg},
		{name: "ingressRef ignored", mutate: func(c *flaggerv1.Canary) {
			c.Spec.IngressRef = &flaggerv1.LocalObjectReference{Kind: "Ingress", Name: "podinfo"}
		}, warns: []string{"spec.ingressRef: is ignored by provider istio"}},

		// name: a label value on the target and primary
		{name: "name of 63 characters", mutate: func(c *flaggerv1.Canary) { c.Name = strings.Repeat("a", 63) }},
		{name: "name of 64 characters", mutate: func(c *flaggerv1.Canary) { c.Name = strings.Repeat("a", 64) },
			errs: []string{"metadata.name"}, errText: []string{"herald.dev/canary label", "must be no more than 63 bytes"}},
		{name: "generateName too long", mutate: func(c *flaggerv1.Canary) { c.Name, c.GenerateName = "", strings.Repeat("a", 59) },
			errs: []string{"metadata.generateName"}},

		// 2. target
		{name: "target Service (Knative)", mutate: func(c *flaggerv1.Canary) {
			c.Spec.TargetRef = flaggerv1.LocalObjectReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "podinfo"}
		}, errs: []string{"spec.targetRef.kind"}, errText: []string{"Knative"}},
		{name: "target kind unknown", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "ReplicaSet" },
			errs: []string{"spec.targetRef.kind"}, errText: []string{`"Deployment", "DaemonSet", "StatefulSet"`}},
		{name: "StatefulSet target", objs: []client.Object{
			statefulSet("test", "podinfo", "podinfo-headless"), metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "StatefulSet" }},
		{name: "StatefulSet target governed by the apex Service", objs: []client.Object{
			statefulSet("test", "podinfo", "podinfo"), metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "StatefulSet" },
			errs: []string{"spec.targetRef.name"}, errText: []string{`its governing Service "podinfo" clashes with the Canary's Services`}},
		{name: "StatefulSet target missing", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "StatefulSet" },
			warns: []string{"target statefulset test/podinfo does not exist yet"}},
		{name: "target kind missing", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "" },
			errs: []string{"spec.targetRef.kind"}},
		{name: "target name missing", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Name = "" },
			errs: []string{"spec.targetRef.name"}},
		{name: "target apiVersion other", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.APIVersion = "v1" },
			warns: []string{"spec.targetRef.apiVersion"}},
		{name: "target missing", objs: []client.Object{metricTemplate("test", "error-rate"), alertProvider("test", "slack")},
			warns: []string{"spec.targetRef.name: target deployment test/podinfo does not exist yet; the Canary waits for it"}},
		{name: "target in other namespace only", objs: []client.Object{podinfo("other", "podinfo"), metricTemplate("test", "error-rate"), alertProvider("test", "slack")},
			warns: []string{"does not exist yet"}},
		{name: "DaemonSet target", objs: []client.Object{
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"}, Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "podinfo"}},
				Template: podinfo("test", "x").Spec.Template}},
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "DaemonSet" },
			errs: []string{"spec.targetRef.name"}, errText: []string{`daemonset test/podinfo`, `pod template does not carry the selector label "name"`}},
		{name: "DaemonSet target selected by name", objs: []client.Object{
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"}, Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "podinfo", "tier": "web"}},
				Template: deployment("test", "x", nil, map[string]string{"name": "podinfo", "tier": "web"}).Spec.Template}},
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "DaemonSet" }},
		{name: "DaemonSet target missing", mutate: func(c *flaggerv1.Canary) { c.Spec.TargetRef.Kind = "DaemonSet" },
			warns: []string{"target daemonset test/podinfo does not exist yet"}},
		{name: "selector without supported label", objs: []client.Object{
			deployment("test", "podinfo", map[string]string{"component": "web"}, map[string]string{"component": "web"}),
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, errs: []string{"spec.targetRef.name"}, errText: []string{`must contain one of the labels ["app", "name", "app.kubernetes.io/name"]`}},
		{name: "selector with two supported labels", objs: []client.Object{
			deployment("test", "podinfo", map[string]string{"app": "p", "app.kubernetes.io/name": "p"}, map[string]string{"app": "p", "app.kubernetes.io/name": "p"}),
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, warns: []string{`carries several of the selector labels "app", "app.kubernetes.io/name"; Herald names its pods by the first, "app"`}},
		{name: "selector value differs from pod label", objs: []client.Object{
			deployment("test", "podinfo", map[string]string{"app": "podinfo"}, map[string]string{"app": "other"}),
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}, errs: []string{"spec.targetRef.name"}, errText: []string{`selector label "app" is "podinfo" in spec.selector but "other" in the pod template`}},
		{name: "custom selector labels", opts: Options{SelectorLabels: []string{"component"}}, objs: []client.Object{
			deployment("test", "podinfo", map[string]string{"component": "web", "app": "x"}, map[string]string{"component": "web", "app": "x"}),
			metricTemplate("test", "error-rate"), alertProvider("test", "slack"),
		}},

		// routing that the istio router could not build
		{name: "istio load balancer unknown", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Service.TrafficPolicy = &flaggerv1.TrafficPolicy{LoadBalancer: &flaggerv1.LoadBalancerSettings{Simple: "FASTEST"}}
		}, errs: []string{"spec.service.trafficPolicy.loadBalancer.simple"}, errText: []string{`"FASTEST"`}},
		{name: "istio tcp with a/b match", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Service.AppProtocol = "tcp"
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.Iterations = 0, 0, 10
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}}}
		}, errs: []string{"spec.analysis.match"}},
		{name: "kubernetes ignores istio routing", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			bg(c)
			c.Spec.Service.TrafficPolicy = &flaggerv1.TrafficPolicy{LoadBalancer: &flaggerv1.LoadBalancerSettings{Simple: "FASTEST"}}
		}},

		// 3. analysis
		{name: "no analysis", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis = nil },
			errs: []string{"spec.analysis"}, errText: []string{"spec.analysis: Required value"}},
		{name: "no analysis, skipAnalysis", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis = nil; c.Spec.SkipAnalysis = true }},
		{name: "legacy canaryAnalysis", mutate: func(c *flaggerv1.Canary) {
			c.Spec.CanaryAnalysis, c.Spec.Analysis = c.Spec.Analysis, nil
			c.Spec.CanaryAnalysis.StepWeight = 0
		}, errs: []string{"spec.canaryAnalysis.stepWeight"}, warns: []string{"spec.canaryAnalysis: is deprecated"}},
		{name: "interval unparsable", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Interval = "1 minute" },
			errs: []string{"spec.analysis.interval"}},
		{name: "interval below minimum", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Interval = "5s"
			for i := range c.Spec.Analysis.Metrics {
				c.Spec.Analysis.Metrics[i].Interval = "5s"
			}
			c.Spec.Analysis.Webhooks = nil
		}, warns: []string{"spec.analysis.interval: 5s is raised to the minimum of 10s"}},
		{name: "service timeout unparsable", mutate: func(c *flaggerv1.Canary) { c.Spec.Service.Timeout = "soon" },
			errs: []string{"spec.service.timeout"}},
		{name: "service port", mutate: func(c *flaggerv1.Canary) { c.Spec.Service.Port = 0 },
			errs: []string{"spec.service.port"}},
		{name: "weights out of range", mutate: func(c *flaggerv1.Canary) {
			a := c.Spec.Analysis
			a.MaxWeight, a.StepWeight, a.StepWeightPromotion, a.MirrorWeight = 101, -1, 200, -5
			a.PrimaryReadyThreshold, a.CanaryReadyThreshold = ptr(101), ptr(-1)
		}, errs: []string{"spec.analysis.maxWeight", "spec.analysis.stepWeight", "spec.analysis.stepWeightPromotion",
			"spec.analysis.mirrorWeight", "spec.analysis.primaryReadyThreshold", "spec.analysis.canaryReadyThreshold"}},
		{name: "stepWeight above maxWeight", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.StepWeight = 60 },
			errs: []string{"spec.analysis.stepWeight"}, errText: []string{"maxWeight (50)"}},
		{name: "stepWeight with default maxWeight", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeight = 0, 100 }},
		{name: "stepWeights valid", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeights = 0, 0, []int{1, 5, 10, 50}
		}},
		{name: "stepWeights not increasing", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeights = 0, 0, []int{10, 10, 5, 50}
		}, errs: []string{"spec.analysis.stepWeights[1]", "spec.analysis.stepWeights[2]"}, errText: []string{"strictly increasing"}},
		{name: "stepWeights out of range", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeights = 0, 0, []int{0, 50, 101}
		}, errs: []string{"spec.analysis.stepWeights[0]", "spec.analysis.stepWeights[2]"}},
		{name: "stepWeights ignore maxWeight", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.StepWeights = 0, []int{10, 20}
		}, warns: []string{"spec.analysis.maxWeight: is ignored when stepWeights is set"}},
		{name: "canary without steps", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.StepWeight = 0 },
			errs: []string{"spec.analysis.stepWeight"}, errText: []string{"stepWeight or stepWeights"}},
		{name: "canary without steps, skipAnalysis", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Threshold, c.Spec.SkipAnalysis = 0, 0, true
		}},
		{name: "blue/green", mutate: func(c *flaggerv1.Canary) { bg(c) }},
		{name: "A/B testing", mutate: func(c *flaggerv1.Canary) {
			bg(c)
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}}}
		}},
		{name: "threshold equals iterations", mutate: func(c *flaggerv1.Canary) { bg(c); c.Spec.Analysis.Iterations = 5 },
			warns: []string{"spec.analysis.threshold: 5 is not below iterations (5)", "still promoted"}},
		{name: "threshold above iterations", mutate: func(c *flaggerv1.Canary) { bg(c); c.Spec.Analysis.Iterations = 3 },
			warns: []string{"spec.analysis.threshold"}},
		// Flagger takes 1 for a threshold below 1: accepted, with a warning.
		{name: "threshold unset", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Threshold = 0 },
			warns: []string{"spec.analysis.threshold: is 0: 1 is used", "as Flagger does"}},
		{name: "threshold negative", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Threshold = -1 },
			warns: []string{"spec.analysis.threshold: is -1: 1 is used"}},
		{name: "iterations negative", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Iterations = -1 },
			errs: []string{"spec.analysis.iterations"}},
		{name: "mirror canary istio", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Mirror = true }},
		{name: "mirror stepWeights istio", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Mirror, c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeights = true, 0, 0, []int{10, 50}
		}},
		// Flagger runs these as ten blue/green iterations: accepted, with a warning.
		{name: "kubernetes with stepWeight", mutate: func(c *flaggerv1.Canary) { c.Spec.Provider = "kubernetes" },
			warns: []string{"spec.analysis.iterations: is not set: provider kubernetes runs blue/green only, with 10 iterations", "stepWeight are ignored"}},
		{name: "kubernetes with stepWeights", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeights = 0, 0, []int{10, 50}
		}, warns: []string{"spec.analysis.iterations: is not set", "stepWeights are ignored"}},
		{name: "kubernetes with match and mirror, no iterations", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.Mirror = 0, 0, true
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Name: "x"}}
		}, warns: []string{"spec.analysis.iterations: is not set", "match, mirror are ignored"}},
		{name: "kubernetes without iterations", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight = 0, 0
		}, warns: []string{"spec.analysis.iterations: is not set: provider kubernetes runs blue/green only, with 10 iterations as Flagger does"}},
		{name: "kubernetes with match and mirror, iterations", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			bg(c)
			c.Spec.Analysis.Mirror = true
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Name: "x"}}
		}, warns: []string{"spec.analysis.match: is ignored by provider kubernetes", "spec.analysis.mirror: is ignored by provider kubernetes"}},
		{name: "kubernetes session affinity", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Provider = "kubernetes"
			bg(c)
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "canary"}
		}, errs: []string{"spec.analysis.sessionAffinity"}},
		{name: "istio session affinity", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "canary", PrimaryCookieName: "primary", MaxAge: 21600}
		}},
		{name: "session affinity same cookie", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "c", PrimaryCookieName: "c"}
		}, errs: []string{"spec.analysis.sessionAffinity.primaryCookieName"}},
		{name: "session affinity without cookie", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{MaxAge: -1}
		}, errs: []string{"spec.analysis.sessionAffinity.cookieName", "spec.analysis.sessionAffinity.maxAge"}},

		// 4. metrics
		{name: "metric without source", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Metrics[2].TemplateRef = nil
		}, errs: []string{"spec.analysis.metrics[2].name"}, errText: []string{"templateRef"}},
		{name: "metric without name", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[0].Name = "" },
			errs: []string{"spec.analysis.metrics[0].name"}},
		// kubectl apply -f dir/, Helm and Flux may send the template after the Canary.
		{name: "template missing", objs: []client.Object{podinfo("test", "podinfo"), alertProvider("test", "slack")},
			warns: []string{"spec.analysis.metrics[2].templateRef: MetricTemplate test/error-rate does not exist yet", "Stalled (MetricTemplateNotFound)"}},
		{name: "template in other namespace", objs: []client.Object{podinfo("test", "podinfo"), metricTemplate("flagger-system", "error-rate"), alertProvider("test", "slack")},
			mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[2].TemplateRef.Namespace = "flagger-system" }},
		{name: "template looked up in the Canary namespace", objs: []client.Object{podinfo("test", "podinfo"), metricTemplate("flagger-system", "error-rate"), alertProvider("test", "slack")},
			warns: []string{"spec.analysis.metrics[2].templateRef: MetricTemplate test/error-rate does not exist yet"}},
		{name: "templateRef without name", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[2].TemplateRef.Name = "" },
			errs: []string{"spec.analysis.metrics[2].templateRef.name"}},
		{name: "inline query", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Metrics[2] = flaggerv1.CanaryMetric{Name: "errors", Query: "sum(x)", Threshold: 1}
		}, warns: []string{"spec.analysis.metrics[2].query: inline queries are deprecated"}},
		{name: "builtin without threshold", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[0].ThresholdRange = nil },
			warns: []string{"spec.analysis.metrics[0]: builtin metric request-success-rate has neither thresholdRange nor threshold"}},
		{name: "builtin with deprecated threshold", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Metrics[0].ThresholdRange, c.Spec.Analysis.Metrics[0].Threshold = nil, 99
		}},
		{name: "threshold range inverted", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Metrics[1].ThresholdRange = &flaggerv1.CanaryThresholdRange{Min: ptr(10.0), Max: ptr(1.0)}
		}, errs: []string{"spec.analysis.metrics[1].thresholdRange"}},
		{name: "metric interval unparsable", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[1].Interval = "30" },
			errs: []string{"spec.analysis.metrics[1].interval"}},
		{name: "metric interval longer than analysis interval", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Metrics[1].Interval = "5m" },
			warns: []string{"spec.analysis.metrics[1].interval: the query window 5m is longer than the analysis interval 1m0s"}},
		{name: "builtin default window longer than analysis interval", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Interval = "30s"
			c.Spec.Analysis.Metrics[0].Interval = ""
			c.Spec.Analysis.Metrics[2].Interval = ""
		}, warns: []string{"spec.analysis.metrics[0].interval: the query window 1m (the default)"}},

		// 5. webhooks
		{name: "hook url relative", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[0].URL = "/approve" },
			errs: []string{"spec.analysis.webhooks[0].url"}},
		{name: "hook url scheme", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[0].URL = "ftp://loadtester/" },
			errs: []string{"spec.analysis.webhooks[0].url"}},
		{name: "hook url no host", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[0].URL = "http:///x" },
			errs: []string{"spec.analysis.webhooks[0].url"}},
		{name: "hook url missing", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].URL = "" },
			errs: []string{"spec.analysis.webhooks[1].url"}},
		{name: "hook type unknown", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[0].Type = "pre-promotion" },
			errs: []string{"spec.analysis.webhooks[0].type"}},
		{name: "hook types all known", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Webhooks = nil
			for i, typ := range hookTypes {
				c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, flaggerv1.CanaryWebhook{
					Name: "h" + string(rune('a'+i)), Type: typ, URL: "https://gate.test/check", Timeout: "1s"})
			}
		}},
		{name: "hook names duplicate", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].Name = "acceptance" },
			errs: []string{"spec.analysis.webhooks[1].name"}},
		{name: "hook name missing", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].Name = "" },
			errs: []string{"spec.analysis.webhooks[1].name"}},
		{name: "hook timeout unparsable", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].Timeout = "5" },
			errs: []string{"spec.analysis.webhooks[1].timeout"}},
		{name: "hook timeout zero", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].Timeout = "0s" },
			errs: []string{"spec.analysis.webhooks[1].timeout"}},
		{name: "hook retries negative", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[1].Retries = -1 },
			errs: []string{"spec.analysis.webhooks[1].retries"}},
		{name: "rollout hooks longer than interval", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Webhooks[1].Timeout = "55s"
			c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks,
				flaggerv1.CanaryWebhook{Name: "more", Type: flaggerv1.RolloutHook, URL: "http://x.test/"}) // 10s default
		}, warns: []string{"spec.analysis.webhooks: the rollout hooks", "up to 1m5s", "analysis interval 1m0s"}},
		{name: "pre-rollout hooks not summed", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Webhooks[0].Timeout = "5m" }},

		// 6. alerts
		{name: "alert provider missing", objs: []client.Object{podinfo("test", "podinfo"), metricTemplate("test", "error-rate")},
			warns: []string{"spec.analysis.alerts[0].providerRef: AlertProvider test/slack does not exist"}},
		{name: "alert severity unknown", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Alerts[0].Severity = "critical" },
			errs: []string{"spec.analysis.alerts[0].severity"}},
		{name: "alert severity empty", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Alerts[0].Severity = "" }},
		{name: "alert providerRef name missing", mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Alerts[0].ProviderRef.Name = "" },
			errs: []string{"spec.analysis.alerts[0].providerRef.name"}},
		{name: "alert provider in other namespace", objs: []client.Object{podinfo("test", "podinfo"), metricTemplate("test", "error-rate"), alertProvider("ops", "slack")},
			mutate: func(c *flaggerv1.Canary) { c.Spec.Analysis.Alerts[0].ProviderRef.Namespace = "ops" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validCanary()
			if tc.mutate != nil {
				tc.mutate(c)
			}
			objs := tc.objs
			if objs == nil {
				objs = validObjects()
			}
			tc.opts.Reader = fakeReader(t, objs...)
			warns, err := NewCanaryValidator(tc.opts).ValidateCreate(context.Background(), c)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else {
				if err == nil {
					t.Fatalf("want errors at %q, got none (warnings %q)", tc.errs, warns)
				}
				got := causes(t, err)
				if strings.Join(got, ",") != strings.Join(tc.errs, ",") {
					t.Errorf("error fields %q, want %q\n%v", got, tc.errs, err)
				}
				containsAll(t, "error", []string{err.Error()}, tc.errText)
			}
			containsAll(t, "warnings", warns, tc.warns)
			for _, w := range warns {
				// The API server may truncate longer warnings.
				if len(w) > maxWarningLength {
					t.Errorf("warning of %d characters: %s", len(w), w)
				}
			}
			if len(tc.warns) == 0 && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

// TestAllProblemsAtOnce: a Canary with many mistakes gets them all back in one error.
func TestAllProblemsAtOnce(t *testing.T) {
	c := validCanary()
	c.Spec.Provider = "nginx"
	c.Spec.TargetRef.Kind = "Service"
	c.Spec.Service.Timeout = "fast"
	a := c.Spec.Analysis
	a.Interval = "often"
	a.Threshold = 0
	a.MaxWeight, a.StepWeight = 20, 30
	a.StepWeights = []int{20, 10}
	a.Metrics[0].Interval = "1 minute"
	a.Metrics[1].ThresholdRange = &flaggerv1.CanaryThresholdRange{Min: ptr(2.0), Max: ptr(1.0)}
	a.Metrics[2].TemplateRef.Name = "nope"
	a.Metrics = append(a.Metrics, flaggerv1.CanaryMetric{Name: "custom"})
	a.Webhooks[0].URL = "loadtester"
	a.Webhooks[1].Name = "acceptance"
	a.Webhooks[1].Type = "later"
	a.Webhooks[1].Timeout = "x"
	a.Alerts[0].Severity = "loud"
	a.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "same", PrimaryCookieName: "same"}

	v := NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)})
	_, err := v.ValidateCreate(context.Background(), c)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"spec.provider",
		"spec.targetRef.kind",
		"spec.service.timeout",
		"spec.analysis.interval",
		"spec.analysis.stepWeight",
		"spec.analysis.stepWeights[1]",
		"spec.analysis.sessionAffinity.primaryCookieName",
		"spec.analysis.metrics[0].interval",
		"spec.analysis.metrics[1].thresholdRange",
		"spec.analysis.metrics[3].name",
		"spec.analysis.webhooks[0].url",
		"spec.analysis.webhooks[1].name",
		"spec.analysis.webhooks[1].type",
		"spec.analysis.webhooks[1].timeout",
		"spec.analysis.alerts[0].severity",
	}
	got := causes(t, err)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range want {
		if !strings.Contains(err.Error(), f+":") {
			t.Errorf("message does not name %s: %v", f, err)
		}
	}
}

// TestLookupErrorsWarn: a cache failure other than NotFound never blocks a Canary.
func TestLookupErrorsWarn(t *testing.T) {
	reader := fakeReaderWith(t, interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("cache not synced")
		},
	})
	warns, err := NewCanaryValidator(Options{Reader: reader}).ValidateCreate(context.Background(), validCanary())
	if err != nil {
		t.Fatal(err)
	}
	containsAll(t, "warnings", warns, []string{
		"spec.targetRef.name: could not read target deployment test/podinfo",
		"spec.analysis.metrics[2].templateRef: could not read MetricTemplate test/error-rate",
		"spec.analysis.alerts[0].providerRef: could not read AlertProvider test/slack",
		"cache not synced",
	})
}

// TestLongWarningsAreCut: warnings stay below the length the API server may truncate.
func TestLongWarningsAreCut(t *testing.T) {
	reader := fakeReaderWith(t, interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New(strings.Repeat("é", 300))
		},
	})
	warns, err := NewCanaryValidator(Options{Reader: reader}).ValidateCreate(context.Background(), validCanary())
	if err != nil || len(warns) != 3 {
		t.Fatalf("warnings %q, error %v", warns, err)
	}
	for _, w := range warns {
		if len(w) > maxWarningLength || !utf8.ValidString(w) || !strings.HasSuffix(w, "...") {
			t.Errorf("warning of %d characters: %s", len(w), w)
		}
	}
}

// TestLookupTimeout: a cache read that blocks (an informer not synced yet) is bounded.
func TestLookupTimeout(t *testing.T) {
	reader := fakeReaderWith(t, interceptor.Funcs{
		Get: func(ctx context.Context, _ client.WithWatch, _ client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
			<-ctx.Done()
			return ctx.Err()
		},
	})
	v := NewCanaryValidator(Options{Reader: reader, LookupTimeout: 10 * time.Millisecond})
	warns, err := v.ValidateCreate(context.Background(), validCanary())
	if err != nil {
		t.Fatal(err)
	}
	containsAll(t, "warnings", warns, []string{"context deadline exceeded"})
}

// TestNoReader: without a reader, nothing is looked up and nothing is reported about it.
func TestNoReader(t *testing.T) {
	warns, err := NewCanaryValidator(Options{}).ValidateCreate(context.Background(), validCanary())
	if err != nil || len(warns) > 0 {
		t.Fatalf("warnings %q, error %v", warns, err)
	}
}

func TestUpdate(t *testing.T) {
	old := validCanary()
	cur := validCanary()
	cur.Status.Phase = flaggerv1.CanaryPhaseProgressing
	cur.Labels = map[string]string{"x": "y"}
	cur.Spec.Provider = "" // same as old

	// Unchanged spec: allowed without any lookup, even with a missing target and a
	// provider refused today.
	v := NewCanaryValidator(Options{Reader: panicReader{t}, DefaultProvider: "nginx"})
	if warns, err := v.ValidateUpdate(context.Background(), old, cur); err != nil || warns != nil {
		t.Fatalf("unchanged spec: warnings %q, error %v", warns, err)
	}

	// Changed spec: checked again, with lookups.
	v = NewCanaryValidator(Options{Reader: fakeReader(t)})
	cur.Spec.Analysis.StepWeight = 70
	warns, err := v.ValidateUpdate(context.Background(), old, cur)
	if err == nil {
		t.Fatal("changed spec not checked")
	}
	if got := causes(t, err); strings.Join(got, ",") != "spec.analysis.stepWeight" {
		t.Errorf("fields %q", got)
	}
	containsAll(t, "warnings", warns, []string{"does not exist yet", "MetricTemplate test/error-rate does not exist yet"})
}

func TestDelete(t *testing.T) {
	c := validCanary()
	c.Spec.Provider = "nginx"
	v := NewCanaryValidator(Options{Reader: panicReader{t}})
	if warns, err := v.ValidateDelete(context.Background(), c); err != nil || warns != nil {
		t.Fatalf("warnings %q, error %v", warns, err)
	}
}

func fakeReaderWith(t *testing.T, funcs interceptor.Funcs) client.Reader {
	t.Helper()
	return fakeClientBuilder(t).WithInterceptorFuncs(funcs).Build()
}

// TestCacheMissReadsTheAPIServer: a MetricTemplate or AlertProvider created just before the
// Canary (one kubectl apply) may not be cached yet; the API server has it, so the Canary is
// accepted without a warning. What neither has is accepted with a warning: Flux dry-runs a
// whole stage before applying any of it, so a refusal would never converge.
func TestCacheMissReadsTheAPIServer(t *testing.T) {
	cached := fakeReader(t, podinfo("test", "podinfo"))
	live := fakeReader(t, metricTemplate("test", "error-rate"), alertProvider("test", "slack"))
	v := NewCanaryValidator(Options{Reader: cached, MissReader: live})
	warns, err := v.ValidateCreate(context.Background(), validCanary())
	if err != nil {
		t.Fatalf("refused although the API server has the objects: %v", err)
	}
	if slices.ContainsFunc(warns, func(w string) bool { return strings.Contains(w, "MetricTemplate") }) {
		t.Fatalf("warned about a MetricTemplate the API server has: %q", warns)
	}
	v = NewCanaryValidator(Options{Reader: cached, MissReader: fakeReader(t)})
	warns, err = v.ValidateCreate(context.Background(), validCanary())
	if err != nil {
		t.Fatalf("a MetricTemplate not created yet must not be refused, got %v", err)
	}
	containsAll(t, "warnings", warns, []string{"spec.analysis.metrics[2].templateRef: MetricTemplate test/error-rate does not exist yet"})
}

func TestNoCrossNamespaceRefs(t *testing.T) {
	objs := append(validObjects(), metricTemplate("team-b", "error-rate"), alertProvider("team-b", "slack"))
	cross := validCanary()
	cross.Spec.Analysis.Metrics[2].TemplateRef.Namespace = "team-b"
	cross.Spec.Analysis.Alerts[0].ProviderRef.Namespace = "team-b"

	strict := NewCanaryValidator(Options{Reader: fakeReader(t, objs...), NoCrossNamespaceRefs: true})
	_, err := strict.ValidateCreate(context.Background(), cross)
	fields := causes(t, err)
	want := []string{"spec.analysis.metrics[2].templateRef.namespace", "spec.analysis.alerts[0].providerRef.namespace"}
	if len(fields) != 2 || fields[0] != want[0] || fields[1] != want[1] {
		t.Errorf("fields %q, want %q", fields, want)
	}
	if !strings.Contains(err.Error(), "-no-cross-namespace-refs") {
		t.Errorf("the error should name the flag: %v", err)
	}
	// The Canary's own namespace, spelled out or not, is fine.
	own := validCanary()
	own.Spec.Analysis.Metrics[2].TemplateRef.Namespace = "test"
	if _, err := strict.ValidateCreate(context.Background(), own); err != nil {
		t.Errorf("own namespace: %v", err)
	}
	if _, err := strict.ValidateCreate(context.Background(), validCanary()); err != nil {
		t.Errorf("no namespace: %v", err)
	}
	// Without the flag, as in Flagger, other namespaces may be referenced.
	open := NewCanaryValidator(Options{Reader: fakeReader(t, objs...)})
	if _, err := open.ValidateCreate(context.Background(), cross); err != nil {
		t.Errorf("without the flag: %v", err)
	}
}

func TestLinkLocalAddressesAreRefused(t *testing.T) {
	c := validCanary()
	c.Spec.MetricsServer = "http://169.254.169.254:9090"
	c.Spec.Analysis.Webhooks[1].URL = "http://metadata.google.internal/computeMetadata/v1/"
	_, err := NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)}).ValidateCreate(context.Background(), c)
	fields := causes(t, err)
	if len(fields) != 2 || fields[0] != "spec.metricsServer" || fields[1] != "spec.analysis.webhooks[1].url" {
		t.Errorf("fields %q", fields)
	}
	if !strings.Contains(err.Error(), "169.254.169.254 is a link-local address") {
		t.Errorf("the error should name the address and the rule: %v", err)
	}
	// Loopback stays allowed at admission (tests, local control planes).
	c = validCanary()
	c.Spec.MetricsServer = "http://127.0.0.1:9090"
	if _, err := NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)}).ValidateCreate(context.Background(), c); err != nil {
		t.Errorf("loopback: %v", err)
	}

	mt := metricTemplate("test", "t")
	mt.Spec.Provider.Address = "http://[fe80::1]:9090"
	_, err = (&MetricTemplateValidator{}).ValidateCreate(context.Background(), mt)
	if fields := causes(t, err); len(fields) != 1 || fields[0] != "spec.provider.address" {
		t.Errorf("template address: %q", fields)
	}
	ap := alertProvider("test", "a")
	ap.Spec.Proxy = "http://169.254.169.254:3128"
	_, err = (&AlertProviderValidator{}).ValidateCreate(context.Background(), ap)
	if fields := causes(t, err); len(fields) != 1 || fields[0] != "spec.proxy" {
		t.Errorf("alert proxy: %q", fields)
	}
}

func TestTemplateBombsAreRefused(t *testing.T) {
	for query, want := range map[string]string{
		`{{range 20}}{{printf "%01000000d" 0}}{{end}}`:                  "may only loop over {{ variables }}",
		`{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`: "cannot define templates",
		`{{ range variables }}{{ range variables }}{{ end }}{{ end }}`:  "not in another loop",
	} {
		mt := metricTemplate("test", "bomb")
		mt.Spec.Query = query
		_, err := (&MetricTemplateValidator{}).ValidateCreate(context.Background(), mt)
		if fields := causes(t, err); len(fields) != 1 || fields[0] != "spec.query" || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q, %v", query, fields, err)
		}
	}
}
