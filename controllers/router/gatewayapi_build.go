package router

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The pure builders of the gatewayapi provider: they turn a Canary and the split to route
// into an HTTPRoute or, for a gRPC service, a GRPCRoute named after the apex Service,
// touching nothing but their arguments, so that they can be compared field by field with
// what is in the cluster and pinned by golden files.
//
// The route attaches to spec.service.gatewayRefs, answers for spec.service.hosts, and has
// these rules:
//
//   - weighted canary and blue/green: one rule with spec.service.match (a prefix match on "/"
//     when there is none) that splits the traffic between the <apex>-primary and
//     <apex>-canary Services on spec.service.port, with spec.service's header operations,
//     rewrite, static mirrors, CORS and timeouts, and a RequestMirror filter to the canary
//     (mirrorWeight percent) while the analysis mirrors;
//   - A/B testing: that rule with analysis.match combined with spec.service.match, then a
//     rule with spec.service.match alone that sends everything else to the primary;
//   - session affinity: rules in front of the weighted one for the holders of the cookies
//     (see session.go), and a Set-Cookie on the responses of each backend.
//
// Everything the API server would default (parent and backend groups and kinds, match
// types, the "/" prefix, CORS maxAge, mirror denominators) is written out, so that the
// route read back equals the route built and an idle reconcile writes nothing.

// gwRule is a rule of either route kind, before it is rendered.
type gwRule struct {
	name     string
	matches  []gwMatch
	backends []gwBackend
	// mirror adds the analysis' RequestMirror filter to the canary.
	mirror bool
	// setCookie, when set, is added to the rule's responses as a Set-Cookie header.
	setCookie string
}

type gwBackend struct {
	service string
	weight  int
	// setCookie, when set, is added as a Set-Cookie header to the responses of this backend.
	setCookie string
}

var (
	httpRouteGVK        = schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "HTTPRoute"}
	httpRouteV1Beta1GVK = schema.GroupVersionKind{Group: gatewayv1beta1.GroupName, Version: "v1beta1", Kind: "HTTPRoute"}
	grpcRouteGVK        = schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "GRPCRoute"}
)

// IsGRPC reports whether the Canary's service speaks gRPC, so that the gatewayapi provider
// writes a GRPCRoute: spec.service.appProtocol is grpc, or spec.service.portName is grpc or
// starts with grpc- (Istio's naming convention). gRPC-Web is HTTP/1.1 and stays on HTTPRoute.
func IsGRPC(c *flaggerv1.Canary) bool {
	svc := &c.Spec.Service
	if svc.AppProtocol != "" {
		return strings.EqualFold(svc.AppProtocol, "grpc")
	}
	name := strings.ToLower(svc.PortName)
	if name == "grpc-web" || strings.HasPrefix(name, "grpc-web-") {
		return false
	}
	return name == "grpc" || strings.HasPrefix(name, "grpc-")
}

// gwBuilder holds what every rule of one route shares.
type gwBuilder struct {
	c           *flaggerv1.Canary
	cv          converter
	grpc        bool
	primaryName string
	canaryName  string
	port        int32
	parents     []gatewayv1.ParentReference
	hosts       []gatewayv1.Hostname
	// serviceMatch is spec.service.match, converted.
	serviceMatch []gwMatch
	// The rule settings of spec.service.
	requestHeaders  *gatewayv1.HTTPHeaderFilter
	responseHeaders *gatewayv1.HTTPHeaderFilter
	rewrite         *gatewayv1.HTTPURLRewriteFilter
	mirrors         []*gatewayv1.HTTPRequestMirrorFilter
	cors            *gatewayv1.HTTPCORSFilter
	timeouts        *gatewayv1.HTTPRouteTimeouts
	// mirrorPercent is analysis.mirrorWeight, nil for all requests.
	mirrorPercent *int32
}

