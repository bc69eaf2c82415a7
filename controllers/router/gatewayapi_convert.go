package router

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// This file turns the routing settings of a Canary (api/v1beta1/routing_types.go, which have
// the shape of Istio's) into Gateway API values. What the Gateway API cannot express is
// reported with the path of the Canary field that asks for it, instead of being dropped; what
// its CRDs would refuse (patterns, enums, sizes, CEL rules) is refused here first, so that a
// Canary the webhook accepts always gives a route the API server accepts.

// Limits and patterns of the Gateway API's standard-channel CRDs (v1.6).
const (
	gwMaxRules          = 16
	gwMaxMatchesPerRule = 64
	gwMaxMatchesTotal   = 128
	gwMaxHeaderMatches  = 16
	gwMaxQueryMatches   = 16
	gwMaxHeaderOps      = 16
	gwMaxHostnames      = 16
	gwMaxParentRefs     = 32
	gwMaxFilters        = 16
	gwMaxCORSItems      = 64
	gwMaxHeaderName     = 256
	gwMaxHeaderValue    = 4096
	gwMaxQueryValue     = 1024
	gwMaxPath           = 1024
	gwMaxHostname       = 253
	gwDefaultCORSMaxAge = 5
)

var (
	gwHeaderName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")
	gwHostname   = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwPrecise    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwPathChars  = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)
	gwCORSOrigin = regexp.MustCompile(`(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)`)
	gwGRPCSvc    = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	gwGRPCMethod = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// gwMethods are the HTTP methods an HTTPRoute can match (and a CORS filter allow, with "*").
var gwMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// gwMatch is one match condition in a form HTTPRoute and GRPCRoute share: a request must
// meet every condition set.
type gwMatch struct {
	// pathType and path select the HTTP path; empty means the Gateway API's default, a
	// prefix match on "/".
	pathType gatewayv1.PathMatchType
	path     string
	// method is the HTTP method (HTTPRoute only).
	method string
	// grpcService and grpcMethod select the gRPC method (GRPCRoute only).
	grpcService, grpcMethod string
	// headers and query are sorted by name so that the output is stable.
	headers []gwValueMatch
	query   []gwValueMatch
}

// gwValueMatch matches a header or query parameter exactly or by regular expression.
type gwValueMatch struct {
	name  string
	regex bool
	value string
}

