package workloads

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

func canaryWith(svc flaggerv1.CanaryService) *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   svc,
		},
	}
}

func tcp(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: target}
}

func podsWithPorts(containers ...corev1.Container) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers}}
}

var fluxAnnotations = map[string]string{
	"kustomize.toolkit.fluxcd.io/reconcile": "disabled",
	"helm.toolkit.fluxcd.io/driftDetection": "disabled",
}

func TestServicesMetadataAndSelectors(t *testing.T) {
	c := canaryWith(flaggerv1.CanaryService{
		Port: 80, TargetPort: intstr.FromString("http"), AppProtocol: "http", TrafficDistribution: "PreferClose",
		Apex:    &flaggerv1.CustomMetadata{Labels: map[string]string{"tier": "apex", "app": "overridden"}, Annotations: map[string]string{"a": "apex"}},
		Primary: &flaggerv1.CustomMetadata{Labels: map[string]string{"tier": "primary"}},
		Canary:  &flaggerv1.CustomMetadata{Annotations: map[string]string{"a": "canary", "kustomize.toolkit.fluxcd.io/reconcile": "enabled"}},
	})
	apex, primary, canary := Services(c, "app", "podinfo", nil)

	port := tcp("http", 80, intstr.FromString("http"))
	port.AppProtocol = ptr.To("http")
	check := func(s *corev1.Service, name string, labels, annotations, selector map[string]string) {
		t.Helper()
		want := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", Labels: labels, Annotations: annotations},
			Spec: corev1.ServiceSpec{
				Type:                corev1.ServiceTypeClusterIP,
				Selector:            selector,
				Ports:               []corev1.ServicePort{port},
				TrafficDistribution: ptr.To("PreferClose"),
			},
		}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", name, s, want)
		}
	}
	merge := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	// Every Service carries its Canary's name, which wakes the Canary when it changes.
	check(apex, "podinfo", map[string]string{"tier": "apex", "app": "podinfo", contract.LabelPrimaryOf: "podinfo"},
		merge(map[string]string{"a": "apex"}, fluxAnnotations), map[string]string{"app": "podinfo-primary"})
	check(primary, "podinfo-primary", map[string]string{"tier": "primary", "app": "podinfo-primary", contract.LabelPrimaryOf: "podinfo"},
		fluxAnnotations, map[string]string{"app": "podinfo-primary"})
	check(canary, "podinfo-canary", map[string]string{"app": "podinfo-canary", contract.LabelPrimaryOf: "podinfo"},
		merge(map[string]string{"a": "canary"}, fluxAnnotations), map[string]string{"app": "podinfo"})

	if &apex.Spec.Ports[0] == &primary.Spec.Ports[0] || apex.Spec.Ports[0].AppProtocol == primary.Spec.Ports[0].AppProtocol {
		t.Error("ports shared between Services")
	}
}

func TestServicesNamesAndHeadless(t *testing.T) {
	c := canaryWith(flaggerv1.CanaryService{Name: "web", Port: 9898, PortName: "grpc", Headless: true})
	apex, primary, canary := Services(c, "app.kubernetes.io/name", "podinfo", nil)
	for _, tc := range []struct {
		s        *corev1.Service
		name     string
		selector string
	}{
		{apex, "web", "podinfo-primary"},
		{primary, "web-primary", "podinfo-primary"},
		{canary, "web-canary", "podinfo"},
	} {
		if tc.s.Name != tc.name || tc.s.Labels["app.kubernetes.io/name"] != tc.name {
			t.Errorf("name %q labels %v, want %q", tc.s.Name, tc.s.Labels, tc.name)
		}
		if !reflect.DeepEqual(tc.s.Spec.Selector, map[string]string{"app.kubernetes.io/name": tc.selector}) {
			t.Errorf("%s selector %v", tc.name, tc.s.Spec.Selector)
		}
		if tc.s.Spec.ClusterIP != "None" || tc.s.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("%s not headless: %+v", tc.name, tc.s.Spec)
		}
		if tc.s.Spec.TrafficDistribution != nil {
			t.Errorf("%s trafficDistribution set", tc.name)
		}
		if want := []corev1.ServicePort{tcp("grpc", 9898, intstr.FromInt32(9898))}; !reflect.DeepEqual(tc.s.Spec.Ports, want) {
			t.Errorf("%s ports %+v", tc.name, tc.s.Spec.Ports)
		}
	}
	_, _, plain := Services(canaryWith(flaggerv1.CanaryService{Port: 80}), "app", "podinfo", nil)
	if plain.Spec.ClusterIP != "" {
		t.Errorf("clusterIP %q", plain.Spec.ClusterIP)
	}
}