func newGWBuilder(c *flaggerv1.Canary) *gwBuilder {
	_, primaryName, canaryName := c.GetServiceNames()
	b := &gwBuilder{c: c, grpc: IsGRPC(c), primaryName: primaryName, canaryName: canaryName, port: c.Spec.Service.Port}
	svc := &c.Spec.Service
	sp := servicePath
	b.parents = b.cv.gwParentRefs(sp.Child("gatewayRefs"), svc.GatewayRefs)
	b.hosts = b.cv.gwHostnames(sp.Child("hosts"), svc.Hosts)
	if b.port < 1 || b.port > 65535 {
		b.cv.invalid(sp.Child("port"), b.port, "must be between 1 and 65535")
	}
	b.serviceMatch = b.cv.gwMatches(sp.Child("match"), svc.Match, b.grpc)
	if h := svc.Headers; h != nil {
		b.requestHeaders = b.cv.gwHeaderFilter(sp.Child("headers", "request"), h.Request)
		b.responseHeaders = b.cv.gwHeaderFilter(sp.Child("headers", "response"), h.Response)
	}
	for i := range svc.Mirror {
		b.mirrors = append(b.mirrors, b.cv.gwMirror(sp.Child("mirror").Index(i), &svc.Mirror[i]))
	}
	if isTCP(b.c) {
		b.cv.errs = append(b.cv.errs, field.Invalid(sp.Child("appProtocol"), svc.AppProtocol,
			"the gatewayapi provider writes HTTPRoutes and GRPCRoutes; TCPRoute is not in the Gateway API's standard channel"))
	}
	if b.grpc {
		// A GRPCRoute has header modifiers and mirrors only: what else the Canary asks for is
		// refused rather than silently dropped.
		const why = "a GRPCRoute (the service speaks gRPC) has no "
		if svc.Rewrite != nil {
			b.cv.errs = append(b.cv.errs, field.Forbidden(sp.Child("rewrite"), why+"URL rewrite"))
		}
		if svc.CorsPolicy != nil {
			b.cv.errs = append(b.cv.errs, field.Forbidden(sp.Child("corsPolicy"), why+"CORS filter"))
		}
		if svc.Timeout != "" {
			b.cv.errs = append(b.cv.errs, field.Forbidden(sp.Child("timeout"), why+"timeouts"))
		}
		if svc.BackendTimeout != "" {
			b.cv.errs = append(b.cv.errs, field.Forbidden(sp.Child("backendTimeout"), why+"timeouts"))
		}
	} else {
		b.rewrite = b.cv.gwRewrite(sp.Child("rewrite"), svc.Rewrite)
		b.cors = b.cv.gwCORS(sp.Child("corsPolicy"), svc.CorsPolicy)
		request, rd := b.cv.gwDuration(sp.Child("timeout"), svc.Timeout)
		backend, bd := b.cv.gwDuration(sp.Child("backendTimeout"), svc.BackendTimeout)
		if request != nil && backend != nil && rd != 0 && bd > rd {
			b.cv.invalid(sp.Child("backendTimeout"), svc.BackendTimeout, fmt.Sprintf("must not be longer than timeout (%s)", svc.Timeout))
		}
		if request != nil || backend != nil {
			b.timeouts = &gatewayv1.HTTPRouteTimeouts{Request: request, BackendRequest: backend}
		}
	}
	if a := c.GetAnalysis(); a != nil && a.MirrorWeight > 0 {
		w := int32(a.MirrorWeight)
		b.mirrorPercent = &w
	}
	return b
}

// rules returns the rules that route split s (see the file comment).
func (b *gwBuilder) rules(s Split) []gwRule {
	a := b.c.GetAnalysis()
	weighted := gwRule{
		matches:  b.serviceMatch,
		backends: []gwBackend{{service: b.primaryName, weight: s.Primary}, {service: b.canaryName, weight: s.Canary}},
		mirror:   s.Mirrored,
	}
	if a != nil && len(a.Match) > 0 {
		mp := analysisPath(b.c).Child("match")
		ab := b.cv.gwMatches(mp, a.Match, b.grpc)
		if n := max(len(b.serviceMatch), 1) * len(ab); n > gwMaxMatchesPerRule {
			b.cv.invalid(mp, n, fmt.Sprintf("combined with spec.service.match this gives %d conditions; a Gateway API rule has at most %d", n, gwMaxMatchesPerRule))
			return nil
		}
		weighted.matches = mergeGWMatches(ab, b.serviceMatch)
		// Session affinity is not applied: the match itself keeps every user on one version.
		return []gwRule{weighted, {
			matches:  b.serviceMatch,
			backends: []gwBackend{{service: b.primaryName, weight: 100}},
		}}
	}
	if a == nil || a.SessionAffinity == nil {
		return []gwRule{weighted}
	}
	return append(b.sessionRules(a.SessionAffinity, &weighted, s), weighted)
}

