package traffic

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// backendRef is a weighted reference to a Service of the test namespace.
func backendRef(name string, weight int32, setCookie ...string) gatewayv1.HTTPBackendRef {
	b := gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr[gatewayv1.PortNumber](9898)},
		Weight:                 ptr(weight),
	}}
	for _, c := range setCookie {
		b.Filters = append(b.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier,
			ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "Set-Cookie", Value: c}}}})
	}
	return b
}

func httpRoute(name string, hostnames []string, rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
	rt := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway", Namespace: ptr[gatewayv1.Namespace]("ingress")}}},
			Rules:           rules,
		},
	}
	for _, h := range hostnames {
		rt.Spec.Hostnames = append(rt.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return rt
}

func headerMatch(name, value string, regex bool) gatewayv1.HTTPRouteMatch {
	t := gatewayv1.HeaderMatchExact
	if regex {
		t = gatewayv1.HeaderMatchRegularExpression
	}
	return gatewayv1.HTTPRouteMatch{Headers: []gatewayv1.HTTPHeaderMatch{{Type: &t, Name: gatewayv1.HTTPHeaderName(name), Value: value}}}
}

func runningPod(name, app string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// gatewaySetup is podinfo's Deployments, Services and pods with the given routes.
func gatewaySetup(canaryAnnotations map[string]string, routes ...client.Object) []client.Object {
	objs := []client.Object{
		deployment("podinfo-primary", 2, nil),
		deployment("podinfo", 1, canaryAnnotations),
		service("podinfo-primary", "podinfo-primary"),
		service("podinfo-canary", "podinfo"),
		runningPod("podinfo-primary-7d9c5b6f4-abcde", "podinfo-primary"),
		runningPod("podinfo-primary-7d9c5b6f4-fghij", "podinfo-primary"),
		runningPod("podinfo-5f6d8c9b7-klmno", "podinfo"),
	}
	return append(objs, routes...)
}

func newGatewaySim(t testing.TB, objs []client.Object, classes ...Class) *Simulator {
	t.Helper()
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&gatewayv1.HTTPRoute{}, &gatewayv1.GRPCRoute{}).Build()
	return &Simulator{Client: cl, Namespaces: []string{ns}, Classes: classes, Routing: RouteGatewayAPI}
}

func TestGatewayWeightedSplitAndMetrics(t *testing.T) {
	s := newGatewaySim(t, gatewaySetup(map[string]string{ErrorRateAnnotation: "0.5"},
		httpRoute("podinfo", []string{"www.example.com"}, gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{
			backendRef("podinfo-primary", 90), backendRef("podinfo-canary", 10)}})))
	for range 10 {
		mustStep(t, s, 20)
	}
	canary, canaryErrors := s.Served(ns, "podinfo")
	primary, _ := s.Served(ns, "podinfo-primary")
	if canary != 20 || primary != 180 || canaryErrors != 10 {
		t.Fatalf("served canary=%d (errors %d) primary=%d, want exactly 20 (10) and 180", canary, canaryErrors, primary)
	}
	// What Flagger's Gateway API MetricTemplates query: the gateway's reports.
	if got := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "source_workload": "gateway",
		"destination_workload": "podinfo", "destination_workload_namespace": ns, "response_code": "500"}); got != 10 {
		t.Errorf("gateway-reported 5xx of the canary = %v, want 10", got)
	}
	// What the builtin checks query: the application's histogram, by pod.
	count, _, _ := histogramOf(t, s, AppRequestDuration, map[string]string{"kubernetes_namespace": ns, "kubernetes_pod_name": "podinfo-5f6d8c9b7-klmno"})
	okCount, _, _ := histogramOf(t, s, AppRequestDuration, map[string]string{"kubernetes_pod_name": "podinfo-5f6d8c9b7-klmno", "status": "200"})
	if count != 20 || okCount != 10 {
		t.Errorf("application histogram of the canary pod: %d requests, %d of them 200; want 20 and 10", count, okCount)
	}
	a, _, _ := histogramOf(t, s, AppRequestDuration, map[string]string{"kubernetes_pod_name": "podinfo-primary-7d9c5b6f4-abcde"})
	b, _, _ := histogramOf(t, s, AppRequestDuration, map[string]string{"kubernetes_pod_name": "podinfo-primary-7d9c5b6f4-fghij"})
	if a != 90 || b != 90 {
		t.Errorf("the primary's two pods served %d and %d, want 90 each", a, b)
	}
}

