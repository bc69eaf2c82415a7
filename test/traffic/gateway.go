package traffic

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The simulator as a Gateway API implementation: it accepts the HTTPRoutes and GRPCRoutes of
// the simulated namespaces (writing their status.parents as a gateway controller does),
// routes a steady stream of requests through them as an Envoy-based gateway would (the
// matching rule of highest precedence among the routes attached to the same parent and
// hostname, weighted backends, request mirrors, response headers, session cookies) and
// reports what Istio's gateway reports (istio_* with reporter="source", and the workloads'
// sidecars with reporter="destination"), plus the application's own request metrics that
// Flagger's builtin Gateway API checks read.

// Routing selects the routing objects the simulator reads.
type Routing int

const (
	// RouteIstio routes through Istio VirtualServices (the default).
	RouteIstio Routing = 1 << iota
	// RouteGatewayAPI routes through the Gateway API's HTTPRoutes and GRPCRoutes.
	RouteGatewayAPI
)

// ControllerName is the gateway controller name the simulator writes in route status.
const ControllerName gatewayv1.GatewayController = "traffic.herald.test/simulator"

// The application's own metrics, as podinfo and most Go HTTP and gRPC services expose them,
// with the labels Prometheus's Kubernetes pod discovery is usually relabelled to.
const (
	AppRequestDuration = "http_request_duration_seconds"
	AppGRPCHandled     = "grpc_server_handled_total"
)

func (s *Simulator) routing() Routing {
	if s.Routing == 0 {
		return RouteIstio
	}
	return s.Routing
}

// gwRouteState is the routing state of one route, kept across ticks like vsState. Unlike
// the Istio path, backends are picked per rule and class: every class (a browser with its
// cookies, say) sees the split exactly, whatever the interleaving of the classes.
type gwRouteState struct {
	classes smooth
	rules   map[gwRuleKey]*routeState
}

type gwRuleKey struct {
	rule  int
	class string // "" for the rule's mirrors
}

func (st *gwRouteState) rule(i int, class string) *routeState {
	k := gwRuleKey{i, class}
	rs, ok := st.rules[k]
	if !ok {
		rs = &routeState{}
		st.rules[k] = rs
	}
	return rs
}

func (s *Simulator) gwState(key string) *gwRouteState {
	st, ok := s.gwStates[key]
	if !ok {
		st = &gwRouteState{rules: map[gwRuleKey]*routeState{}}
		s.gwStates[key] = st
	}
	return st
}

// gwTarget is a route of either kind, reduced to what routing needs.
type gwTarget struct {
	key       string // kind/namespace/name
	kind      string
	namespace string
	name      string
	created   time.Time
	parents   []string // parent keys
	hostnames []string
	rules     []gwSimRule
}

type gwSimRule struct {
	matches  []gwSimMatch // none: matches every request
	backends []gwSimBackend
	mirrors  []gwSimMirror
	// setCookies are the Set-Cookie values the rule adds to every response.
	setCookies []string
}

type gwSimMatch struct {
	// HTTP
	pathType gatewayv1.PathMatchType
	path     string
	method   string
	query    []gwSimValue
	// gRPC
	grpcService, grpcMethod string
	grpcRegex               bool
	// both
	headers []gwSimValue
}

type gwSimValue struct {
	name  string
	regex bool
	value string
}

type gwSimBackend struct {
	host       string // <svc>.<ns>, or "" when the reference names no Service
	weight     float64
	setCookies []string
}

type gwSimMirror struct {
	host     string
	fraction float64
}

func backendHost(ref gatewayv1.BackendObjectReference, routeNamespace string) string {
	if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Service") {
		return ""
	}
	ns := routeNamespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return string(ref.Name) + "." + ns
}

func gwParentKey(p gatewayv1.ParentReference, routeNamespace string) string {
	group, kind, ns := gatewayv1.GroupName, "Gateway", routeNamespace
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	return group + "/" + kind + "/" + ns + "/" + string(p.Name)
}

func setCookiesOf(f *gatewayv1.HTTPHeaderFilter) []string {
	if f == nil {
		return nil
	}
	var out []string
	for _, h := range append(slices.Clone(f.Set), f.Add...) {
		if strings.EqualFold(string(h.Name), "Set-Cookie") {
			out = append(out, h.Value)
		}
	}
	return out
}