// sessionRules returns the rules that go before weighted and adds the cookies to weighted's
// backends; the cookies come from c.status as updateSessionCookies left them.
func (b *gwBuilder) sessionRules(sa *flaggerv1.SessionAffinity, weighted *gwRule, s Split) []gwRule {
	st := &b.c.Status
	cookieRule := func(cookie string) []gwMatch {
		n, v, _ := parseCookie(cookie)
		return mergeGWMatches([]gwMatch{{headers: []gwValueMatch{{name: "Cookie", regex: true, value: cookiePattern(n, v)}}}}, b.serviceMatch)
	}
	var rules []gwRule
	if s.Canary == 0 {
		if _, _, ok := parseCookie(st.PreviousSessionAffinityCookie); ok {
			expire := *weighted
			expire.name = expireCookieRoute
			expire.matches = cookieRule(st.PreviousSessionAffinityCookie)
			expire.setCookie = setCookie(sa, st.PreviousSessionAffinityCookie, -1)
			rules = append(rules, expire)
		}
		return rules
	}
	if name, _, ok := parseCookie(st.SessionAffinityCookie); ok && name == sa.CookieName {
		weighted.backends[1].setCookie = setCookie(sa, st.SessionAffinityCookie, sa.GetMaxAge())
		rules = append(rules, gwRule{
			name:     stickyCanaryRoute,
			matches:  cookieRule(st.SessionAffinityCookie),
			backends: []gwBackend{{service: b.canaryName, weight: 100}},
		})
	}
	if name, _, ok := parseCookie(st.PrimarySessionAffinityCookie); ok && sa.PrimaryCookieName != "" && name == sa.PrimaryCookieName {
		// One interval: the holder is re-dealt at the next weight step.
		maxAge := int(b.c.GetAnalysisInterval() / time.Second)
		weighted.backends[0].setCookie = setCookie(sa, st.PrimarySessionAffinityCookie, maxAge)
		rules = append(rules, gwRule{
			name:     stickyPrimaryRoute,
			matches:  cookieRule(st.PrimarySessionAffinityCookie),
			backends: []gwBackend{{service: b.primaryName, weight: 100}},
			mirror:   s.Mirrored,
		})
	}
	return rules
}

// checkRules applies the limits of the route CRDs that depend on how the rules came out.
func (b *gwBuilder) checkRules(rules []gwRule) {
	total := 0
	for _, r := range rules {
		total += max(len(r.matches), 1)
	}
	if len(rules) > gwMaxRules || total > gwMaxMatchesTotal {
		b.cv.invalid(servicePath.Child("match"), total, fmt.Sprintf("the route would have %d rules and %d conditions; the Gateway API allows %d and %d",
			len(rules), total, gwMaxRules, gwMaxMatchesTotal))
	}
	if b.rewrite != nil && b.rewrite.Path != nil && b.rewrite.Path.Type == gatewayv1.PrefixMatchHTTPPathModifier {
		for _, r := range rules {
			if len(r.matches) > 1 || (len(r.matches) == 1 && r.matches[0].pathType != "" && r.matches[0].pathType != gatewayv1.PathMatchPathPrefix) {
				b.cv.invalid(servicePath.Child("rewrite", "type"), string(gatewayv1.PrefixMatchHTTPPathModifier),
					"ReplacePrefixMatch needs exactly one path-prefix condition on every rule of the route; with these match conditions use the full-path rewrite")
				return
			}
		}
	}
	if b.responseHeaders != nil {
		for _, r := range rules {
			if r.setCookie != "" && gwHasHeader(b.responseHeaders.Add, setCookieHeader) {
				b.cv.invalid(servicePath.Child("headers", "response", "add").Key(setCookieHeader), setCookieHeader,
					"session affinity sets this header on the same rule")
				return
			}
		}
	}
	filters := len(b.mirrors)
	for _, f := range []bool{b.requestHeaders != nil, b.responseHeaders != nil, b.rewrite != nil, b.cors != nil, true} {
		if f {
			filters++
		}
	}
	if filters > gwMaxFilters {
		b.cv.invalid(servicePath.Child("mirror"), len(b.mirrors), fmt.Sprintf("the route's rules would have %d filters; the Gateway API allows %d", filters, gwMaxFilters))
	}
}