// TestGatewayRouteStatus: the simulator accepts routes as a gateway controller does, for the
// generation it routes.
func TestGatewayRouteStatus(t *testing.T) {
	s := newGatewaySim(t, gatewaySetup(nil, httpRoute("podinfo", nil, gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 1)}})))
	mustStep(t, s, 1)
	var rt gatewayv1.HTTPRoute
	if err := s.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "podinfo"}, &rt); err != nil {
		t.Fatal(err)
	}
	if len(rt.Status.Parents) != 1 || rt.Status.Parents[0].ControllerName != ControllerName {
		t.Fatalf("status %+v", rt.Status)
	}
	c := rt.Status.Parents[0].Conditions
	if len(c) != 2 || c[0].Type != "Accepted" || c[0].Status != metav1.ConditionTrue || c[0].ObservedGeneration != rt.Generation {
		t.Errorf("conditions %+v", c)
	}
	rv := rt.ResourceVersion
	mustStep(t, s, 1)
	if err := s.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "podinfo"}, &rt); err != nil {
		t.Fatal(err)
	}
	if rt.ResourceVersion != rv {
		t.Errorf("a current status was written again")
	}
}

// TestGatewayPrecedence: the most specific match wins across rules and routes: an exact path
// over a prefix, more headers over fewer, an exact hostname over a wildcard; a request no
// rule takes gets a 404.
func TestGatewayPrecedence(t *testing.T) {
	exactPath := gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchExact), Value: ptr("/beta")}}
	rules := []gatewayv1.HTTPRouteRule{
		{BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 1)}}, // default: prefix /
		{Matches: []gatewayv1.HTTPRouteMatch{headerMatch("x-canary", "insider", false)}, BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-canary", 1)}},
		{Matches: []gatewayv1.HTTPRouteMatch{exactPath}, BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-canary", 1)}},
	}
	wildcard := httpRoute("wildcard", []string{"*.example.com"}, gatewayv1.HTTPRouteRule{
		Matches:     []gatewayv1.HTTPRouteMatch{headerMatch("x-canary", "insider", false)},
		BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 1)},
	})
	s := newGatewaySim(t, gatewaySetup(nil, httpRoute("podinfo", []string{"www.example.com"}, rules...), wildcard),
		Class{Name: "plain"},
		Class{Name: "insider", Headers: map[string]string{"X-Canary": "insider", "Host": "www.example.com"}},
		Class{Name: "beta", Path: "/beta"},
		Class{Name: "other-host", Headers: map[string]string{"Host": "api.example.org"}})
	mustStep(t, s, 8)
	for _, tc := range []struct {
		class, workload string
		want            int64
	}{
		{"plain", "podinfo-primary", 4}, {"plain", "podinfo", 0},
		// The exact hostname of podinfo beats the wildcard route that also matches the header.
		{"insider", "podinfo", 4}, {"insider", "podinfo-primary", 0},
		// The exact path beats the default prefix; the requests sent for the wildcard route
		// (as www.example.com) are taken by podinfo's rules too, its exact hostname winning.
		{"beta", "podinfo", 4},
		{"other-host", "unknown", 4},
	} {
		var got int64
		for _, route := range []string{"podinfo", "wildcard"} {
			got += s.ServedClass(ns, route, tc.class, tc.workload)
		}
		if got != tc.want {
			t.Errorf("class %s reached %s %d times, want %d", tc.class, tc.workload, got, tc.want)
		}
	}
	if n := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "response_code": "404", "response_flags": "NR"}); n < 4 {
		t.Errorf("requests no route took: %v 404s, want at least 4", n)
	}
}

// TestGatewayMirror: a RequestMirror filter with percent copies exactly that share to the
// mirror, which only its side reports; the routed traffic is unchanged.
func TestGatewayMirror(t *testing.T) {
	rule := gatewayv1.HTTPRouteRule{
		BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 100), backendRef("podinfo-canary", 0)},
		Filters: []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{
			BackendRef: gatewayv1.BackendObjectReference{Name: "podinfo-canary", Port: ptr[gatewayv1.PortNumber](9898)}, Percent: ptr[int32](25)}}},
	}
	s := newGatewaySim(t, gatewaySetup(nil, httpRoute("podinfo", []string{"www.example.com"}, rule)))
	mustStep(t, s, 100)
	canary, _ := s.Served(ns, "podinfo")
	if canary != 25 || s.ServedClass(ns, "podinfo", "default", "podinfo") != 0 {
		t.Fatalf("canary served %d copies (%d routed), want 25 and 0", canary, s.ServedClass(ns, "podinfo", "default", "podinfo"))
	}
	if src := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "destination_workload": "podinfo"}); src != 0 {
		t.Errorf("the gateway reported %v mirrored copies", src)
	}
	if dst := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "destination", "destination_workload": "podinfo"}); dst != 25 {
		t.Errorf("the canary reported %v copies, want 25", dst)
	}
}

