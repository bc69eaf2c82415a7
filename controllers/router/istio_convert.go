package router

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	istio "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/util/validation/field"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// This file converts Herald's routing types (api/v1beta1/routing_types.go), which have the
// shape of Istio's, into Istio's protobuf types. It is written out field by field rather than
// through JSON because Istio's JSON form differs in ways that would pass silently or fail
// without a location: durations must be written in seconds ("60s", not "1m"), unknown fields
// are dropped by Istio's decoder, and Istio's StringMatch has no suffix. Every problem is
// reported with the path of the Canary field that holds it.

// converter accumulates the problems of one conversion.
type converter struct {
	errs field.ErrorList
}

func (cv *converter) invalid(p *field.Path, value any, detail string) {
	cv.errs = append(cv.errs, field.Invalid(p, value, detail))
}

// duration parses a Go duration ("1m30s", "500ms") into a protobuf Duration; "" gives nil.
func (cv *converter) duration(p *field.Path, s string) *durationpb.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		cv.invalid(p, s, "must be a duration such as 500ms, 2s or 1m")
		return nil
	}
	if d < 0 {
		cv.invalid(p, s, "must not be negative")
		return nil
	}
	return durationpb.New(d)
}

// uint32 converts a count or port that Istio declares unsigned.
func (cv *converter) uint32(p *field.Path, v int32) uint32 {
	if v < 0 {
		cv.invalid(p, v, "must not be negative")
		return 0
	}
	return uint32(v)
}

func boolValue(b *bool) *wrapperspb.BoolValue {
	if b == nil {
		return nil
	}
	return wrapperspb.Bool(*b)
}

func uint32Value(cv *converter, p *field.Path, v *int32) *wrapperspb.UInt32Value {
	if v == nil {
		return nil
	}
	return wrapperspb.UInt32(cv.uint32(p, *v))
}

// stringMatch converts one string condition. An empty condition is kept empty: for headers
// and query parameters Istio reads it as "present" (or, under withoutHeaders, "absent").
// Istio has no suffix match, so a suffix becomes the equivalent anchored regular expression
// (Envoy matches the whole value against it).
func (cv *converter) stringMatch(p *field.Path, m *flaggerv1.StringMatch) *istio.StringMatch {
	if m == nil {
		return nil
	}
	var set []string
	out := &istio.StringMatch{}
	if m.Exact != "" {
		set = append(set, "exact")
		out.MatchType = &istio.StringMatch_Exact{Exact: m.Exact}
	}
	if m.Prefix != "" {
		set = append(set, "prefix")
		out.MatchType = &istio.StringMatch_Prefix{Prefix: m.Prefix}
	}
	if m.Suffix != "" {
		set = append(set, "suffix")
		out.MatchType = &istio.StringMatch_Regex{Regex: ".*" + regexp.QuoteMeta(m.Suffix)}
	}
	if m.Regex != "" {
		set = append(set, "regex")
		if _, err := regexp.Compile(m.Regex); err != nil {
			cv.invalid(p.Child("regex"), m.Regex, fmt.Sprintf("not a valid RE2 regular expression: %v", err))
		}
		out.MatchType = &istio.StringMatch_Regex{Regex: m.Regex}
	}
	if len(set) > 1 {
		cv.errs = append(cv.errs, field.Invalid(p, strings.Join(set, ", "),
			"set only one of exact, prefix, suffix and regex"))
	}
	return out
}

// stringMatchMap converts headers, withoutHeaders and queryParams. Header names are
// lower-cased: Istio refuses upper-case header names in matches, while HTTP header names
// are case-insensitive, so "User-Agent" and "user-agent" mean the same to the user.
func (cv *converter) stringMatchMap(p *field.Path, in map[string]flaggerv1.StringMatch, lowerKeys bool) map[string]*istio.StringMatch {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]*istio.StringMatch, len(in))
	for k, v := range in {
		key := k
		if lowerKeys {
			key = strings.ToLower(k)
		}
		if key == "" {
			cv.invalid(p, k, "names must not be empty")
			continue
		}
		if _, dup := out[key]; dup {
			cv.invalid(p.Key(k), k, fmt.Sprintf("names the same header as another key (%q): header names are case-insensitive", key))
			continue
		}
		out[key] = cv.stringMatch(p.Key(k), &v)
	}
	return out
}