func gwHasHeader(list []gatewayv1.HTTPHeader, name string) bool {
	for _, h := range list {
		if strings.EqualFold(string(h.Name), name) {
			return true
		}
	}
	return false
}

func (b *gwBuilder) backendRef(be gwBackend) gatewayv1.BackendRef {
	w := int32(be.weight)
	return gatewayv1.BackendRef{BackendObjectReference: gwBackendRef(be.service, b.port), Weight: &w}
}

// setCookieFilter adds a Set-Cookie header to the responses.
func setCookieFilter(value string) *gatewayv1.HTTPHeaderFilter {
	return &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: setCookieHeader, Value: value}}}
}

// responseHeaders returns the rule's response header filter: spec.service's, plus the rule's
// own Set-Cookie (a rule may have only one such filter).
func (b *gwBuilder) ruleResponseHeaders(r gwRule) *gatewayv1.HTTPHeaderFilter {
	if r.setCookie == "" {
		return b.responseHeaders.DeepCopy()
	}
	out := b.responseHeaders.DeepCopy()
	if out == nil {
		return setCookieFilter(r.setCookie)
	}
	out.Add = append(out.Add, gatewayv1.HTTPHeader{Name: setCookieHeader, Value: r.setCookie})
	return out
}

// analysisMirror is the RequestMirror filter that copies the traffic to the canary.
func (b *gwBuilder) analysisMirror() *gatewayv1.HTTPRequestMirrorFilter {
	m := &gatewayv1.HTTPRequestMirrorFilter{BackendRef: gwBackendRef(b.canaryName, b.port)}
	if b.mirrorPercent != nil {
		p := *b.mirrorPercent
		m.Percent = &p
	}
	return m
}

func ruleName(name string) *gatewayv1.SectionName {
	if name == "" {
		return nil
	}
	n := gatewayv1.SectionName(name)
	return &n
}

// httpMatch renders a condition for an HTTPRoute, writing out the defaults.
func httpMatch(m gwMatch) gatewayv1.HTTPRouteMatch {
	typ, value := m.pathType, m.path
	if typ == "" {
		typ, value = gatewayv1.PathMatchPathPrefix, "/"
	}
	out := gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: &typ, Value: &value}}
	if m.method != "" {
		method := gatewayv1.HTTPMethod(m.method)
		out.Method = &method
	}
	for _, h := range m.headers {
		t := gatewayv1.HeaderMatchExact
		if h.regex {
			t = gatewayv1.HeaderMatchRegularExpression
		}
		out.Headers = append(out.Headers, gatewayv1.HTTPHeaderMatch{Type: &t, Name: gatewayv1.HTTPHeaderName(h.name), Value: h.value})
	}
	for _, q := range m.query {
		t := gatewayv1.QueryParamMatchExact
		if q.regex {
			t = gatewayv1.QueryParamMatchRegularExpression
		}
		out.QueryParams = append(out.QueryParams, gatewayv1.HTTPQueryParamMatch{Type: &t, Name: gatewayv1.HTTPHeaderName(q.name), Value: q.value})
	}
	return out
}

