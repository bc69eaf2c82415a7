package traffic

import (
	"context"
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const ns = "test"

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := networkingv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := gatewayv1.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func fakeClient(t testing.TB, objs ...client.Object) client.Client {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
}

// deployment is a workload whose pods carry app=<name>, with ready replicas and behaviour
// annotations as a test sets them.
func deployment(name string, available int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "podinfo"}}},
			},
		},
		Status: appsv1.DeploymentStatus{Replicas: available, ReadyReplicas: available, AvailableReplicas: available},
	}
}

func service(name, app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9898}},
		},
	}
}

func virtualService(name string, routes ...*v1alpha3.HTTPRoute) *networkingv1.VirtualService {
	return &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha3.VirtualService{
			Hosts:    []string{name},
			Gateways: []string{"mesh"},
			Http:     routes,
		},
	}
}

func weighted(hostWeights ...any) []*v1alpha3.HTTPRouteDestination {
	var out []*v1alpha3.HTTPRouteDestination
	for i := 0; i+1 < len(hostWeights); i += 2 {
		out = append(out, &v1alpha3.HTTPRouteDestination{
			Destination: &v1alpha3.Destination{Host: hostWeights[i].(string)},
			Weight:      int32(hostWeights[i+1].(int)),
		})
	}
	return out
}

func exact(v string) *v1alpha3.StringMatch {
	return &v1alpha3.StringMatch{MatchType: &v1alpha3.StringMatch_Exact{Exact: v}}
}

func prefix(v string) *v1alpha3.StringMatch {
	return &v1alpha3.StringMatch{MatchType: &v1alpha3.StringMatch_Prefix{Prefix: v}}
}

func regex(v string) *v1alpha3.StringMatch {
	return &v1alpha3.StringMatch{MatchType: &v1alpha3.StringMatch_Regex{Regex: v}}
}

// podinfo is the usual canary setup: the Deployments podinfo-primary and podinfo (the
// canary), their Services, and the apex VirtualService podinfo with the given routes.
func podinfo(canaryAnnotations map[string]string, routes ...*v1alpha3.HTTPRoute) []client.Object {
	return []client.Object{
		deployment("podinfo-primary", 2, nil),
		deployment("podinfo", 1, canaryAnnotations),
		service("podinfo-primary", "podinfo-primary"),
		service("podinfo-canary", "podinfo"),
		virtualService("podinfo", routes...),
	}
}

func newSim(t testing.TB, objs []client.Object, classes ...Class) *Simulator {
	t.Helper()
	return &Simulator{Client: fakeClient(t, objs...), Namespaces: []string{ns}, Classes: classes}
}

func mustStep(t testing.TB, s *Simulator, n int) {
	t.Helper()
	if err := s.step(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

// families gathers the simulator's registry by name.
func families(t testing.TB, s *Simulator) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := s.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// counterSum adds the counter series of name whose labels include want.
func counterSum(t testing.TB, s *Simulator, name string, want map[string]string) float64 {
	t.Helper()
	total := 0.0
	for _, m := range families(t, s)[name].GetMetric() {
		if labelsMatch(m, want) {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// histogramOf merges the histogram series of name whose labels include want: count, sum,
// and cumulative count per upper bound.
func histogramOf(t testing.TB, s *Simulator, name string, want map[string]string) (count uint64, sum float64, buckets map[float64]uint64) {
	t.Helper()
	buckets = map[float64]uint64{}
	for _, m := range families(t, s)[name].GetMetric() {
		if !labelsMatch(m, want) {
			continue
		}
		h := m.GetHistogram()
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	return count, sum, buckets
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