func copyStrings(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return append([]string(nil), in...)
}

func copyStringMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// httpMatch converts one HTTP match request.
func (cv *converter) httpMatch(p *field.Path, m *flaggerv1.HTTPMatchRequest) *istio.HTTPMatchRequest {
	return &istio.HTTPMatchRequest{
		Name:            m.Name,
		Uri:             cv.stringMatch(p.Child("uri"), m.URI),
		Scheme:          cv.stringMatch(p.Child("scheme"), m.Scheme),
		Method:          cv.stringMatch(p.Child("method"), m.Method),
		Authority:       cv.stringMatch(p.Child("authority"), m.Authority),
		Headers:         cv.stringMatchMap(p.Child("headers"), m.Headers, true),
		Port:            cv.uint32(p.Child("port"), m.Port),
		SourceLabels:    copyStringMap(m.SourceLabels),
		Gateways:        copyStrings(m.Gateways),
		QueryParams:     cv.stringMatchMap(p.Child("queryParams"), m.QueryParams, false),
		IgnoreUriCase:   m.IgnoreURICase,
		WithoutHeaders:  cv.stringMatchMap(p.Child("withoutHeaders"), m.WithoutHeaders, true),
		SourceNamespace: m.SourceNamespace,
		StatPrefix:      m.StatPrefix,
	}
}

func (cv *converter) httpMatches(p *field.Path, in []flaggerv1.HTTPMatchRequest) []*istio.HTTPMatchRequest {
	if len(in) == 0 {
		return nil
	}
	out := make([]*istio.HTTPMatchRequest, len(in))
	for i := range in {
		out[i] = cv.httpMatch(p.Index(i), &in[i])
	}
	return out
}

// l4Matches converts spec.service.match for a TCP route, which can only select by port,
// source and gateway: HTTP conditions there are refused rather than silently dropped.
func (cv *converter) l4Matches(p *field.Path, in []flaggerv1.HTTPMatchRequest) []*istio.L4MatchAttributes {
	if len(in) == 0 {
		return nil
	}
	out := make([]*istio.L4MatchAttributes, len(in))
	for i := range in {
		m := &in[i]
		mp := p.Index(i)
		var httpOnly []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"uri", m.URI != nil}, {"scheme", m.Scheme != nil}, {"method", m.Method != nil},
			{"authority", m.Authority != nil}, {"headers", len(m.Headers) > 0},
			{"queryParams", len(m.QueryParams) > 0}, {"withoutHeaders", len(m.WithoutHeaders) > 0},
			{"ignoreUriCase", m.IgnoreURICase},
		} {
			if f.set {
				httpOnly = append(httpOnly, f.name)
			}
		}
		if len(httpOnly) > 0 {
			cv.errs = append(cv.errs, field.Invalid(mp, strings.Join(httpOnly, ", "),
				"HTTP conditions cannot match TCP traffic (spec.service.appProtocol is tcp): use port, sourceLabels, sourceNamespace or gateways"))
		}
		out[i] = &istio.L4MatchAttributes{
			Port:            cv.uint32(mp.Child("port"), m.Port),
			SourceLabels:    copyStringMap(m.SourceLabels),
			Gateways:        copyStrings(m.Gateways),
			SourceNamespace: m.SourceNamespace,
		}
	}
	return out
}

func (cv *converter) rewrite(r *flaggerv1.HTTPRewrite) *istio.HTTPRewrite {
	// type is a Gateway API setting; Istio replaces the matched prefix of a prefix match and
	// the whole path otherwise, so it has nothing to carry over.
	if r == nil || (r.URI == "" && r.Authority == "") {
		return nil
	}
	return &istio.HTTPRewrite{Uri: r.URI, Authority: r.Authority}
}

