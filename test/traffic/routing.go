package traffic

import (
	"net/url"
	"regexp"
	"strings"

	"istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// The simulated client. Its identity appears in the source_* labels and is what
// sourceLabels / sourceNamespace matches are compared against.
const (
	sourceWorkload = "traffic-simulator"
	meshGateway    = "mesh"
)

var sourceLabels = map[string]string{"app": sourceWorkload}

// request is one simulated HTTP request of a class, prepared once.
type request struct {
	class   string
	method  string
	path    string // without the query
	query   url.Values
	headers map[string]string // lower-case names, as Envoy sees them
	cookies bool              // keeps the cookies responses set (Class.Cookies)
}

func newRequest(c Class) request {
	r := request{class: c.Name, method: c.Method, headers: map[string]string{}, cookies: c.Cookies}
	if r.method == "" {
		r.method = "GET"
	}
	p := c.Path
	if p == "" {
		p = "/"
	}
	path, rawQuery, _ := strings.Cut(p, "?")
	r.path = path
	// A malformed query is kept as far as it parses: the simulator sends what the test wrote.
	r.query, _ = url.ParseQuery(rawQuery)
	for k, v := range c.Headers {
		r.headers[strings.ToLower(k)] = v
	}
	return r
}

// entry describes how a request enters a VirtualService: through the mesh (a sidecar) or
// through a gateway, and the authority it carries.
type entry struct {
	gateway   string
	authority string
	namespace string // the client's namespace
}

func entryFor(vs *networkingv1.VirtualService, req *request) entry {
	e := entry{gateway: meshGateway, namespace: vs.Namespace}
	gws := vs.Spec.GetGateways()
	if len(gws) > 0 && !contains(gws, meshGateway) {
		// Only gateway traffic reaches this VirtualService; simulate it arriving at the first.
		e.gateway = gws[0]
	}
	e.authority = firstOf(req.headers[":authority"], req.headers["host"])
	if e.authority == "" && len(vs.Spec.GetHosts()) > 0 {
		e.authority = vs.Spec.GetHosts()[0]
	}
	return e
}

// target is the HTTP route that took a request.
type target struct {
	owner *networkingv1.VirtualService // the VirtualService holding the route (a delegate for delegated routes)
	index int
	route *v1alpha3.HTTPRoute
}

// route walks the http routes in order, as Envoy does, and returns the first whose match
// list accepts the request. Delegated routes are expanded in place, one level deep, as
// Istio merges them; a delegate none of whose routes match lets the walk go on.
func (s *Simulator) route(snap *snapshot, vs *networkingv1.VirtualService, req *request, e entry, nested bool) (target, bool) {
	for i, r := range vs.Spec.GetHttp() {
		if r == nil || !s.routeMatches(vs, r, req, e) {
			continue
		}
		d := r.GetDelegate()
		if d == nil {
			return target{owner: vs, index: i, route: r}, true
		}
		if nested {
			s.warnOnce(vs, "nested delegation is not supported by Istio; route skipped", "route", i)
			continue
		}
		ns := d.GetNamespace()
		if ns == "" {
			ns = vs.Namespace
		}
		child, ok := snap.vsByKey[key(ns, d.GetName())]
		if !ok {
			s.warnOnce(vs, "delegate VirtualService not found (or not in a simulated namespace); route skipped", "route", i, "delegate", key(ns, d.GetName()))
			continue
		}
		if t, ok := s.route(snap, child, req, e, true); ok {
			return t, true
		}
	}
	return target{}, false
}

func (s *Simulator) routeMatches(vs *networkingv1.VirtualService, r *v1alpha3.HTTPRoute, req *request, e entry) bool {
	if len(r.GetMatch()) == 0 {
		return true
	}
	for _, m := range r.GetMatch() {
		if s.matchRequest(vs, m, req, e) {
			return true
		}
	}
	return false
}

// matchRequest applies one HTTPMatchRequest: every condition it sets must hold.
func (s *Simulator) matchRequest(vs *networkingv1.VirtualService, m *v1alpha3.HTTPMatchRequest, req *request, e entry) bool {
	if m == nil {
		return true // an empty match entry matches everything
	}
	if u := m.GetUri(); u != nil && !s.matchString(vs, u, req.path, true, m.GetIgnoreUriCase()) {
		return false
	}
	if sc := m.GetScheme(); sc != nil && !s.matchString(vs, sc, "http", true, false) {
		return false
	}
	if mt := m.GetMethod(); mt != nil && !s.matchString(vs, mt, req.method, true, false) {
		return false
	}
	if a := m.GetAuthority(); a != nil && !s.matchString(vs, a, e.authority, true, false) {
		return false
	}
	for name, sm := range m.GetHeaders() {
		v, present := req.header(name, e)
		if !s.matchString(vs, sm, v, present, false) {
			return false
		}
	}
	for name, sm := range m.GetWithoutHeaders() {
		v, present := req.header(name, e)
		if s.matchString(vs, sm, v, present, false) {
			return false
		}
	}
	for name, sm := range m.GetQueryParams() {
		vals, present := req.query[name]
		v := ""
		if present && len(vals) > 0 {
			v = vals[0]
		}
		if !s.matchString(vs, sm, v, present, false) {
			return false
		}
	}
	// port is not checked: a simulated request always goes to the Service's port.
	for k, v := range m.GetSourceLabels() {
		if sourceLabels[k] != v {
			return false
		}
	}
	if ns := m.GetSourceNamespace(); ns != "" && ns != e.namespace {
		return false
	}
	if gws := m.GetGateways(); len(gws) > 0 && !contains(gws, e.gateway) {
		return false
	}
	return true
}

// header reads a request header by its lower-case name, including the pseudo-headers Envoy
// lets a match name.
func (r *request) header(name string, e entry) (string, bool) {
	switch n := strings.ToLower(name); n {
	case ":path":
		return r.path, true
	case ":method":
		return r.method, true
	case ":authority", "host":
		return e.authority, e.authority != ""
	case ":scheme":
		return "http", true
	default:
		v, ok := r.headers[n]
		return v, ok
	}
}

// matchString applies an Istio StringMatch. A StringMatch with no type set only asks for
// presence (meaningful for headers and query parameters). Regexes are RE2 and must match
// the whole value, as Envoy's safe_regex does.
func (s *Simulator) matchString(vs *networkingv1.VirtualService, m *v1alpha3.StringMatch, v string, present, foldCase bool) bool {
	if !present {
		return false
	}
	if m == nil {
		return true
	}
	switch t := m.GetMatchType().(type) {
	case *v1alpha3.StringMatch_Exact:
		if foldCase {
			return strings.EqualFold(v, t.Exact)
		}
		return v == t.Exact
	case *v1alpha3.StringMatch_Prefix:
		if foldCase {
			return strings.HasPrefix(strings.ToLower(v), strings.ToLower(t.Prefix))
		}
		return strings.HasPrefix(v, t.Prefix)
	case *v1alpha3.StringMatch_Regex:
		re := s.compileRegex(vs, t.Regex)
		return re != nil && re.MatchString(v)
	default:
		return true
	}
}

// compileRegex compiles a pattern once; an invalid one matches nothing (Istio would have refused
// it) and is reported once.
func (s *Simulator) compileRegex(vs *networkingv1.VirtualService, pattern string) *regexp.Regexp {
	if re, ok := s.regexps[pattern]; ok {
		return re
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		s.warnOnce(vs, "invalid regex in a match; it matches nothing", "regex", pattern, "error", err.Error())
		re = nil
	}
	s.regexps[pattern] = re
	return re
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
