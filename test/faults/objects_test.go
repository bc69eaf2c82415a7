package faults

import (
	"context"
	"fmt"
	"time"

	istioapi "istio.io/api/networking/v1"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/traffic"
)

// Settings every Canary of the suite shares. The analysis interval is Herald's minimum
// (flaggerv1.MinAnalysisInterval, 10 s): a shorter one is raised to it.
const (
	interval         = 10 * time.Second
	deadlineSeconds  = 60
	sharedConfigName = "shared-config"
	image            = "ghcr.io/stefanprodan/podinfo:6.0.0"
)

// app is a user's Deployment (2 replicas, selected by app=<name>), optionally reading the
// namespace's shared ConfigMap.
func app(ns, name string, sharedConfig bool) *appsv1.Deployment {
	l := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: map[string]string{
					traffic.ErrorRateAnnotation: "0", traffic.LatencyAnnotation: "20ms",
				}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "podinfod", Image: image,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
	if sharedConfig {
		d.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: sharedConfigName}}}}
	}
	return d
}

// userService is an apex Service the user created before any Canary: it selects the app's
// own pods.
func userService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"owner": "user"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9898, TargetPort: intstr.FromInt32(9898)}},
		},
	}
}

// userVirtualService is a VirtualService the user created before any Canary: all traffic of
// <name>.example.com to the user's Service.
func userVirtualService(ns, name string) *istionetworking.VirtualService {
	return &istionetworking.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"owner": "user"}},
		Spec: istioapi.VirtualService{
			Hosts: []string{name + ".example.com"},
			Http: []*istioapi.HTTPRoute{{
				Name:  "user-route",
				Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: name, Port: &istioapi.PortSelector{Number: 9898}}}},
			}},
		},
	}
}

// canaryOpts describe a Canary of the suite.
type canaryOpts struct {
	provider         string // flaggerv1.ProviderIstio or "kubernetes"
	skipAnalysis     bool
	revertOnDeletion bool
	stepWeights      []int
	stepWeight       int
	maxWeight        int
	iterations       int
	metrics          bool // the builtin Istio metrics
	hooks            []string
	hookTimeout      string
	deadline         int32 // progressDeadlineSeconds; deadlineSeconds when 0
	threshold        int   // 2 when 0
}

func (o canaryOpts) deadlineSeconds() int32 {
	if o.deadline > 0 {
		return o.deadline
	}
	return deadlineSeconds
}

func canaryFor(ns, name string, o canaryOpts) *flaggerv1.Canary {
	threshold := o.threshold
	if threshold == 0 {
		threshold = 2
	}
	a := &flaggerv1.CanaryAnalysis{
		Interval: interval.String(), Threshold: threshold,
		StepWeights: o.stepWeights, StepWeight: o.stepWeight, MaxWeight: o.maxWeight, Iterations: o.iterations,
	}
	if o.metrics {
		a.Metrics = []flaggerv1.CanaryMetric{
			{Name: "request-success-rate", Interval: "10s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
			{Name: "request-duration", Interval: "10s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
		}
	}
	timeout := o.hookTimeout
	if timeout == "" {
		timeout = "3s"
	}
	for _, h := range o.hooks {
		t := map[string]flaggerv1.HookType{
			hookPre: flaggerv1.PreRolloutHook, hookRollout: flaggerv1.RolloutHook, hookJudge: flaggerv1.RolloutHook,
			hookPost: flaggerv1.PostRolloutHook, hookEvent: flaggerv1.EventHook,
		}[h]
		a.Webhooks = append(a.Webhooks, flaggerv1.CanaryWebhook{Name: h, Type: t, URL: hooks.url(h), Timeout: timeout})
	}
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: flaggerv1.CanarySpec{
			Provider:                o.provider,
			TargetRef:               flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:                 flaggerv1.CanaryService{Port: 9898},
			Analysis:                a,
			ProgressDeadlineSeconds: ptr.To(o.deadlineSeconds()),
			SkipAnalysis:            o.skipAnalysis,
			RevertOnDeletion:        o.revertOnDeletion,
		},
	}
}

// create creates objects, retrying while the API server (or the fail-closed Canary webhook)
// is briefly unavailable.
func create(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		err := retry(ctx, 60*time.Second, func() error {
			err := k8s.Create(ctx, o)
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// retry calls f until it succeeds or the time is up.
func retry(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func namespace(ctx context.Context, name string) error {
	return create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// version is one release of an app: a new image and its behaviour under the simulator.
type version struct {
	n    int
	kind string // good, bad, broken
}

const (
	good           = "good"
	bad            = "bad"              // errors: fails its analysis
	broken         = "broken"           // pods never ready (a crash loop)
	failsAsPrimary = "fails-as-primary" // passes its analysis; its primary's pods crash-loop
)

// applyVersion is the user's `kubectl apply` of a new version of an app.
func applyVersion(ctx context.Context, ns, name string, v version) error {
	return retry(ctx, 60*time.Second, func() error {
		var d appsv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		orig := d.DeepCopy()
		ann := d.Spec.Template.Annotations
		if ann == nil {
			ann = map[string]string{}
		}
		ann[traffic.ErrorRateAnnotation], ann[traffic.LatencyAnnotation] = "0", "20ms"
		delete(ann, cluster.SimulateAnnotation)
		delete(ann, cluster.SimulatePrimaryAnnotation)
		switch v.kind {
		case bad:
			ann[traffic.ErrorRateAnnotation] = "0.5"
		case broken:
			ann[cluster.SimulateAnnotation] = cluster.SimulateCrashLoop
		case failsAsPrimary:
			ann[cluster.SimulatePrimaryAnnotation] = cluster.SimulateCrashLoop
		}
		d.Spec.Template.Annotations = ann
		d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("ghcr.io/stefanprodan/podinfo:6.1.%d", v.n)
		return k8s.Patch(ctx, &d, client.MergeFrom(orig))
	})
}

func clientInNamespace(ns string) client.ListOption { return client.InNamespace(ns) }