func (cv *converter) retries(p *field.Path, r *flaggerv1.HTTPRetry) *istio.HTTPRetry {
	if r == nil {
		return nil
	}
	if r.Attempts < 0 {
		cv.invalid(p.Child("attempts"), r.Attempts, "must not be negative")
	}
	return &istio.HTTPRetry{
		Attempts:      int32(min(max(r.Attempts, 0), 1<<31-1)),
		PerTryTimeout: cv.duration(p.Child("perTryTimeout"), r.PerTryTimeout),
		RetryOn:       r.RetryOn,
	}
}

func headerOps(h *flaggerv1.HeaderOperations) *istio.Headers_HeaderOperations {
	if h == nil {
		return nil
	}
	return &istio.Headers_HeaderOperations{
		Set:    copyStringMap(h.Set),
		Add:    copyStringMap(h.Add),
		Remove: copyStrings(h.Remove),
	}
}

func headers(h *flaggerv1.Headers) *istio.Headers {
	if h == nil || (h.Request == nil && h.Response == nil) {
		return nil
	}
	return &istio.Headers{Request: headerOps(h.Request), Response: headerOps(h.Response)}
}

func (cv *converter) cors(p *field.Path, c *flaggerv1.CorsPolicy) *istio.CorsPolicy {
	if c == nil {
		return nil
	}
	out := &istio.CorsPolicy{
		AllowOrigin:      copyStrings(c.AllowOrigin),
		AllowMethods:     copyStrings(c.AllowMethods),
		AllowHeaders:     copyStrings(c.AllowHeaders),
		ExposeHeaders:    copyStrings(c.ExposeHeaders),
		MaxAge:           cv.duration(p.Child("maxAge"), c.MaxAge),
		AllowCredentials: boolValue(c.AllowCredentials),
	}
	for i := range c.AllowOrigins {
		out.AllowOrigins = append(out.AllowOrigins, cv.stringMatch(p.Child("allowOrigins").Index(i), &c.AllowOrigins[i]))
	}
	return out
}

// trafficPolicy converts spec.service.trafficPolicy for the DestinationRules.
func (cv *converter) trafficPolicy(p *field.Path, tp *flaggerv1.TrafficPolicy) *istio.TrafficPolicy {
	if tp == nil {
		return nil
	}
	out := &istio.TrafficPolicy{
		LoadBalancer:     cv.loadBalancer(p.Child("loadBalancer"), tp.LoadBalancer),
		ConnectionPool:   cv.connectionPool(p.Child("connectionPool"), tp.ConnectionPool),
		OutlierDetection: cv.outlierDetection(p.Child("outlierDetection"), tp.OutlierDetection),
		Tls:              cv.tls(p.Child("tls"), tp.TLS),
	}
	for i := range tp.PortLevelSettings {
		s := &tp.PortLevelSettings[i]
		sp := p.Child("portLevelSettings").Index(i)
		if s.Port == nil || s.Port.Number == 0 {
			cv.errs = append(cv.errs, field.Required(sp.Child("port", "number"), "the port the settings apply to"))
		}
		var port *istio.PortSelector
		if s.Port != nil {
			port = &istio.PortSelector{Number: cv.uint32(sp.Child("port", "number"), s.Port.Number)}
		}
		out.PortLevelSettings = append(out.PortLevelSettings, &istio.TrafficPolicy_PortTrafficPolicy{
			Port:             port,
			LoadBalancer:     cv.loadBalancer(sp.Child("loadBalancer"), s.LoadBalancer),
			ConnectionPool:   cv.connectionPool(sp.Child("connectionPool"), s.ConnectionPool),
			OutlierDetection: cv.outlierDetection(sp.Child("outlierDetection"), s.OutlierDetection),
			Tls:              cv.tls(sp.Child("tls"), s.TLS),
		})
	}
	return out
}