func mirrorOf(m *gatewayv1.HTTPRequestMirrorFilter, routeNamespace string) gwSimMirror {
	f := 1.0
	switch {
	case m.Percent != nil:
		f = float64(*m.Percent) / 100
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den > 0 {
			f = float64(m.Fraction.Numerator) / float64(den)
		}
	}
	return gwSimMirror{host: backendHost(m.BackendRef, routeNamespace), fraction: f}
}

func weightOf(w *int32) float64 {
	if w == nil {
		return 1
	}
	return float64(*w)
}

func httpTarget(rt *gatewayv1.HTTPRoute) gwTarget {
	t := gwTarget{key: "HTTPRoute/" + key(rt.Namespace, rt.Name), kind: "HTTPRoute", namespace: rt.Namespace, name: rt.Name, created: rt.CreationTimestamp.Time}
	for _, p := range rt.Spec.ParentRefs {
		t.parents = append(t.parents, gwParentKey(p, rt.Namespace))
	}
	for _, h := range rt.Spec.Hostnames {
		t.hostnames = append(t.hostnames, string(h))
	}
	for _, r := range rt.Spec.Rules {
		var sr gwSimRule
		for _, m := range r.Matches {
			sm := gwSimMatch{pathType: gatewayv1.PathMatchPathPrefix, path: "/"}
			if p := m.Path; p != nil {
				if p.Type != nil {
					sm.pathType = *p.Type
				}
				if p.Value != nil {
					sm.path = *p.Value
				}
			}
			if m.Method != nil {
				sm.method = string(*m.Method)
			}
			for _, h := range m.Headers {
				sm.headers = append(sm.headers, gwSimValue{name: string(h.Name), regex: h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression, value: h.Value})
			}
			for _, q := range m.QueryParams {
				sm.query = append(sm.query, gwSimValue{name: string(q.Name), regex: q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression, value: q.Value})
			}
			sr.matches = append(sr.matches, sm)
		}
		if len(r.Matches) == 0 {
			sr.matches = []gwSimMatch{{pathType: gatewayv1.PathMatchPathPrefix, path: "/"}}
		}
		for _, f := range r.Filters {
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestMirror:
				if f.RequestMirror != nil {
					sr.mirrors = append(sr.mirrors, mirrorOf(f.RequestMirror, rt.Namespace))
				}
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				sr.setCookies = append(sr.setCookies, setCookiesOf(f.ResponseHeaderModifier)...)
			}
		}
		for _, b := range r.BackendRefs {
			be := gwSimBackend{host: backendHost(b.BackendObjectReference, rt.Namespace), weight: weightOf(b.Weight)}
			for _, f := range b.Filters {
				if f.Type == gatewayv1.HTTPRouteFilterResponseHeaderModifier {
					be.setCookies = append(be.setCookies, setCookiesOf(f.ResponseHeaderModifier)...)
				}
			}
			sr.backends = append(sr.backends, be)
		}
		t.rules = append(t.rules, sr)
	}
	return t
}

func grpcTarget(rt *gatewayv1.GRPCRoute) gwTarget {
	t := gwTarget{key: "GRPCRoute/" + key(rt.Namespace, rt.Name), kind: "GRPCRoute", namespace: rt.Namespace, name: rt.Name, created: rt.CreationTimestamp.Time}
	for _, p := range rt.Spec.ParentRefs {
		t.parents = append(t.parents, gwParentKey(p, rt.Namespace))
	}
	for _, h := range rt.Spec.Hostnames {
		t.hostnames = append(t.hostnames, string(h))
	}
	for _, r := range rt.Spec.Rules {
		var sr gwSimRule
		for _, m := range r.Matches {
			var sm gwSimMatch
			if mm := m.Method; mm != nil {
				sm.grpcRegex = mm.Type != nil && *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression
				if mm.Service != nil {
					sm.grpcService = *mm.Service
				}
				if mm.Method != nil {
					sm.grpcMethod = *mm.Method
				}
			}
			for _, h := range m.Headers {
				sm.headers = append(sm.headers, gwSimValue{name: string(h.Name), regex: h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression, value: h.Value})
			}
			sr.matches = append(sr.matches, sm)
		}
		if len(r.Matches) == 0 {
			sr.matches = []gwSimMatch{{}}
		}
		for _, f := range r.Filters {
			switch f.Type {
			case gatewayv1.GRPCRouteFilterRequestMirror:
				if f.RequestMirror != nil {
					sr.mirrors = append(sr.mirrors, mirrorOf(f.RequestMirror, rt.Namespace))
				}
			case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
				sr.setCookies = append(sr.setCookies, setCookiesOf(f.ResponseHeaderModifier)...)
			}
		}
		for _, b := range r.BackendRefs {
			be := gwSimBackend{host: backendHost(b.BackendObjectReference, rt.Namespace), weight: weightOf(b.Weight)}
			for _, f := range b.Filters {
				if f.Type == gatewayv1.GRPCRouteFilterResponseHeaderModifier {
					be.setCookies = append(be.setCookies, setCookiesOf(f.ResponseHeaderModifier)...)
				}
			}
			sr.backends = append(sr.backends, be)
		}
		t.rules = append(t.rules, sr)
	}
	return t
}