// gwTimeout formats a Go duration ("90s", "1.5s") as a Gateway API duration (GEP-2257:
// up to four whole numbers of h, m, s and ms, such as "1m30s" or "1s500ms").
func gwTimeout(d time.Duration) (string, error) {
	const maxGEP = 99999*time.Hour + 59*time.Minute + 59*time.Second + 999*time.Millisecond
	switch {
	case d < 0:
		return "", fmt.Errorf("must not be negative")
	case d > maxGEP:
		return "", fmt.Errorf("is longer than the Gateway API can express (99999h59m59s999ms)")
	case d%time.Millisecond != 0:
		return "", fmt.Errorf("the Gateway API counts timeouts in whole milliseconds")
	case d == 0:
		return "0s", nil
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String(), nil
}

// gwDuration parses a timeout of the Canary and returns it in the Gateway API's format.
func (cv *converter) gwDuration(p *field.Path, s string) (*gatewayv1.Duration, time.Duration) {
	if s == "" {
		return nil, 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		cv.invalid(p, s, "must be a duration such as 500ms, 15s or 1m30s")
		return nil, 0
	}
	out, err := gwTimeout(d)
	if err != nil {
		cv.invalid(p, s, err.Error())
		return nil, 0
	}
	v := gatewayv1.Duration(out)
	return &v, d
}

// gwValue converts a header or query-parameter condition. The Gateway API matches values
// exactly or by regular expression only: a prefix or suffix becomes the equivalent regular
// expression, and an empty condition (Istio's "present") the expression ".*", which matches
// any value of a present header.
func (cv *converter) gwValue(p *field.Path, name string, m flaggerv1.StringMatch, maxValue int) gwValueMatch {
	out := gwValueMatch{name: name, regex: true, value: ".*"}
	var set []string
	if m.Exact != "" {
		set = append(set, "exact")
		out.regex, out.value = false, m.Exact
	}
	if m.Prefix != "" {
		set = append(set, "prefix")
		out.regex, out.value = true, regexp.QuoteMeta(m.Prefix)+".*"
	}
	if m.Suffix != "" {
		set = append(set, "suffix")
		out.regex, out.value = true, ".*"+regexp.QuoteMeta(m.Suffix)
	}
	if m.Regex != "" {
		set = append(set, "regex")
		if _, err := regexp.Compile(m.Regex); err != nil {
			cv.invalid(p.Child("regex"), m.Regex, fmt.Sprintf("not a valid RE2 regular expression: %v", err))
		}
		out.regex, out.value = true, m.Regex
	}
	if len(set) > 1 {
		cv.invalid(p, strings.Join(set, ", "), "set only one of exact, prefix, suffix and regex")
	}
	if len(out.value) > maxValue {
		cv.invalid(p, fmt.Sprintf("%d characters", len(out.value)), fmt.Sprintf("the Gateway API allows at most %d", maxValue))
	}
	return out
}

// gwHeaderName checks a header name against the Gateway API's pattern.
func (cv *converter) gwHeaderName(p *field.Path, name string) bool {
	switch {
	case name == "":
		cv.invalid(p, name, "header names must not be empty")
	case len(name) > gwMaxHeaderName:
		cv.invalid(p, name, fmt.Sprintf("header names have at most %d characters", gwMaxHeaderName))
	case !gwHeaderName.MatchString(name):
		cv.invalid(p, name, "not a valid HTTP header name for the Gateway API (letters, digits and !#$%&'*+-.^_`|~; no pseudo-headers such as :authority)")
	default:
		return true
	}
	return false
}

// gwValues converts a map of header or query conditions into a list sorted by name. Header
// names are case-insensitive, so two keys that differ only in case are refused.
func (cv *converter) gwValues(p *field.Path, in map[string]flaggerv1.StringMatch, headers bool) []gwValueMatch {
	if len(in) == 0 {
		return nil
	}
	limit, maxValue := gwMaxQueryMatches, gwMaxQueryValue
	if headers {
		limit, maxValue = gwMaxHeaderMatches, gwMaxHeaderValue
	}
	if len(in) > limit {
		cv.invalid(p, len(in), fmt.Sprintf("the Gateway API allows at most %d conditions here", limit))
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[string]string{}
	out := make([]gwValueMatch, 0, len(in))
	for _, k := range keys {
		if !cv.gwHeaderName(p.Key(k), k) {
			continue
		}
		fold := k
		if headers {
			fold = strings.ToLower(k)
		}
		if other, dup := seen[fold]; dup {
			cv.invalid(p.Key(k), k, fmt.Sprintf("names the same header as %q: header names are case-insensitive", other))
			continue
		}
		seen[fold] = k
		out = append(out, cv.gwValue(p.Key(k), k, in[k], maxValue))
	}
	return out
}

// gwPathValue checks an exact or prefix path as the HTTPRoute CRD does.
func (cv *converter) gwPathValue(p *field.Path, v string) {
	bad := func(detail string) { cv.invalid(p, v, detail) }
	switch {
	case !strings.HasPrefix(v, "/"):
		bad("must be an absolute path starting with /")
	case len(v) > gwMaxPath:
		bad(fmt.Sprintf("the Gateway API allows at most %d characters", gwMaxPath))
	case strings.Contains(v, "//"), strings.Contains(v, "/./"), strings.Contains(v, "/../"),
		strings.Contains(strings.ToLower(v), "%2f"), strings.Contains(v, "#"),
		strings.HasSuffix(v, "/.."), strings.HasSuffix(v, "/."):
		bad("must not contain //, /./, /../, %2f or #, nor end with /. or /..")
	case !gwPathChars.MatchString(v):
		bad("holds characters a Gateway API path cannot (RFC 3986 path characters only)")
	}
}

// gwForbidden lists the Istio-only conditions of m, which the Gateway API cannot match on.
func gwForbidden(p *field.Path, m *flaggerv1.HTTPMatchRequest, grpc bool) field.ErrorList {
	var errs field.ErrorList
	forbid := func(name, detail string) {
		errs = append(errs, field.Forbidden(p.Child(name), detail))
	}
	if m.Scheme != nil {
		forbid("scheme", "the Gateway API cannot match on the scheme")
	}
	if m.Authority != nil {
		forbid("authority", "the Gateway API matches hosts through spec.service.hosts (the route's hostnames), not per condition")
	}
	if m.IgnoreURICase {
		forbid("ignoreUriCase", "Gateway API path matches are case-sensitive")
	}
	if len(m.WithoutHeaders) > 0 {
		forbid("withoutHeaders", "the Gateway API has no negative header matches")
	}
	if m.Port != 0 {
		forbid("port", "a Gateway API route selects the port through spec.service.gatewayRefs[].port or sectionName")
	}
	if len(m.SourceLabels) > 0 {
		forbid("sourceLabels", "the Gateway API cannot match on the calling workload")
	}
	if m.SourceNamespace != "" {
		forbid("sourceNamespace", "the Gateway API cannot match on the calling namespace")
	}
	if len(m.Gateways) > 0 {
		forbid("gateways", "a Gateway API route applies to all of spec.service.gatewayRefs")
	}
	if grpc {
		if m.Method != nil {
			forbid("method", "gRPC calls are all POST: a GRPCRoute matches the gRPC method through uri (/<service>/<method>)")
		}
		if len(m.QueryParams) > 0 {
			forbid("queryParams", "gRPC calls have no query parameters")
		}
	}
	return errs
}

// gwMatch converts one match request; ok is false when nothing of it could be converted.
func (cv *converter) gwMatch(p *field.Path, m *flaggerv1.HTTPMatchRequest, grpc bool) gwMatch {
	cv.errs = append(cv.errs, gwForbidden(p, m, grpc)...)
	var out gwMatch
	if u := m.URI; u != nil {
		if grpc {
			out.grpcService, out.grpcMethod = cv.gwGRPCMethod(p.Child("uri"), u)
		} else {
			out.pathType, out.path = cv.gwPath(p.Child("uri"), u)
		}
	}
	if mt := m.Method; mt != nil && !grpc {
		mp := p.Child("method")
		switch {
		case mt.Exact == "" || mt.Prefix != "" || mt.Suffix != "" || mt.Regex != "":
			cv.invalid(mp, *mt, "the Gateway API matches a method exactly: set exact only")
		case !slices.Contains(gwMethods, mt.Exact):
			cv.errs = append(cv.errs, field.NotSupported(mp.Child("exact"), mt.Exact, gwMethods))
		default:
			out.method = mt.Exact
		}
	}
	out.headers = cv.gwValues(p.Child("headers"), m.Headers, true)
	if !grpc {
		out.query = cv.gwValues(p.Child("queryParams"), m.QueryParams, false)
	}
	return out
}

// gwPath converts a uri condition of an HTTPRoute: exact and prefix as such (a Gateway API
// prefix matches whole path segments: /shop matches /shop/cart, not /shopping), a regular
// expression as such, and a suffix as the equivalent regular expression.
func (cv *converter) gwPath(p *field.Path, u *flaggerv1.StringMatch) (gatewayv1.PathMatchType, string) {
	var set []string
	var typ gatewayv1.PathMatchType
	var v string
	if u.Exact != "" {
		set, typ, v = append(set, "exact"), gatewayv1.PathMatchExact, u.Exact
		cv.gwPathValue(p.Child("exact"), v)
	}
	if u.Prefix != "" {
		set, typ, v = append(set, "prefix"), gatewayv1.PathMatchPathPrefix, u.Prefix
		cv.gwPathValue(p.Child("prefix"), v)
	}
	if u.Suffix != "" {
		set, typ, v = append(set, "suffix"), gatewayv1.PathMatchRegularExpression, ".*"+regexp.QuoteMeta(u.Suffix)
	}
	if u.Regex != "" {
		set, typ, v = append(set, "regex"), gatewayv1.PathMatchRegularExpression, u.Regex
		if _, err := regexp.Compile(u.Regex); err != nil {
			cv.invalid(p.Child("regex"), u.Regex, fmt.Sprintf("not a valid RE2 regular expression: %v", err))
		}
	}
	if len(set) > 1 {
		cv.invalid(p, strings.Join(set, ", "), "set only one of exact, prefix, suffix and regex")
	}
	if typ == gatewayv1.PathMatchRegularExpression && len(v) > gwMaxPath {
		cv.invalid(p, fmt.Sprintf("%d characters", len(v)), fmt.Sprintf("the Gateway API allows at most %d", gwMaxPath))
	}
	return typ, v
}

// gwGRPCMethod reads a gRPC method from a uri condition: a gRPC call's path is
// /<package.Service>/<Method>, so an exact uri names one method and a prefix /<Service>/
// every method of a service. Other forms have no GRPCRoute equivalent.
func (cv *converter) gwGRPCMethod(p *field.Path, u *flaggerv1.StringMatch) (service, method string) {
	const how = "a GRPCRoute matches gRPC methods: use exact /<package.Service>/<Method> or prefix /<package.Service>/"
	switch {
	case u.Exact != "" && u.Prefix == "" && u.Suffix == "" && u.Regex == "":
		svc, m, ok := strings.Cut(strings.TrimPrefix(u.Exact, "/"), "/")
		if !strings.HasPrefix(u.Exact, "/") || !ok || !gwGRPCSvc.MatchString(svc) || !gwGRPCMethod.MatchString(m) {
			cv.invalid(p.Child("exact"), u.Exact, how)
			return "", ""
		}
		return svc, m
	case u.Prefix != "" && u.Exact == "" && u.Suffix == "" && u.Regex == "":
		svc, rest, ok := strings.Cut(strings.TrimPrefix(u.Prefix, "/"), "/")
		if !strings.HasPrefix(u.Prefix, "/") || !ok || rest != "" || !gwGRPCSvc.MatchString(svc) {
			cv.invalid(p.Child("prefix"), u.Prefix, how)
			return "", ""
		}
		return svc, ""
	case u.Exact == "" && u.Prefix == "" && u.Suffix == "" && u.Regex == "":
		return "", ""
	}
	cv.invalid(p, *u, how)
	return "", ""
}

func (cv *converter) gwMatches(p *field.Path, in []flaggerv1.HTTPMatchRequest, grpc bool) []gwMatch {
	if len(in) == 0 {
		return nil
	}
	if len(in) > gwMaxMatchesPerRule {
		cv.invalid(p, len(in), fmt.Sprintf("a Gateway API rule has at most %d matches", gwMaxMatchesPerRule))
		return nil
	}
	out := make([]gwMatch, len(in))
	for i := range in {
		out[i] = cv.gwMatch(p.Index(i), &in[i], grpc)
	}
	return out
}

// mergeGWValues combines two sorted condition lists; extra's entries win on the same name
// (case-insensitively for headers).
func mergeGWValues(base, extra []gwValueMatch, headers bool) []gwValueMatch {
	if len(extra) == 0 {
		return slices.Clone(base)
	}
	same := func(a, b string) bool {
		if headers {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	out := slices.Clone(extra)
	for _, b := range base {
		if !slices.ContainsFunc(extra, func(e gwValueMatch) bool { return same(e.name, b.name) }) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b gwValueMatch) int { return strings.Compare(a.name, b.name) })
	return out
}

// mergeGWMatches returns every condition of extra combined with every condition of base (a
// request must meet both; each list holds alternatives, so the result is their cartesian
// product). What extra sets replaces base's; header and query conditions are merged by name.
// Flagger kept only extra's headers and dropped base's; here both are kept.
func mergeGWMatches(extra, base []gwMatch) []gwMatch {
	if len(base) == 0 {
		return slices.Clone(extra)
	}
	if len(extra) == 0 {
		return slices.Clone(base)
	}
	out := make([]gwMatch, 0, len(extra)*len(base))
	for _, e := range extra {
		for _, b := range base {
			m := b
			if e.pathType != "" {
				m.pathType, m.path = e.pathType, e.path
			}
			if e.method != "" {
				m.method = e.method
			}
			if e.grpcService != "" || e.grpcMethod != "" {
				m.grpcService, m.grpcMethod = e.grpcService, e.grpcMethod
			}
			m.headers = mergeGWValues(b.headers, e.headers, true)
			m.query = mergeGWValues(b.query, e.query, false)
			out = append(out, m)
		}
	}
	return out
}

// gwHeaderFilter converts header operations into a Gateway API header filter; nil when there
// is nothing to do.
func (cv *converter) gwHeaderFilter(p *field.Path, h *flaggerv1.HeaderOperations) *gatewayv1.HTTPHeaderFilter {
	if h == nil || (len(h.Set) == 0 && len(h.Add) == 0 && len(h.Remove) == 0) {
		return nil
	}
	list := func(lp *field.Path, in map[string]string) []gatewayv1.HTTPHeader {
		if len(in) == 0 {
			return nil
		}
		if len(in) > gwMaxHeaderOps {
			cv.invalid(lp, len(in), fmt.Sprintf("the Gateway API allows at most %d headers here", gwMaxHeaderOps))
			return nil
		}
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		seen := map[string]string{}
		var out []gatewayv1.HTTPHeader
		for _, k := range keys {
			if !cv.gwHeaderName(lp.Key(k), k) {
				continue
			}
			if other, dup := seen[strings.ToLower(k)]; dup {
				cv.invalid(lp.Key(k), k, fmt.Sprintf("names the same header as %q: header names are case-insensitive", other))
				continue
			}
			seen[strings.ToLower(k)] = k
			if len(in[k]) > gwMaxHeaderValue {
				cv.invalid(lp.Key(k), fmt.Sprintf("%d characters", len(in[k])), fmt.Sprintf("the Gateway API allows at most %d", gwMaxHeaderValue))
			}
			out = append(out, gatewayv1.HTTPHeader{Name: gatewayv1.HTTPHeaderName(k), Value: in[k]})
		}
		return out
	}
	out := &gatewayv1.HTTPHeaderFilter{Set: list(p.Child("set"), h.Set), Add: list(p.Child("add"), h.Add)}
	rp := p.Child("remove")
	if len(h.Remove) > gwMaxHeaderOps {
		cv.invalid(rp, len(h.Remove), fmt.Sprintf("the Gateway API allows at most %d headers here", gwMaxHeaderOps))
	} else {
		for i, name := range h.Remove {
			if !cv.gwHeaderName(rp.Index(i), name) {
				continue
			}
			if slices.ContainsFunc(out.Remove, func(have string) bool { return strings.EqualFold(have, name) }) {
				cv.errs = append(cv.errs, field.Duplicate(rp.Index(i), name))
				continue
			}
			out.Remove = append(out.Remove, name)
		}
	}
	return out
}

// gwRewrite converts spec.service.rewrite into a URLRewrite filter.
func (cv *converter) gwRewrite(p *field.Path, r *flaggerv1.HTTPRewrite) *gatewayv1.HTTPURLRewriteFilter {
	if r == nil || (r.URI == "" && r.Authority == "") {
		if r != nil && r.Type != "" {
			cv.invalid(p.Child("type"), r.Type, "has no effect without uri")
		}
		return nil
	}
	out := &gatewayv1.HTTPURLRewriteFilter{}
	if r.Authority != "" {
		if len(r.Authority) > gwMaxHostname || !gwPrecise.MatchString(r.Authority) {
			cv.invalid(p.Child("authority"), r.Authority, "the Gateway API rewrites to a lower-case DNS host name without port or wildcard")
		} else {
			h := gatewayv1.PreciseHostname(r.Authority)
			out.Hostname = &h
		}
	}
	if r.URI != "" {
		uri := r.URI
		switch r.Type {
		case "", string(gatewayv1.FullPathHTTPPathModifier):
			out.Path = &gatewayv1.HTTPPathModifier{Type: gatewayv1.FullPathHTTPPathModifier, ReplaceFullPath: &uri}
		case string(gatewayv1.PrefixMatchHTTPPathModifier):
			out.Path = &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: &uri}
		default:
			cv.errs = append(cv.errs, field.NotSupported(p.Child("type"), r.Type,
				[]string{string(gatewayv1.FullPathHTTPPathModifier), string(gatewayv1.PrefixMatchHTTPPathModifier)}))
		}
		if len(uri) > gwMaxPath {
			cv.invalid(p.Child("uri"), fmt.Sprintf("%d characters", len(uri)), fmt.Sprintf("the Gateway API allows at most %d", gwMaxPath))
		}
	}
	return out
}

// gwCORS converts spec.service.corsPolicy into a CORS filter. Gateway API origins are exact
// origins with an optional wildcard, so only exact allowOrigins are carried over.
func (cv *converter) gwCORS(p *field.Path, c *flaggerv1.CorsPolicy) *gatewayv1.HTTPCORSFilter {
	if c == nil {
		return nil
	}
	out := &gatewayv1.HTTPCORSFilter{AllowCredentials: c.AllowCredentials, MaxAge: gwDefaultCORSMaxAge}
	origin := func(op *field.Path, o string) {
		if !gwCORSOrigin.MatchString(o) {
			cv.invalid(op, o, "a Gateway API CORS origin is *, or http(s)://host[:port] with an optional *. prefix")
			return
		}
		if !slices.Contains(out.AllowOrigins, gatewayv1.CORSOrigin(o)) {
			out.AllowOrigins = append(out.AllowOrigins, gatewayv1.CORSOrigin(o))
		}
	}
	for i, o := range c.AllowOrigin {
		origin(p.Child("allowOrigin").Index(i), o)
	}
	for i, m := range c.AllowOrigins {
		mp := p.Child("allowOrigins").Index(i)
		if m.Exact == "" || m.Prefix != "" || m.Suffix != "" || m.Regex != "" {
			cv.invalid(mp, m, "the Gateway API allows exact origins only (with an optional *. host prefix)")
			continue
		}
		origin(mp.Child("exact"), m.Exact)
	}
	for i, m := range c.AllowMethods {
		if m != "*" && !slices.Contains(gwMethods, m) {
			cv.errs = append(cv.errs, field.NotSupported(p.Child("allowMethods").Index(i), m, append([]string{"*"}, gwMethods...)))
			continue
		}
		out.AllowMethods = append(out.AllowMethods, gatewayv1.HTTPMethodWithWildcard(m))
	}
	names := func(np *field.Path, in []string) []gatewayv1.HTTPHeaderName {
		var out []gatewayv1.HTTPHeaderName
		for i, h := range in {
			if h == "*" || cv.gwHeaderName(np.Index(i), h) {
				out = append(out, gatewayv1.HTTPHeaderName(h))
			}
		}
		return out
	}
	out.AllowHeaders = names(p.Child("allowHeaders"), c.AllowHeaders)
	out.ExposeHeaders = names(p.Child("exposeHeaders"), c.ExposeHeaders)
	for _, l := range []struct {
		name string
		n    int
		star bool
	}{
		{"allowOrigins", len(out.AllowOrigins), slices.Contains(out.AllowOrigins, "*")},
		{"allowMethods", len(out.AllowMethods), slices.Contains(out.AllowMethods, "*")},
		{"allowHeaders", len(out.AllowHeaders), slices.Contains(out.AllowHeaders, "*")},
		{"exposeHeaders", len(out.ExposeHeaders), slices.Contains(out.ExposeHeaders, "*")},
	} {
		if l.n > gwMaxCORSItems {
			cv.invalid(p.Child(l.name), l.n, fmt.Sprintf("the Gateway API allows at most %d", gwMaxCORSItems))
		}
		if l.star && l.n > 1 {
			cv.invalid(p.Child(l.name), "*", "a Gateway API CORS filter allows * only on its own")
		}
	}
	if c.MaxAge != "" {
		d, err := time.ParseDuration(c.MaxAge)
		switch {
		case err != nil:
			cv.invalid(p.Child("maxAge"), c.MaxAge, "must be a duration such as 24h")
		case d < time.Second || d%time.Second != 0 || d > (1<<31-1)*time.Second:
			cv.invalid(p.Child("maxAge"), c.MaxAge, "the Gateway API counts maxAge in whole seconds, at least 1s")
		default:
			out.MaxAge = int32(d / time.Second)
		}
	}
	return out
}

// gwBackendRef is a reference to the Service name on port, written out in full (group and
// kind are defaulted by the API server otherwise, and the route would differ from what
// Herald built on every read).
func gwBackendRef(name string, port int32) gatewayv1.BackendObjectReference {
	group, kind := gatewayv1.Group(""), gatewayv1.Kind("Service")
	p := port
	return gatewayv1.BackendObjectReference{Group: &group, Kind: &kind, Name: gatewayv1.ObjectName(name), Port: &p}
}

// gwMirror converts one of spec.service.mirror, the static mirrors (unrelated to the
// analysis' mirroring).
func (cv *converter) gwMirror(p *field.Path, m *flaggerv1.HTTPRequestMirrorFilter) *gatewayv1.HTTPRequestMirrorFilter {
	ref := m.BackendRef
	group, kind := "", "Service"
	if ref.Group != nil {
		group = *ref.Group
	}
	if ref.Kind != nil {
		kind = *ref.Kind
	}
	g, k := gatewayv1.Group(group), gatewayv1.Kind(kind)
	out := &gatewayv1.HTTPRequestMirrorFilter{BackendRef: gatewayv1.BackendObjectReference{
		Group: &g, Kind: &k, Name: gatewayv1.ObjectName(ref.Name),
		Namespace: (*gatewayv1.Namespace)(ref.Namespace), Port: ref.Port,
	}}
	if ref.Name == "" {
		cv.errs = append(cv.errs, field.Required(p.Child("backendRef", "name"), "the backend that receives the copies"))
	}
	if group == "" && kind == "Service" && ref.Port == nil {
		cv.errs = append(cv.errs, field.Required(p.Child("backendRef", "port"), "a Service backend needs its port"))
	}
	if m.Percent != nil && m.Fraction != nil {
		cv.invalid(p, "percent, fraction", "set only one of percent and fraction")
	}
	if m.Percent != nil {
		v := *m.Percent
		out.Percent = &v
	}
	if f := m.Fraction; f != nil {
		den := int32(100)
		if f.Denominator != nil {
			den = *f.Denominator
		}
		if f.Numerator > den {
			cv.invalid(p.Child("fraction", "numerator"), f.Numerator, fmt.Sprintf("must not exceed the denominator (%d)", den))
		}
		out.Fraction = &gatewayv1.Fraction{Numerator: f.Numerator, Denominator: &den}
	}
	return out
}

// gwParentRefs converts spec.service.gatewayRefs, filling in the defaults the API server
// would (group gateway.networking.k8s.io, kind Gateway).
func (cv *converter) gwParentRefs(p *field.Path, refs []flaggerv1.ParentReference) []gatewayv1.ParentReference {
	if len(refs) == 0 {
		cv.errs = append(cv.errs, field.Required(p, "the Gateways (or, for a mesh, the Service) the route attaches to"))
		return nil
	}
	if len(refs) > gwMaxParentRefs {
		cv.invalid(p, len(refs), fmt.Sprintf("the Gateway API allows at most %d", gwMaxParentRefs))
		return nil
	}
	out := make([]gatewayv1.ParentReference, 0, len(refs))
	seen := map[string]int{}
	for i, r := range refs {
		group, kind := gatewayv1.GroupName, "Gateway"
		if r.Group != nil {
			group = *r.Group
		}
		if r.Kind != nil {
			kind = *r.Kind
		}
		g, k := gatewayv1.Group(group), gatewayv1.Kind(kind)
		ref := gatewayv1.ParentReference{Group: &g, Kind: &k, Name: gatewayv1.ObjectName(r.Name),
			Namespace: (*gatewayv1.Namespace)(r.Namespace), SectionName: (*gatewayv1.SectionName)(r.SectionName),
			Port: r.Port}
		if r.Name == "" {
			cv.errs = append(cv.errs, field.Required(p.Index(i).Child("name"), ""))
		}
		id := fmt.Sprintf("%s/%s/%s/%s/%s/%d", group, kind, deref(r.Namespace), r.Name, deref(r.SectionName), derefInt(r.Port))
		if j, dup := seen[id]; dup {
			cv.errs = append(cv.errs, field.Duplicate(p.Index(i), fmt.Sprintf("the same parent as gatewayRefs[%d]", j)))
			continue
		}
		seen[id] = i
		out = append(out, ref)
	}
	return out
}

// gwHostnames converts spec.service.hosts into route hostnames.
func (cv *converter) gwHostnames(p *field.Path, hosts []string) []gatewayv1.Hostname {
	if len(hosts) == 0 {
		return nil
	}
	if len(hosts) > gwMaxHostnames {
		cv.invalid(p, len(hosts), fmt.Sprintf("a Gateway API route has at most %d hostnames", gwMaxHostnames))
		return nil
	}
	out := make([]gatewayv1.Hostname, 0, len(hosts))
	for i, h := range hosts {
		if len(h) > gwMaxHostname || !gwHostname.MatchString(h) {
			cv.invalid(p.Index(i), h, "a Gateway API hostname is a lower-case DNS name, optionally with a *. prefix (no IP address, no port)")
			continue
		}
		out = append(out, gatewayv1.Hostname(h))
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}