func (b *gwBuilder) httpRule(r gwRule) gatewayv1.HTTPRouteRule {
	out := gatewayv1.HTTPRouteRule{Name: ruleName(r.name), Timeouts: b.timeouts.DeepCopy()}
	matches := r.matches
	if len(matches) == 0 {
		matches = []gwMatch{{}}
	}
	for _, m := range matches {
		out.Matches = append(out.Matches, httpMatch(m))
	}
	if f := b.requestHeaders; f != nil {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f.DeepCopy()})
	}
	if f := b.ruleResponseHeaders(r); f != nil {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f})
	}
	if f := b.rewrite; f != nil {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: f.DeepCopy()})
	}
	for _, m := range b.mirrors {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: m.DeepCopy()})
	}
	if f := b.cors; f != nil {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterCORS, CORS: f.DeepCopy()})
	}
	if r.mirror {
		out.Filters = append(out.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: b.analysisMirror()})
	}
	for _, be := range r.backends {
		ref := gatewayv1.HTTPBackendRef{BackendRef: b.backendRef(be)}
		if be.setCookie != "" {
			ref.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: setCookieFilter(be.setCookie)}}
		}
		out.BackendRefs = append(out.BackendRefs, ref)
	}
	return out
}

// grpcMatch renders a condition for a GRPCRoute.
func grpcMatch(m gwMatch) gatewayv1.GRPCRouteMatch {
	var out gatewayv1.GRPCRouteMatch
	if m.grpcService != "" || m.grpcMethod != "" {
		t := gatewayv1.GRPCMethodMatchExact
		out.Method = &gatewayv1.GRPCMethodMatch{Type: &t}
		if m.grpcService != "" {
			s := m.grpcService
			out.Method.Service = &s
		}
		if m.grpcMethod != "" {
			mm := m.grpcMethod
			out.Method.Method = &mm
		}
	}
	for _, h := range m.headers {
		t := gatewayv1.GRPCHeaderMatchExact
		if h.regex {
			t = gatewayv1.GRPCHeaderMatchRegularExpression
		}
		out.Headers = append(out.Headers, gatewayv1.GRPCHeaderMatch{Type: &t, Name: gatewayv1.GRPCHeaderName(h.name), Value: h.value})
	}
	return out
}

func (b *gwBuilder) grpcRule(r gwRule) gatewayv1.GRPCRouteRule {
	out := gatewayv1.GRPCRouteRule{Name: ruleName(r.name)}
	for _, m := range r.matches {
		out.Matches = append(out.Matches, grpcMatch(m))
	}
	if f := b.requestHeaders; f != nil {
		out.Filters = append(out.Filters, gatewayv1.GRPCRouteFilter{Type: gatewayv1.GRPCRouteFilterRequestHeaderModifier, RequestHeaderModifier: f.DeepCopy()})
	}
	if f := b.ruleResponseHeaders(r); f != nil {
		out.Filters = append(out.Filters, gatewayv1.GRPCRouteFilter{Type: gatewayv1.GRPCRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f})
	}
	for _, m := range b.mirrors {
		out.Filters = append(out.Filters, gatewayv1.GRPCRouteFilter{Type: gatewayv1.GRPCRouteFilterRequestMirror, RequestMirror: m.DeepCopy()})
	}
	if r.mirror {
		out.Filters = append(out.Filters, gatewayv1.GRPCRouteFilter{Type: gatewayv1.GRPCRouteFilterRequestMirror, RequestMirror: b.analysisMirror()})
	}
	for _, be := range r.backends {
		ref := gatewayv1.GRPCBackendRef{BackendRef: b.backendRef(be)}
		if be.setCookie != "" {
			ref.Filters = []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterResponseHeaderModifier, ResponseHeaderModifier: setCookieFilter(be.setCookie)}}
		}
		out.BackendRefs = append(out.BackendRefs, ref)
	}
	return out
}