// TestGatewaySessionCookies: a client that keeps cookies stays on the canary once a canary
// response gave it the cookie, and drops the cookie when a response expires it.
func TestGatewaySessionCookies(t *testing.T) {
	sticky := gatewayv1.HTTPRouteRule{
		Name:        ptr[gatewayv1.SectionName]("sticky-route"),
		Matches:     []gatewayv1.HTTPRouteMatch{headerMatch("Cookie", `^(.*;\s*)?session=CANARY(;.*)?$`, true)},
		BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("podinfo-canary", 100)},
	}
	weightedRule := gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{
		backendRef("podinfo-primary", 75), backendRef("podinfo-canary", 25, "session=CANARY; Max-Age=3600; Path=/")}}
	route := httpRoute("podinfo", []string{"www.example.com"}, sticky, weightedRule)
	s := newGatewaySim(t, gatewaySetup(nil, route),
		Class{Name: "browser", Cookies: true, Headers: map[string]string{"Cookie": "theme=dark"}},
		Class{Name: "anonymous"})
	for range 10 {
		mustStep(t, s, 8)
	}
	if got := s.Cookie("browser", "HTTPRoute", ns, "podinfo", "session"); got != "CANARY" {
		t.Fatalf("the browser holds session=%q", got)
	}
	if got := s.Cookie("anonymous", "HTTPRoute", ns, "podinfo", "session"); got != "" {
		t.Fatalf("a client that keeps no cookies holds %q", got)
	}
	toPrimary := s.ServedClass(ns, "podinfo", "browser", "podinfo-primary")
	toCanary := s.ServedClass(ns, "podinfo", "browser", "podinfo")
	if toPrimary+toCanary != 40 || toPrimary > 3 {
		t.Fatalf("browser: %d to the primary, %d to the canary; want at most 3 before the cookie, then all on the canary", toPrimary, toCanary)
	}
	mustStep(t, s, 20)
	if s.ServedClass(ns, "podinfo", "browser", "podinfo-primary") != toPrimary {
		t.Errorf("the browser with the cookie reached the primary")
	}
	anonCanary := s.ServedClass(ns, "podinfo", "anonymous", "podinfo")
	anonPrimary := s.ServedClass(ns, "podinfo", "anonymous", "podinfo-primary")
	if anonCanary == 0 || anonPrimary == 0 {
		t.Errorf("a client without cookies must keep being split: %d canary, %d primary", anonCanary, anonPrimary)
	}

	// The run ends: the sticky rule now expires the cookie and routes as the weighted rule.
	ctx := context.Background()
	if err := s.Client.Get(ctx, client.ObjectKeyFromObject(route), route); err != nil {
		t.Fatal(err)
	}
	route.Spec.Rules[0].BackendRefs = []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 100)}
	route.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "Set-Cookie", Value: "session=CANARY; Max-Age=-1"}}}}}
	route.Spec.Rules[1].BackendRefs = []gatewayv1.HTTPBackendRef{backendRef("podinfo-primary", 100), backendRef("podinfo-canary", 0)}
	if err := s.Client.Update(ctx, route); err != nil {
		t.Fatal(err)
	}
	mustStep(t, s, 8)
	if got := s.Cookie("browser", "HTTPRoute", ns, "podinfo", "session"); got != "" {
		t.Errorf("the expired cookie is still held: %q", got)
	}
}

// TestGatewayGRPC: a GRPCRoute routes by service and method, and gRPC failures are reported
// as gRPC statuses over HTTP 200, as Envoy does.
func TestGatewayGRPC(t *testing.T) {
	exact := gatewayv1.GRPCMethodMatchExact
	ref := func(name string, w int32) gatewayv1.GRPCBackendRef {
		return gatewayv1.GRPCBackendRef{BackendRef: backendRef(name, w).BackendRef}
	}
	rt := &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns, Generation: 1},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway"}}},
			Rules: []gatewayv1.GRPCRouteRule{
				{Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{Type: &exact, Service: ptr("podinfo.v1.Echo"), Method: ptr("Beta")}}},
					BackendRefs: []gatewayv1.GRPCBackendRef{ref("podinfo-canary", 1)}},
				{BackendRefs: []gatewayv1.GRPCBackendRef{ref("podinfo-primary", 1)}},
			},
		},
	}
	s := newGatewaySim(t, gatewaySetup(map[string]string{ErrorRateAnnotation: "1"}, rt),
		Class{Name: "beta", Path: "/podinfo.v1.Echo/Beta", Method: "POST"},
		Class{Name: "call", Path: "/podinfo.v1.Echo/Call", Method: "POST"})
	mustStep(t, s, 10)
	if s.ServedClass(ns, "podinfo", "beta", "podinfo") != 5 || s.ServedClass(ns, "podinfo", "call", "podinfo-primary") != 5 {
		t.Fatalf("beta calls to the canary %d, other calls to the primary %d; want 5 and 5",
			s.ServedClass(ns, "podinfo", "beta", "podinfo"), s.ServedClass(ns, "podinfo", "call", "podinfo-primary"))
	}
	if n := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "request_protocol": "grpc", "response_code": "200",
		"grpc_response_status": "13", "destination_workload": "podinfo"}); n != 5 {
		t.Errorf("failed gRPC calls reported as status 13 over 200: %v, want 5", n)
	}
	if n := counterSum(t, s, AppGRPCHandled, map[string]string{"grpc_service": "podinfo.v1.Echo", "grpc_method": "Beta", "grpc_code": "Internal"}); n != 5 {
		t.Errorf("the application counted %v failed Beta calls, want 5", n)
	}
}