func (cv *converter) loadBalancer(p *field.Path, lb *flaggerv1.LoadBalancerSettings) *istio.LoadBalancerSettings {
	if lb == nil {
		return nil
	}
	out := &istio.LoadBalancerSettings{
		LocalityLbSetting:  cv.locality(p.Child("localityLbSetting"), lb.LocalityLbSetting),
		WarmupDurationSecs: cv.duration(p.Child("warmupDurationSecs"), lb.WarmupDurationSecs),
	}
	if lb.Simple != "" {
		v, ok := istio.LoadBalancerSettings_SimpleLB_value[lb.Simple]
		if !ok {
			cv.errs = append(cv.errs, field.NotSupported(p.Child("simple"), lb.Simple,
				[]string{"UNSPECIFIED", "ROUND_ROBIN", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "LEAST_REQUEST"}))
		}
		out.LbPolicy = &istio.LoadBalancerSettings_Simple{Simple: istio.LoadBalancerSettings_SimpleLB(v)}
	}
	if ch := lb.ConsistentHash; ch != nil {
		if lb.Simple != "" {
			cv.invalid(p, "simple, consistentHash", "set only one of simple and consistentHash")
		}
		out.LbPolicy = &istio.LoadBalancerSettings_ConsistentHash{ConsistentHash: cv.consistentHash(p.Child("consistentHash"), ch)}
	}
	return out
}

func (cv *converter) consistentHash(p *field.Path, ch *flaggerv1.ConsistentHashLB) *istio.LoadBalancerSettings_ConsistentHashLB {
	out := &istio.LoadBalancerSettings_ConsistentHashLB{}
	if ch.MinimumRingSize < 0 {
		cv.invalid(p.Child("minimumRingSize"), ch.MinimumRingSize, "must not be negative")
	} else {
		out.MinimumRingSize = uint64(ch.MinimumRingSize)
	}
	var set []string
	if ch.HTTPHeaderName != "" {
		set = append(set, "httpHeaderName")
		out.HashKey = &istio.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: ch.HTTPHeaderName}
	}
	if c := ch.HTTPCookie; c != nil {
		set = append(set, "httpCookie")
		if c.Name == "" {
			cv.errs = append(cv.errs, field.Required(p.Child("httpCookie", "name"), "the name of the cookie to hash"))
		}
		out.HashKey = &istio.LoadBalancerSettings_ConsistentHashLB_HttpCookie{HttpCookie: &istio.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{
			Name: c.Name,
			Path: c.Path,
			Ttl:  cv.duration(p.Child("httpCookie", "ttl"), c.TTL),
		}}
	}
	if ch.UseSourceIP {
		set = append(set, "useSourceIp")
		out.HashKey = &istio.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}
	}
	if ch.HTTPQueryParameterName != "" {
		set = append(set, "httpQueryParameterName")
		out.HashKey = &istio.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName{HttpQueryParameterName: ch.HTTPQueryParameterName}
	}
	switch len(set) {
	case 0:
		cv.errs = append(cv.errs, field.Required(p, "one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"))
	case 1:
	default:
		cv.invalid(p, strings.Join(set, ", "), "set only one of httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName")
	}
	return out
}

func (cv *converter) locality(p *field.Path, l *flaggerv1.LocalityLbSetting) *istio.LocalityLoadBalancerSetting {
	if l == nil {
		return nil
	}
	out := &istio.LocalityLoadBalancerSetting{
		FailoverPriority: copyStrings(l.FailoverPriority),
		Enabled:          boolValue(l.Enabled),
	}
	for i, d := range l.Distribute {
		dp := p.Child("distribute").Index(i)
		to := make(map[string]uint32, len(d.To))
		for k, w := range d.To {
			to[k] = cv.uint32(dp.Child("to").Key(k), w)
		}
		out.Distribute = append(out.Distribute, &istio.LocalityLoadBalancerSetting_Distribute{From: d.From, To: to})
	}
	for _, f := range l.Failover {
		out.Failover = append(out.Failover, &istio.LocalityLoadBalancerSetting_Failover{From: f.From, To: f.To})
	}
	return out
}