// routeMeta is the metadata of the generated route: spec.service.apex's labels and
// annotations, and Flux's opt-outs.
func routeMeta(c *flaggerv1.Canary) metav1.ObjectMeta {
	apex, _, _ := c.GetServiceNames()
	var md flaggerv1.CustomMetadata
	if c.Spec.Service.Apex != nil {
		md = *c.Spec.Service.Apex
	}
	return metav1.ObjectMeta{
		Name:        apex,
		Namespace:   c.Namespace,
		Labels:      copyStringMap(md.Labels),
		Annotations: generatedAnnotations(md.Annotations),
	}
}

// gwBuild converts the Canary for split s: the parents, hostnames and rules, with every
// problem found.
func gwBuild(c *flaggerv1.Canary, s Split) (*gwBuilder, []gatewayv1.ParentReference, []gatewayv1.Hostname, []gwRule, field.ErrorList) {
	if err := s.validate(); err != nil {
		return nil, nil, nil, nil, field.ErrorList{field.InternalError(nil, err)}
	}
	b := newGWBuilder(c)
	rules := b.rules(s)
	b.checkRules(rules)
	return b, b.parents, b.hosts, rules, dedupe(b.cv.errs)
}

// HTTPRoute returns the HTTPRoute <apex> that routes split s (gateway.networking.k8s.io/v1;
// the router writes the same object as v1beta1 for provider gatewayapi:v1beta1). It reads
// the session-affinity cookies from c.status and never changes c. No owner is set.
func HTTPRoute(c *flaggerv1.Canary, s Split) (*gatewayv1.HTTPRoute, error) {
	b, parents, hosts, rules, errs := gwBuild(c, s)
	if len(errs) > 0 {
		return nil, fmt.Errorf("HTTPRoute of canary %s/%s: %w: %w", c.Namespace, c.Name, ErrInvalidRoute, errs.ToAggregate())
	}
	rt := &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: httpRouteGVK.GroupVersion().String(), Kind: httpRouteGVK.Kind},
		ObjectMeta: routeMeta(c),
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parents},
			Hostnames:       hosts,
		},
	}
	for _, r := range rules {
		rt.Spec.Rules = append(rt.Spec.Rules, b.httpRule(r))
	}
	return rt, nil
}

// GRPCRoute returns the GRPCRoute <apex> that routes split s to a gRPC service.
func GRPCRoute(c *flaggerv1.Canary, s Split) (*gatewayv1.GRPCRoute, error) {
	b, parents, hosts, rules, errs := gwBuild(c, s)
	if len(errs) > 0 {
		return nil, fmt.Errorf("GRPCRoute of canary %s/%s: %w: %w", c.Namespace, c.Name, ErrInvalidRoute, errs.ToAggregate())
	}
	rt := &gatewayv1.GRPCRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: grpcRouteGVK.GroupVersion().String(), Kind: grpcRouteGVK.Kind},
		ObjectMeta: routeMeta(c),
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parents},
			Hostnames:       hosts,
		},
	}
	for _, r := range rules {
		rt.Spec.Rules = append(rt.Spec.Rules, b.grpcRule(r))
	}
	return rt, nil
}

// ValidateGatewayAPI returns every problem that keeps the gatewayapi provider from building
// the Canary's route, in any state of a run, with the paths of the Canary fields that cause
// them. The Canary webhook calls it to refuse such a Canary at admission.
func ValidateGatewayAPI(c *flaggerv1.Canary) field.ErrorList {
	// A run in its middle has the most rules: a split, the mirror if asked, and both
	// session cookies.
	probe := c.DeepCopy()
	s := Split{Primary: 90, Canary: 10}
	if a := probe.GetAnalysis(); a != nil {
		s.Mirrored = a.Mirror
		if sa := a.SessionAffinity; sa != nil && sa.CookieName != "" {
			probe.Status.SessionAffinityCookie = sa.CookieName + "=VALIDATION"
			if sa.PrimaryCookieName != "" {
				probe.Status.PrimarySessionAffinityCookie = sa.PrimaryCookieName + "=VALIDATION"
			}
		}
	}
	_, _, _, _, errs := gwBuild(probe, s)
	return errs
}
