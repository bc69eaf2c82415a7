package router

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	istio "istio.io/api/networking/v1alpha3"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

// The pure builders of the istio provider: they turn a Canary (and the split to route) into
// the DestinationRules and the VirtualService, touching nothing but their arguments, so they
// can be compared field by field with what is in the cluster and pinned by golden files.

// MeshGateway is Istio's name for the sidecars of the mesh, the default gateway.
const MeshGateway = "mesh"

// Names of the routes that session affinity adds in front of the weighted route. GetRoutes
// skips them: they do not carry the split. "sticky-route" is Flagger's name, kept so that
// access-log and dashboard filters written for Flagger still work.
const (
	stickyCanaryRoute  = "sticky-route"
	stickyPrimaryRoute = "sticky-primary-route"
	expireCookieRoute  = "expire-cookie-route"
)

var (
	virtualServiceGVK  = istionet.SchemeGroupVersion.WithKind("VirtualService")
	destinationRuleGVK = istionet.SchemeGroupVersion.WithKind("DestinationRule")
)

// Split is a division of the traffic between the primary and the canary, in percent, and
// whether the canary receives a copy of the primary's traffic.
type Split struct {
	Primary  int
	Canary   int
	Mirrored bool
}

// StatusSplit is the split that c.status records: the canary weight, the rest on the primary.
// Reconcile falls back to it when the VirtualService is missing or has no readable split.
func StatusSplit(c *flaggerv1.Canary) Split {
	w := min(max(c.Status.CanaryWeight, 0), 100)
	return Split{Primary: 100 - w, Canary: w}
}

func (s Split) validate() error {
	if s.Primary < 0 || s.Canary < 0 || s.Primary+s.Canary != 100 {
		return fmt.Errorf("weights must be between 0 and 100 and add up to 100, got primary %d and canary %d", s.Primary, s.Canary)
	}
	return nil
}

// analysisPath is the field path of the Canary's analysis: the deprecated canaryAnalysis is
// still read when analysis is unset.
func analysisPath(c *flaggerv1.Canary) *field.Path {
	if c.Spec.Analysis == nil && c.Spec.CanaryAnalysis != nil {
		return field.NewPath("spec", "canaryAnalysis")
	}
	return field.NewPath("spec", "analysis")
}

var servicePath = field.NewPath("spec", "service")

// isTCP reports whether the Canary routes TCP rather than HTTP (appProtocol tcp, in any case).
func isTCP(c *flaggerv1.Canary) bool {
	return strings.EqualFold(c.Spec.Service.AppProtocol, "tcp")
}

// generatedAnnotations returns the annotations of a generated routing object: extra (the
// user's service.apex annotations, for the VirtualService) plus Flux's opt-outs, which stop
// Flux from reverting Herald's changes when the object is also in a Kustomization or a
// Helm release.
func generatedAnnotations(extra map[string]string) map[string]string {
	out := make(map[string]string, len(extra)+2)
	for k, v := range extra {
		out[k] = v
	}
	out[workloads.FluxKustomizeReconcileAnnotation] = workloads.FluxDisabled
	out[workloads.FluxHelmDriftDetectionAnnotation] = workloads.FluxDisabled
	return out
}

// DestinationRules returns the DestinationRules <apex>-primary and <apex>-canary: each has the
// Service of the same name as host and spec.service.trafficPolicy. No owner is set.
func DestinationRules(c *flaggerv1.Canary) (primary, canary *istionet.DestinationRule, err error) {
	var cv converter
	_, primaryName, canaryName := c.GetServiceNames()
	build := func(host string) *istionet.DestinationRule {
		return &istionet.DestinationRule{
			TypeMeta: metav1.TypeMeta{APIVersion: destinationRuleGVK.GroupVersion().String(), Kind: destinationRuleGVK.Kind},
			ObjectMeta: metav1.ObjectMeta{
				Name:        host,
				Namespace:   c.Namespace,
				Annotations: generatedAnnotations(nil),
			},
			Spec: istio.DestinationRule{
				Host:          host,
				TrafficPolicy: cv.trafficPolicy(servicePath.Child("trafficPolicy"), c.Spec.Service.TrafficPolicy),
			},
		}
	}
	primary, canary = build(primaryName), build(canaryName)
	if len(cv.errs) > 0 {
		// The two rules share one policy: report its problems once.
		return nil, nil, fmt.Errorf("DestinationRules of canary %s/%s: %w: %w", c.Namespace, c.Name, ErrInvalidRoute, dedupe(cv.errs).ToAggregate())
	}
	return primary, canary, nil
}