func (cv *converter) connectionPool(p *field.Path, cp *flaggerv1.ConnectionPoolSettings) *istio.ConnectionPoolSettings {
	if cp == nil {
		return nil
	}
	out := &istio.ConnectionPoolSettings{}
	if t := cp.TCP; t != nil {
		tp := p.Child("tcp")
		out.Tcp = &istio.ConnectionPoolSettings_TCPSettings{
			MaxConnections:        t.MaxConnections,
			ConnectTimeout:        cv.duration(tp.Child("connectTimeout"), t.ConnectTimeout),
			MaxConnectionDuration: cv.duration(tp.Child("maxConnectionDuration"), t.MaxConnectionDuration),
			IdleTimeout:           cv.duration(tp.Child("idleTimeout"), t.IdleTimeout),
		}
		if k := t.TCPKeepalive; k != nil {
			kp := tp.Child("tcpKeepalive")
			out.Tcp.TcpKeepalive = &istio.ConnectionPoolSettings_TCPSettings_TcpKeepalive{
				Probes:   cv.uint32(kp.Child("probes"), k.Probes),
				Time:     cv.duration(kp.Child("time"), k.Time),
				Interval: cv.duration(kp.Child("interval"), k.Interval),
			}
		}
	}
	if h := cp.HTTP; h != nil {
		hp := p.Child("http")
		out.Http = &istio.ConnectionPoolSettings_HTTPSettings{
			Http1MaxPendingRequests:  h.HTTP1MaxPendingRequests,
			Http2MaxRequests:         h.HTTP2MaxRequests,
			MaxRequestsPerConnection: h.MaxRequestsPerConnection,
			MaxRetries:               h.MaxRetries,
			IdleTimeout:              cv.duration(hp.Child("idleTimeout"), h.IdleTimeout),
			UseClientProtocol:        h.UseClientProtocol,
			MaxConcurrentStreams:     h.MaxConcurrentStreams,
		}
		if h.H2UpgradePolicy != "" {
			v, ok := istio.ConnectionPoolSettings_HTTPSettings_H2UpgradePolicy_value[h.H2UpgradePolicy]
			if !ok {
				cv.errs = append(cv.errs, field.NotSupported(hp.Child("h2UpgradePolicy"), h.H2UpgradePolicy,
					[]string{"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"}))
			}
			out.Http.H2UpgradePolicy = istio.ConnectionPoolSettings_HTTPSettings_H2UpgradePolicy(v)
		}
	}
	return out
}

func (cv *converter) outlierDetection(p *field.Path, o *flaggerv1.OutlierDetection) *istio.OutlierDetection {
	if o == nil {
		return nil
	}
	return &istio.OutlierDetection{
		ConsecutiveErrors:              o.ConsecutiveErrors,
		ConsecutiveGatewayErrors:       uint32Value(cv, p.Child("consecutiveGatewayErrors"), o.ConsecutiveGatewayErrors),
		Consecutive_5XxErrors:          uint32Value(cv, p.Child("consecutive5xxErrors"), o.Consecutive5xxErrors),
		SplitExternalLocalOriginErrors: o.SplitExternalLocalOriginErrors,
		ConsecutiveLocalOriginFailures: uint32Value(cv, p.Child("consecutiveLocalOriginFailures"), o.ConsecutiveLocalOriginFailures),
		Interval:                       cv.duration(p.Child("interval"), o.Interval),
		BaseEjectionTime:               cv.duration(p.Child("baseEjectionTime"), o.BaseEjectionTime),
		MaxEjectionPercent:             o.MaxEjectionPercent,
		MinHealthPercent:               o.MinHealthPercent,
	}
}

func (cv *converter) tls(p *field.Path, t *flaggerv1.ClientTLSSettings) *istio.ClientTLSSettings {
	if t == nil {
		return nil
	}
	out := &istio.ClientTLSSettings{
		ClientCertificate:  t.ClientCertificate,
		PrivateKey:         t.PrivateKey,
		CaCertificates:     t.CaCertificates,
		CredentialName:     t.CredentialName,
		SubjectAltNames:    copyStrings(t.SubjectAltNames),
		Sni:                t.Sni,
		InsecureSkipVerify: boolValue(t.InsecureSkipVerify),
	}
	if t.Mode != "" {
		v, ok := istio.ClientTLSSettings_TLSmode_value[t.Mode]
		if !ok {
			cv.errs = append(cv.errs, field.NotSupported(p.Child("mode"), t.Mode,
				[]string{"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"}))
		}
		out.Mode = istio.ClientTLSSettings_TLSmode(v)
	}
	return out
}
