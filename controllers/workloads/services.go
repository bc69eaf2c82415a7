package workloads

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

const (
	// DefaultPortName is the name of the Services' port when spec.service.portName is unset.
	DefaultPortName = "http"

	// FluxKustomizeReconcileAnnotation and FluxHelmDriftDetectionAnnotation, both set to
	// "disabled" on the generated Services, keep Flux from reverting Herald's changes to an
	// apex Service that is also in a Kustomization or Helm release.
	FluxKustomizeReconcileAnnotation = "kustomize.toolkit.fluxcd.io/reconcile"
	FluxHelmDriftDetectionAnnotation = "helm.toolkit.fluxcd.io/driftDetection"
	// FluxDisabled is the value of the Flux annotations.
	FluxDisabled = "disabled"
)

// proxyContainers are the service-mesh sidecars whose ports port discovery ignores.
var proxyContainers = map[string]bool{"istio-proxy": true, "envoy": true}

// Services returns the three Services of a Canary, in c's namespace:
//
//   - apex <service.name, or the target's name>, selecting {label: value+"-primary"};
//   - <apex>-primary, selecting {label: value+"-primary"};
//   - <apex>-canary, selecting {label: value}.
//
// Each is of type ClusterIP (clusterIP None when spec.service.headless), with the port
// {name: portName|"http", port, targetPort: targetPort|port, protocol TCP, appProtocol} and
// spec.service.trafficDistribution. With spec.service.portDiscovery, every container port of tmpl
// is added (see DiscoveredPorts). Labels and annotations come from spec.service.apex, .primary
// and .canary; the labels also get label=<the Service's name> and the annotations Flux's
// reconcile and drift-detection opt-outs.
func Services(c *flaggerv1.Canary, label, value string, tmpl *corev1.PodTemplateSpec) (apex, primary, canary *corev1.Service) {
	apexName, primaryName, canaryName := c.GetServiceNames()
	ports := ServicePorts(&c.Spec.Service, tmpl)
	svc := func(name string, md *flaggerv1.CustomMetadata, selectorValue string) *corev1.Service {
		s := &corev1.Service{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Namespace:   c.Namespace,
				Labels:      map[string]string{},
				Annotations: map[string]string{},
			},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: map[string]string{label: selectorValue},
				Ports:    clonePorts(ports),
			},
		}
		if md != nil {
			for k, v := range md.Labels {
				s.Labels[k] = v
			}
			for k, v := range md.Annotations {
				s.Annotations[k] = v
			}
		}
		s.Labels[label] = name
		s.Labels[contract.LabelPrimaryOf] = c.Name
		s.Annotations[FluxKustomizeReconcileAnnotation] = FluxDisabled
		s.Annotations[FluxHelmDriftDetectionAnnotation] = FluxDisabled
		if c.Spec.Service.Headless {
			s.Spec.ClusterIP = corev1.ClusterIPNone
		}
		if td := c.Spec.Service.TrafficDistribution; td != "" {
			s.Spec.TrafficDistribution = &td
		}
		return s
	}
	apex = svc(apexName, c.Spec.Service.Apex, value+contract.PrimarySuffix)
	primary = svc(primaryName, c.Spec.Service.Primary, value+contract.PrimarySuffix)
	canary = svc(canaryName, c.Spec.Service.Canary, value)
	return apex, primary, canary
}

// targetPortSet reports whether spec.service.targetPort is set (neither 0 nor "").
func targetPortSet(tp intstr.IntOrString) bool {
	if tp.Type == intstr.String {
		return tp.StrVal != ""
	}
	return tp.IntVal != 0
}

// ServicePorts returns the ports of the generated Services: the main port first, then, with
// portDiscovery, the DiscoveredPorts of tmpl.
func ServicePorts(s *flaggerv1.CanaryService, tmpl *corev1.PodTemplateSpec) []corev1.ServicePort {
	main := corev1.ServicePort{
		Name:       s.PortName,
		Protocol:   corev1.ProtocolTCP,
		Port:       s.Port,
		TargetPort: intstr.FromInt32(s.Port),
	}
	if main.Name == "" {
		main.Name = DefaultPortName
	}
	if targetPortSet(s.TargetPort) {
		main.TargetPort = s.TargetPort
	}
	if s.AppProtocol != "" {
		ap := s.AppProtocol
		main.AppProtocol = &ap
	}
	ports := []corev1.ServicePort{main}
	if s.PortDiscovery && tmpl != nil {
		ports = append(ports, DiscoveredPorts(s, &tmpl.Spec)...)
	}
	return ports
}

// DiscoveredPorts lists the extra Service ports port discovery adds (Flagger's rules): every
// containerPort of every container except the istio-proxy and envoy sidecars, except the one
// the main port targets (targetPort by number or name, or port when targetPort is unset). A port
// is named after the container port, or tcp-<container>-<index> when unnamed; port and
// targetPort are the container port.
//
// Unlike Flagger, the container port's protocol is kept (TCP when unset), and ports that would
// make the Service invalid are left out: a name already used (the main port's, or an earlier
// container's) or a port number and protocol already used. The result is sorted by name.
func DiscoveredPorts(s *flaggerv1.CanaryService, spec *corev1.PodSpec) []corev1.ServicePort {
	mainName := s.PortName
	if mainName == "" {
		mainName = DefaultPortName
	}
	type numProto struct {
		port  int32
		proto corev1.Protocol
	}
	names := map[string]bool{mainName: true}
	used := map[numProto]bool{{s.Port, corev1.ProtocolTCP}: true}
	var out []corev1.ServicePort
	for _, c := range spec.Containers {
		if proxyContainers[c.Name] {
			continue
		}
		for i, p := range c.Ports {
			if targetPortSet(s.TargetPort) {
				if s.TargetPort.Type == intstr.String && p.Name == s.TargetPort.StrVal {
					continue
				}
				if s.TargetPort.Type == intstr.Int && p.ContainerPort == s.TargetPort.IntVal {
					continue
				}
			} else if p.ContainerPort == s.Port {
				continue
			}
			name := p.Name
			if name == "" {
				name = fmt.Sprintf("tcp-%s-%d", c.Name, i)
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			key := numProto{p.ContainerPort, proto}
			if names[name] || used[key] || p.ContainerPort <= 0 {
				continue
			}
			names[name] = true
			used[key] = true
			out = append(out, corev1.ServicePort{
				Name:       name,
				Protocol:   proto,
				Port:       p.ContainerPort,
				TargetPort: intstr.FromInt32(p.ContainerPort),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func clonePorts(ports []corev1.ServicePort) []corev1.ServicePort {
	out := make([]corev1.ServicePort, len(ports))
	for i := range ports {
		ports[i].DeepCopyInto(&out[i])
	}
	return out
}