// dedupe drops repeated errors (the same field converted twice).
func dedupe(errs field.ErrorList) field.ErrorList {
	seen := map[string]bool{}
	var out field.ErrorList
	for _, e := range errs {
		if k := e.Error(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// vsBuilder holds what every route of one VirtualService shares.
type vsBuilder struct {
	c           *flaggerv1.Canary
	cv          converter
	primaryHost string
	canaryHost  string
	// port is the destination port, set only when the Service has several ports (port
	// discovery) and the traffic comes through a gateway or a delegating VirtualService,
	// where Istio cannot infer it.
	port *istio.PortSelector
	// serviceMatch is spec.service.match, converted.
	serviceMatch []*istio.HTTPMatchRequest
	// base carries the per-route settings of spec.service (rewrite, timeout, retries, CORS,
	// headers); every HTTP route is a clone of it.
	base *istio.HTTPRoute
}

func newVSBuilder(c *flaggerv1.Canary) *vsBuilder {
	_, primaryName, canaryName := c.GetServiceNames()
	b := &vsBuilder{c: c, primaryHost: primaryName, canaryHost: canaryName}
	svc := &c.Spec.Service
	if svc.PortDiscovery && (svc.Delegation || (len(svc.Gateways) > 0 && svc.Gateways[0] != MeshGateway)) {
		b.port = &istio.PortSelector{Number: b.cv.uint32(servicePath.Child("port"), svc.Port)}
	}
	return b
}

func (b *vsBuilder) destination(host string) *istio.Destination {
	d := &istio.Destination{Host: host}
	if b.port != nil {
		d.Port = proto.Clone(b.port).(*istio.PortSelector)
	}
	return d
}

func (b *vsBuilder) httpDestination(host string, weight int) *istio.HTTPRouteDestination {
	return &istio.HTTPRouteDestination{Destination: b.destination(host), Weight: int32(weight)}
}

// route returns a new HTTP route with spec.service's settings, the given match and
// destinations.
func (b *vsBuilder) route(match []*istio.HTTPMatchRequest, dests ...*istio.HTTPRouteDestination) *istio.HTTPRoute {
	r := proto.Clone(b.base).(*istio.HTTPRoute)
	r.Match = match
	r.Route = dests
	return r
}

// weighted returns the route that carries the split, mirroring to the canary when asked.
func (b *vsBuilder) weighted(match []*istio.HTTPMatchRequest, s Split) *istio.HTTPRoute {
	r := b.route(match, b.httpDestination(b.primaryHost, s.Primary), b.httpDestination(b.canaryHost, s.Canary))
	b.mirror(r, s)
	return r
}

func (b *vsBuilder) mirror(r *istio.HTTPRoute, s Split) {
	if !s.Mirrored {
		return
	}
	// Flagger leaves the port out of the mirror destination, which Istio cannot resolve when
	// the canary Service has several ports: the mirror gets the same port as the routes.
	r.Mirror = b.destination(b.canaryHost)
	if a := b.c.GetAnalysis(); a != nil && a.MirrorWeight > 0 {
		r.MirrorPercentage = &istio.Percent{Value: float64(a.MirrorWeight)}
	}
}

func cloneMatches(in []*istio.HTTPMatchRequest) []*istio.HTTPMatchRequest {
	if in == nil {
		return nil
	}
	out := make([]*istio.HTTPMatchRequest, len(in))
	for i, m := range in {
		out[i] = proto.Clone(m).(*istio.HTTPMatchRequest)
	}
	return out
}

// mergeMatches returns every condition of extra combined with every condition of
// spec.service.match (a request must meet both; the lists are alternatives, so the result
// is their cartesian product). Each field that extra sets replaces the service's, and header,
// query and label maps are combined key by key with extra's entries winning. Flagger keeps
// only extra's headers and sourceLabels and replaces the service's headers wholesale, so
// a header condition of service.match was lost on the A/B route; here it is kept.
func (b *vsBuilder) mergeMatches(extra []*istio.HTTPMatchRequest) []*istio.HTTPMatchRequest {
	if len(b.serviceMatch) == 0 {
		return cloneMatches(extra)
	}
	out := make([]*istio.HTTPMatchRequest, 0, len(extra)*len(b.serviceMatch))
	for _, e := range extra {
		for _, s := range b.serviceMatch {
			m := proto.Clone(s).(*istio.HTTPMatchRequest)
			// proto.Merge overwrites set scalars and messages, merges maps key by key, and
			// appends lists: gateways must replace instead (the lists are alternatives).
			proto.Merge(m, e)
			if len(e.Gateways) > 0 {
				m.Gateways = copyStrings(e.Gateways)
			}
			out = append(out, m)
		}
	}
	return out
}

// VirtualService returns the VirtualService <apex> that routes split (see the package
// documentation of the istio provider in istio.go for its shape). It reads the session-
// affinity cookies from c.status and never changes c: SetRoutes updates them first. No owner
// is set.
func VirtualService(c *flaggerv1.Canary, s Split) (*istionet.VirtualService, error) {
	vs, errs := virtualService(c, s)
	if len(errs) > 0 {
		return nil, fmt.Errorf("VirtualService of canary %s/%s: %w: %w", c.Namespace, c.Name, ErrInvalidRoute, errs.ToAggregate())
	}
	return vs, nil
}

func virtualService(c *flaggerv1.Canary, s Split) (*istionet.VirtualService, field.ErrorList) {
	if err := s.validate(); err != nil {
		return nil, field.ErrorList{field.InternalError(nil, err)}
	}
	apex, _, _ := c.GetServiceNames()
	svc := &c.Spec.Service
	b := newVSBuilder(c)

	var hosts, gateways []string
	if !svc.Delegation {
		// A delegate VirtualService must have neither hosts nor gateways; building the list
		// from scratch also clears them when delegation is switched on later (Flagger kept
		// the old ones, its issue #1464).
		hosts = copyStrings(svc.Hosts)
		hasApex := false
		for _, h := range hosts {
			if h == apex || h == "*" {
				hasApex = true
				break
			}
		}
		if !hasApex {
			hosts = append(hosts, apex)
		}
		gateways = copyStrings(svc.Gateways)
		if len(gateways) == 0 {
			gateways = []string{MeshGateway}
		}
	}

	var md flaggerv1.CustomMetadata
	if svc.Apex != nil {
		md = *svc.Apex
	}
	vs := &istionet.VirtualService{
		TypeMeta: metav1.TypeMeta{APIVersion: virtualServiceGVK.GroupVersion().String(), Kind: virtualServiceGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:        apex,
			Namespace:   c.Namespace,
			Labels:      copyStringMap(md.Labels),
			Annotations: generatedAnnotations(md.Annotations),
		},
		Spec: istio.VirtualService{Hosts: hosts, Gateways: gateways},
	}

	if isTCP(c) {
		vs.Spec.Tcp = b.tcpRoutes(s)
	} else {
		vs.Spec.Http = b.httpRoutes(s)
	}
	if len(b.cv.errs) > 0 {
		return nil, b.cv.errs
	}
	return vs, nil
}

// tcpRoutes returns the single weighted TCP route. Features that need HTTP are refused with
// the field that asks for them, instead of being dropped as Flagger does.
func (b *vsBuilder) tcpRoutes(s Split) []*istio.TCPRoute {
	c := b.c
	ap := analysisPath(c)
	const why = "needs HTTP routing, and spec.service.appProtocol is tcp"
	if a := c.GetAnalysis(); a != nil {
		if len(a.Match) > 0 {
			b.cv.errs = append(b.cv.errs, field.Forbidden(ap.Child("match"), "A/B testing "+why))
		}
		if a.SessionAffinity != nil {
			b.cv.errs = append(b.cv.errs, field.Forbidden(ap.Child("sessionAffinity"), "session affinity "+why))
		}
	}
	if s.Mirrored {
		b.cv.errs = append(b.cv.errs, field.Forbidden(ap.Child("mirror"), "traffic mirroring "+why))
	}
	dest := func(host string, w int) *istio.RouteDestination {
		return &istio.RouteDestination{Destination: b.destination(host), Weight: int32(w)}
	}
	return []*istio.TCPRoute{{
		Match: b.cv.l4Matches(servicePath.Child("match"), c.Spec.Service.Match),
		Route: []*istio.RouteDestination{dest(b.primaryHost, s.Primary), dest(b.canaryHost, s.Canary)},
	}}
}

// httpRoutes returns the HTTP routes:
//
//   - A/B testing (analysis.match set): the requests that meet analysis.match (merged with
//     service.match) are split, mirrored when asked; all other requests that meet
//     service.match go to the primary;
//   - otherwise one route with service.match that carries the split, preceded, with session
//     affinity, by the routes that pin cookie holders (see sessionRoutes).
func (b *vsBuilder) httpRoutes(s Split) []*istio.HTTPRoute {
	c := b.c
	svc := &c.Spec.Service
	b.serviceMatch = b.cv.httpMatches(servicePath.Child("match"), svc.Match)
	b.base = &istio.HTTPRoute{
		Rewrite:    b.cv.rewrite(svc.Rewrite),
		Timeout:    b.cv.duration(servicePath.Child("timeout"), svc.Timeout),
		Retries:    b.cv.retries(servicePath.Child("retries"), svc.Retries),
		CorsPolicy: b.cv.cors(servicePath.Child("corsPolicy"), svc.CorsPolicy),
		Headers:    headers(svc.Headers),
	}

	a := c.GetAnalysis()
	if a != nil && len(a.Match) > 0 {
		abMatch := b.mergeMatches(b.cv.httpMatches(analysisPath(c).Child("match"), a.Match))
		// Session affinity is not applied here: the match itself keeps every user on one
		// version, and A/B runs route all matching requests at once.
		return []*istio.HTTPRoute{
			b.weighted(abMatch, s),
			b.route(cloneMatches(b.serviceMatch), b.httpDestination(b.primaryHost, 100)),
		}
	}

	weighted := b.weighted(cloneMatches(b.serviceMatch), s)
	if a == nil || a.SessionAffinity == nil {
		return []*istio.HTTPRoute{weighted}
	}
	return append(b.sessionRoutes(a.SessionAffinity, weighted, s), weighted)
}