func TestServicePortsDiscovery(t *testing.T) {
	app := corev1.Container{Name: "podinfod", Ports: []corev1.ContainerPort{
		{Name: "http", ContainerPort: 9898, Protocol: corev1.ProtocolTCP},
		{Name: "http-metrics", ContainerPort: 9797, Protocol: corev1.ProtocolTCP},
		{ContainerPort: 9999},
		{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
	}}
	sidecar := corev1.Container{Name: "sidecar", Ports: []corev1.ContainerPort{
		{ContainerPort: 7000},
		{Name: "http-metrics", ContainerPort: 7001}, // name already taken: skipped
		{Name: "dup", ContainerPort: 9797},          // port already taken: skipped
	}}
	istio := corev1.Container{Name: "istio-proxy", Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090}}}
	envoy := corev1.Container{Name: "envoy", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901}}}
	tmpl := podsWithPorts(app, istio, sidecar, envoy)

	extras := []corev1.ServicePort{
		{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
		tcp("http-metrics", 9797, intstr.FromInt32(9797)),
		tcp("tcp-podinfod-2", 9999, intstr.FromInt32(9999)),
		tcp("tcp-sidecar-0", 7000, intstr.FromInt32(7000)),
	}
	cases := []struct {
		name string
		svc  flaggerv1.CanaryService
		tmpl *corev1.PodTemplateSpec
		want []corev1.ServicePort
	}{
		{
			name: "no discovery",
			svc:  flaggerv1.CanaryService{Port: 9898},
			tmpl: tmpl,
			want: []corev1.ServicePort{tcp("http", 9898, intstr.FromInt32(9898))},
		},
		{
			name: "port skips main port by number",
			svc:  flaggerv1.CanaryService{Port: 9898, PortDiscovery: true},
			tmpl: tmpl,
			want: append([]corev1.ServicePort{tcp("http", 9898, intstr.FromInt32(9898))}, extras...),
		},
		{
			name: "targetPort by name skips the named port",
			svc:  flaggerv1.CanaryService{Port: 80, PortName: "web", TargetPort: intstr.FromString("http"), PortDiscovery: true},
			tmpl: tmpl,
			want: append([]corev1.ServicePort{tcp("web", 80, intstr.FromString("http"))}, extras...),
		},
		{
			name: "targetPort by number skips that port",
			svc:  flaggerv1.CanaryService{Port: 80, PortName: "web", TargetPort: intstr.FromInt32(9898), PortDiscovery: true},
			tmpl: tmpl,
			want: append([]corev1.ServicePort{tcp("web", 80, intstr.FromInt32(9898))}, extras...),
		},
		{
			name: "targetPort elsewhere: the container's http port collides with the main port name",
			svc:  flaggerv1.CanaryService{Port: 80, TargetPort: intstr.FromInt32(8080), PortDiscovery: true},
			tmpl: tmpl,
			want: append([]corev1.ServicePort{tcp("http", 80, intstr.FromInt32(8080))}, extras...),
		},
		{
			name: "service port number collides with a container port",
			svc:  flaggerv1.CanaryService{Port: 9797, PortName: "main", TargetPort: intstr.FromInt32(9898), PortDiscovery: true},
			tmpl: podsWithPorts(app),
			want: []corev1.ServicePort{
				tcp("main", 9797, intstr.FromInt32(9898)),
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
				tcp("tcp-podinfod-2", 9999, intstr.FromInt32(9999)),
			},
		},
		{
			name: "discovery without template",
			svc:  flaggerv1.CanaryService{Port: 80, PortDiscovery: true},
			want: []corev1.ServicePort{tcp("http", 80, intstr.FromInt32(80))},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ServicePorts(&tc.svc, tc.tmpl)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, tc.want)
			}
			// Deterministic: a second call gives the same list.
			if again := ServicePorts(&tc.svc, tc.tmpl); !reflect.DeepEqual(got, again) {
				t.Fatal("not deterministic")
			}
		})
	}

	// Services uses the same ports on all three Services.
	c := canaryWith(flaggerv1.CanaryService{Port: 9898, PortDiscovery: true})
	apex, primary, canary := Services(c, "app", "podinfo", tmpl)
	want := append([]corev1.ServicePort{tcp("http", 9898, intstr.FromInt32(9898))}, extras...)
	for _, s := range []*corev1.Service{apex, primary, canary} {
		if !reflect.DeepEqual(s.Spec.Ports, want) {
			t.Errorf("%s ports %+v", s.Name, s.Spec.Ports)
		}
	}
}