// hostnameScore says how well a route's hostnames take an authority: 0 when they do not, 1
// for a route without hostnames, then more for longer and exact (not wildcard) names, so
// that the most specific route wins as the Gateway API asks.
func hostnameScore(hostnames []string, authority string) int {
	if len(hostnames) == 0 {
		return 1
	}
	host := strings.ToLower(authority)
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	best := 0
	for _, h := range hostnames {
		switch {
		case h == host:
			best = max(best, 2+2*len(h)+1)
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1:
			best = max(best, 2+2*len(h))
		}
	}
	return best
}

// gwCandidate is a (route, rule, match) that takes a request, with its precedence.
type gwCandidate struct {
	target *gwTarget
	rule   int
	rank   []int
}

// better applies the Gateway API's precedence: the higher rank wins; on a tie the older
// route, then the route first by namespace/name, then the earlier rule.
func (c gwCandidate) better(o gwCandidate) bool {
	for i := range c.rank {
		if c.rank[i] != o.rank[i] {
			return c.rank[i] > o.rank[i]
		}
	}
	if !c.target.created.Equal(o.target.created) {
		return c.target.created.Before(o.target.created)
	}
	if c.target.key != o.target.key {
		return c.target.key < o.target.key
	}
	return c.rule < o.rule
}

// gwRequest is a request as the gateway sees it.
type gwRequest struct {
	*request
	headers   map[string]string // the class's headers plus its cookies
	authority string
	parent    string
	grpc      bool
}

func (s *Simulator) gwMatchValue(v gwSimValue, got string, present bool) bool {
	if !present {
		return false
	}
	if !v.regex {
		return got == v.value
	}
	re := s.gwRegex(v.value)
	return re != nil && re.MatchString(got)
}

func (s *Simulator) gwRegex(pattern string) *regexp.Regexp {
	if re, ok := s.regexps[pattern]; ok {
		return re
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		s.warnKey("regex/"+pattern, "invalid regular expression in a route match; it matches nothing", "regex", pattern, "error", err.Error())
		re = nil
	}
	s.regexps[pattern] = re
	return re
}

// pathPrefixMatches is the Gateway API's prefix match: by whole path segments.
func pathPrefixMatches(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// rank returns the precedence of match m for request r, or nil when m does not take r.
func (s *Simulator) rank(m gwSimMatch, r *gwRequest, hostScore int) []int {
	for _, h := range m.headers {
		v, ok := r.headers[strings.ToLower(h.name)]
		if !s.gwMatchValue(h, v, ok) {
			return nil
		}
	}
	if r.grpc {
		svc, method, _ := strings.Cut(strings.TrimPrefix(r.path, "/"), "/")
		if m.grpcService != "" || m.grpcMethod != "" {
			check := func(want, got string) bool {
				if want == "" {
					return true
				}
				if m.grpcRegex {
					re := s.gwRegex(want)
					return re != nil && re.MatchString(got)
				}
				return want == got
			}
			if !check(m.grpcService, svc) || !check(m.grpcMethod, method) {
				return nil
			}
		}
		return []int{hostScore, len(m.grpcService), len(m.grpcMethod), len(m.headers)}
	}
	pathRank := 0
	switch m.pathType {
	case gatewayv1.PathMatchExact:
		if r.path != m.path {
			return nil
		}
		pathRank = 3
	case gatewayv1.PathMatchPathPrefix:
		if !pathPrefixMatches(m.path, r.path) {
			return nil
		}
		pathRank = 2
	case gatewayv1.PathMatchRegularExpression:
		re := s.gwRegex(m.path)
		if re == nil || !re.MatchString(r.path) {
			return nil
		}
		pathRank = 1
	}
	if m.method != "" && m.method != r.method {
		return nil
	}
	for _, q := range m.query {
		vals, ok := r.query[q.name]
		v := ""
		if ok && len(vals) > 0 {
			v = vals[0]
		}
		if !s.gwMatchValue(q, v, ok) {
			return nil
		}
	}
	method := 0
	if m.method != "" {
		method = 1
	}
	return []int{hostScore, pathRank, len(m.path), method, len(m.headers), len(m.query)}
}

// gwPick finds the rule that takes r among the routes of the same kind attached to r's parent.
func (s *Simulator) gwPick(targets []*gwTarget, r *gwRequest) (gwCandidate, bool) {
	var best gwCandidate
	found := false
	for _, t := range targets {
		if !slices.Contains(t.parents, r.parent) {
			continue
		}
		hs := hostnameScore(t.hostnames, r.authority)
		if hs == 0 {
			continue
		}
		for i, rule := range t.rules {
			for _, m := range rule.matches {
				rank := s.rank(m, r, hs)
				if rank == nil {
					continue
				}
				c := gwCandidate{target: t, rule: i, rank: rank}
				if !found || c.better(best) {
					best, found = c, true
				}
			}
		}
	}
	return best, found
}

// jarKey identifies the cookies one class of clients holds for one route.
type jarKey struct{ class, route string }

type jarCookie struct {
	value   string
	expires time.Time
}

// cookieHeader returns the Cookie header a class sends to a route: its own, plus the cookies
// it was given (when it keeps cookies), in a stable order.
func (s *Simulator) cookieHeader(req *request, route string, now time.Time) (string, bool) {
	own, hasOwn := req.headers["cookie"]
	if !req.cookies {
		return own, hasOwn
	}
	jar := s.jars[jarKey{req.class, route}]
	names := make([]string, 0, len(jar))
	for name, c := range jar {
		if now.After(c.expires) {
			delete(jar, name)
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	parts := []string{}
	if hasOwn && own != "" {
		parts = append(parts, own)
	}
	for _, n := range names {
		parts = append(parts, n+"="+jar[n].value)
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "; "), true
}

// keepCookies stores the cookies a response sets, for a class that keeps cookies: a cookie
// with Max-Age zero or below is deleted, as browsers do.
func (s *Simulator) keepCookies(req *request, route string, setCookies []string, now time.Time) {
	if !req.cookies || len(setCookies) == 0 {
		return
	}
	k := jarKey{req.class, route}
	jar, ok := s.jars[k]
	if !ok {
		jar = map[string]jarCookie{}
		s.jars[k] = jar
	}
	for _, sc := range setCookies {
		parts := strings.Split(sc, ";")
		name, value, ok := strings.Cut(strings.TrimSpace(parts[0]), "=")
		if !ok || name == "" {
			continue
		}
		expires := now.Add(24 * time.Hour) // a session cookie: kept for the simulation
		for _, attr := range parts[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(attr), "=")
			if strings.EqualFold(k, "Max-Age") {
				if n, err := strconv.Atoi(v); err == nil {
					expires = now.Add(time.Duration(n) * time.Second)
				}
			}
		}
		if !expires.After(now) {
			delete(jar, name)
			continue
		}
		jar[name] = jarCookie{value: value, expires: expires}
	}
}

// Cookie returns the value of the cookie name that a class keeping cookies holds for the
// route (kind HTTPRoute or GRPCRoute) namespace/name, or "".
func (s *Simulator) Cookie(class, kind, namespace, name, cookie string) string {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.jars[jarKey{class, kind + "/" + key(namespace, name)}][cookie]
	if !ok || time.Now().After(c.expires) {
		return ""
	}
	return c.value
}

// generateGateway sends n requests to every route of the snapshot.
func (s *Simulator) generateGateway(snap *snapshot, n int) {
	now := time.Now()
	for k := range s.gwStates {
		if _, ok := snap.gwByKey[k]; !ok {
			delete(s.gwStates, k)
		}
	}
	for k := range s.jars {
		if _, ok := snap.gwByKey[k.route]; !ok {
			delete(s.jars, k)
		}
	}
	for _, t := range snap.gwTargets {
		if len(t.parents) == 0 {
			continue // attached to nothing: no gateway routes it
		}
		st := s.gwState(t.key)
		for i := 0; i < n; i++ {
			c := st.classes.pick("classes", s.shares)
			if c < 0 {
				break
			}
			s.gwSend(snap, t, &s.requests[c], now)
		}
	}
}

// gwSend routes one request of a class that enters through t's first parent with t's first
// hostname (or the class's Host header).
func (s *Simulator) gwSend(snap *snapshot, entry *gwTarget, req *request, now time.Time) {
	r := &gwRequest{request: req, parent: entry.parents[0], grpc: entry.kind == "GRPCRoute", headers: req.headers}
	r.authority = firstOf(req.headers[":authority"], req.headers["host"])
	if r.authority == "" && len(entry.hostnames) > 0 {
		r.authority = strings.Replace(entry.hostnames[0], "*", "www", 1)
	}
	if cookie, ok := s.cookieHeader(req, entry.key, now); ok {
		r.headers = make(map[string]string, len(req.headers)+1)
		for k, v := range req.headers {
			r.headers[k] = v
		}
		r.headers["cookie"] = cookie
	}
	candidates := snap.gwHTTP
	if r.grpc {
		candidates = snap.gwGRPC
	}
	gatewayName := entry.parents[0][strings.LastIndex(entry.parents[0], "/")+1:]
	x := exchange{sourceNamespace: entry.namespace, sourceWorkload: gatewayName, grpc: r.grpc}
	pick, ok := s.gwPick(candidates, r)
	var setCookies []string
	if !ok {
		x.code, x.flags = http.StatusNotFound, flagNoRouteFound
	} else {
		t, rule := pick.target, &pick.target.rules[pick.rule]
		st := s.gwState(t.key)
		setCookies = append(setCookies, rule.setCookies...)
		setCookies = append(setCookies, s.gwForward(snap, t, rule, st.rule(pick.rule, req.class), &x)...)
		s.gwMirror(snap, t, rule, st.rule(pick.rule, ""), r.grpc)
	}
	wl := unknown
	if x.workload != nil {
		wl = x.workload.name
		s.metrics.observe(ptr(x.labels(reporterDestination)), x.latency)
		s.appObserve(snap, x.workload, req.method, x.code, x.latency, r.grpc, r.path)
	}
	s.metrics.observe(ptr(x.labels(reporterSource)), x.latency)
	s.metrics.simulated.WithLabelValues(entry.name, entry.namespace, req.class, wl).Inc()
	s.byClass[classKey{entry.namespace, entry.name, req.class, wl}]++
	if x.workload == nil {
		s.count(key(entry.namespace, unknown), x.code)
	}
	s.keepCookies(req, entry.key, setCookies, now)
}

// gwForward picks a backend by weight and lets its workload answer; it returns the
// Set-Cookie values of the chosen backend.
func (s *Simulator) gwForward(snap *snapshot, t *gwTarget, rule *gwSimRule, rs *routeState, x *exchange) []string {
	weights := make([]float64, len(rule.backends))
	var sig strings.Builder
	for i, b := range rule.backends {
		weights[i] = b.weight
		fmt.Fprintf(&sig, "%s=%g,", b.host, b.weight)
	}
	i := rs.destinations.pick(sig.String(), weights)
	if i < 0 {
		// The Gateway API answers 500 when no backend has weight (or there is none).
		x.code, x.flags = http.StatusInternalServerError, flagNoRouteFound
		return nil
	}
	be := rule.backends[i]
	if be.host == "" {
		x.code, x.flags = http.StatusInternalServerError, flagNoClusterFound
		return nil
	}
	b := snap.resolve(be.host, t.namespace)
	x.backend = b
	if b.service == nil {
		s.warnKey("route/"+t.key+"/"+be.host, "backend names no Service in the simulated namespaces; answering 500", "route", t.key, "backend", be.host)
		x.code, x.flags = http.StatusInternalServerError, flagNoClusterFound
		return nil
	}
	w := s.endpoint(b)
	if w == nil {
		x.code, x.flags = http.StatusServiceUnavailable, flagNoHealthyUpstream
		return be.setCookies
	}
	x.workload = w
	x.code, x.latency = s.serve(w)
	x.flags = flagNone
	return be.setCookies
}

// gwMirror sends the copies of the rule's RequestMirror filters; as with Istio, only the
// receiving side reports them, and their answers are dropped.
func (s *Simulator) gwMirror(snap *snapshot, t *gwTarget, rule *gwSimRule, rs *routeState, grpc bool) {
	if len(rs.mirrors) != len(rule.mirrors) {
		rs.mirrors = make([]quota, len(rule.mirrors))
	}
	for i, m := range rule.mirrors {
		if !rs.mirrors[i].hit(math.Min(math.Max(m.fraction, 0), 1)) || m.host == "" {
			continue
		}
		b := snap.resolve(m.host, t.namespace)
		if b.service == nil {
			continue
		}
		w := s.endpoint(b)
		if w == nil {
			continue
		}
		mx := exchange{sourceNamespace: t.namespace, backend: b, workload: w, flags: flagNone, grpc: grpc}
		mx.code, mx.latency = s.serve(w)
		s.metrics.observe(ptr(mx.labels(reporterDestination)), mx.latency)
		s.appObserve(snap, w, "POST", mx.code, mx.latency, grpc, "")
	}
}

// appObserve records a request as the application itself counts it, under one of its pods.
func (s *Simulator) appObserve(snap *snapshot, w *workload, method string, code int, latency time.Duration, grpc bool, path string) {
	pod := snap.podFor(w, s.podPickers)
	if grpc {
		svc, m, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		grpcCode := "OK"
		if code >= 500 {
			grpcCode = "Internal"
		}
		s.metrics.grpcHandled.WithLabelValues(w.namespace, pod, svc, m, grpcCode).Inc()
		return
	}
	s.metrics.appDuration.WithLabelValues(w.namespace, pod, method, strconv.Itoa(code)).Observe(latency.Seconds())
}

// podFor picks, round robin, the name of a running pod of the workload, or a stand-in name
// of the same shape while none is known.
func (snap *snapshot) podFor(w *workload, pickers map[string]*smooth) string {
	var names []string
	for _, p := range snap.pods[w.namespace] {
		if p.Status.Phase == corev1.PodRunning && selects(w.selector, p.Labels) {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return w.name + "-sim-0"
	}
	p, ok := pickers[w.key]
	if !ok {
		p = &smooth{}
		pickers[w.key] = p
	}
	weights := make([]float64, len(names))
	for i := range weights {
		weights[i] = 1
	}
	return names[p.pick(strings.Join(names, ","), weights)]
}

// acceptRoutes writes, as a gateway controller would, Accepted and ResolvedRefs conditions
// for every parent of every route whose status is not yet current. A failed write is tried
// again on the next tick.
func (s *Simulator) acceptRoutes(ctx context.Context, snap *snapshot) {
	for _, obj := range snap.gwObjects {
		gen := obj.GetGeneration()
		var parents []gatewayv1.ParentReference
		var status *gatewayv1.RouteStatus
		switch rt := obj.(type) {
		case *gatewayv1.HTTPRoute:
			parents, status = rt.Spec.ParentRefs, &rt.Status.RouteStatus
		case *gatewayv1.GRPCRoute:
			parents, status = rt.Spec.ParentRefs, &rt.Status.RouteStatus
		default:
			continue
		}
		if routeStatusCurrent(parents, status, gen) {
			continue
		}
		var others []gatewayv1.RouteParentStatus
		for _, ps := range status.Parents {
			if ps.ControllerName != ControllerName {
				others = append(others, ps)
			}
		}
		status.Parents = others
		for _, p := range parents {
			ps := gatewayv1.RouteParentStatus{ParentRef: p, ControllerName: ControllerName}
			for _, c := range []metav1.Condition{
				{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonAccepted), Message: "accepted by the traffic simulator"},
				{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonResolvedRefs), Message: "references resolved"},
			} {
				c.ObservedGeneration = gen
				meta.SetStatusCondition(&ps.Conditions, c)
			}
			status.Parents = append(status.Parents, ps)
		}
		if len(status.Parents) > 32 {
			status.Parents = status.Parents[:32]
		}
		if err := s.Client.Status().Update(ctx, obj); err != nil {
			s.Log.V(1).Info("route status not written; trying again next tick", "route", client.ObjectKeyFromObject(obj).String(), "error", err.Error())
		}
	}
}

func routeStatusCurrent(parents []gatewayv1.ParentReference, status *gatewayv1.RouteStatus, gen int64) bool {
	n := 0
	for _, ps := range status.Parents {
		if ps.ControllerName != ControllerName {
			continue
		}
		n++
		c := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionAccepted))
		if c == nil || c.ObservedGeneration != gen || c.Status != metav1.ConditionTrue {
			return false
		}
	}
	return n == len(parents)
}
