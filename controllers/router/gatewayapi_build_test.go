package router

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

// gwCorpusCanary reads a Gateway API manifest of the corpus as a Canary of the gatewayapi
// provider (the tutorials set -mesh-provider=gatewayapi:v1 instead of spec.provider).
func gwCorpusCanary(t testing.TB, prefix string) *flaggerv1.Canary {
	c := corpusCanary(t, prefix)
	c.Spec.Provider = flaggerv1.ProviderGatewayAPIV1
	return c
}

// gwFullCanary sets every routing setting of spec.service that an HTTPRoute carries.
func gwFullCanary(t testing.TB) *flaggerv1.Canary {
	c := gwCorpusCanary(t, "018")
	svc := &c.Spec.Service
	svc.Name = "frontend"
	svc.Hosts = []string{"www.example.com", "*.example.org"}
	svc.GatewayRefs = append(svc.GatewayRefs, flaggerv1.ParentReference{
		Name: "internal", Namespace: ptr.To("gateways"), SectionName: ptr.To("http"), Port: ptr.To[int32](8080),
	})
	svc.Timeout = "90s"
	svc.BackendTimeout = "1.5s"
	svc.Rewrite = &flaggerv1.HTTPRewrite{URI: "/v2", Authority: "frontend.internal", Type: "ReplacePrefixMatch"}
	svc.Headers = &flaggerv1.Headers{
		Request:  &flaggerv1.HeaderOperations{Set: map[string]string{"x-route": "canary"}, Add: map[string]string{"x-b": "2", "x-a": "1"}, Remove: []string{"x-debug"}},
		Response: &flaggerv1.HeaderOperations{Add: map[string]string{"x-served-by": "herald"}},
	}
	svc.CorsPolicy = &flaggerv1.CorsPolicy{
		AllowOrigin:      []string{"https://example.com"},
		AllowOrigins:     []flaggerv1.StringMatch{{Exact: "https://*.example.org"}},
		AllowMethods:     []string{"GET", "POST"},
		AllowHeaders:     []string{"x-token"},
		ExposeHeaders:    []string{"x-request-id"},
		MaxAge:           "24h",
		AllowCredentials: ptr.To(true),
	}
	svc.Mirror = []flaggerv1.HTTPRequestMirrorFilter{{
		BackendRef: flaggerv1.BackendObjectReference{Name: "shadow", Port: ptr.To[int32](9898)},
		Fraction:   &flaggerv1.Fraction{Numerator: 1},
	}}
	svc.Match = []flaggerv1.HTTPMatchRequest{{
		URI:         &flaggerv1.StringMatch{Prefix: "/shop"},
		Method:      &flaggerv1.StringMatch{Exact: "GET"},
		Headers:     map[string]flaggerv1.StringMatch{"X-Tenant": {Suffix: ".eu"}, "x-beta": {}},
		QueryParams: map[string]flaggerv1.StringMatch{"lang": {Exact: "en"}},
	}}
	svc.Apex = &flaggerv1.CustomMetadata{
		Labels:      map[string]string{"team": "shop"},
		Annotations: map[string]string{"example.com/owner": "shop-team"},
	}
	return c
}

// gwGRPCCanary is a gRPC service: appProtocol grpc gives a GRPCRoute.
func gwGRPCCanary(t testing.TB) *flaggerv1.Canary {
	c := gwCorpusCanary(t, "018")
	c.Spec.Service.AppProtocol = "grpc"
	c.Spec.Service.Hosts = []string{"grpc.example.com"}
	c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{
		URI:     &flaggerv1.StringMatch{Prefix: "/podinfo.v1.Echo/"},
		Headers: map[string]flaggerv1.StringMatch{"x-tenant": {Exact: "eu"}},
	}}
	c.Spec.Service.Headers = &flaggerv1.Headers{Request: &flaggerv1.HeaderOperations{Set: map[string]string{"x-route": "canary"}}}
	return c
}

var gwGoldenCases = []goldenCase{
	{
		// Flagger's Gateway API tutorial in mid-run.
		name: "weighted", split: Split{Primary: 70, Canary: 30},
		canary: func(t testing.TB) *flaggerv1.Canary { return gwCorpusCanary(t, "018") },
	},
	{
		// Flagger's A/B tutorial (a user-agent header or an insider cookie) while testing, with a
		// query parameter and two service.match conditions: the A/B rule gets the 3 x 2
		// combinations, the second rule sends everyone else to the primary.
		name: "ab-testing", split: Split{Primary: 0, Canary: 100},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwCorpusCanary(t, "019")
			c.Spec.Analysis.Match = append(c.Spec.Analysis.Match, flaggerv1.HTTPMatchRequest{
				QueryParams: map[string]flaggerv1.StringMatch{"canary": {Exact: "true"}},
			})
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{
				{URI: &flaggerv1.StringMatch{Prefix: "/api"}},
				{URI: &flaggerv1.StringMatch{Exact: "/"}, Headers: map[string]flaggerv1.StringMatch{"x-env": {Exact: "prod"}}},
			}
			return c
		},
	},
	{
		// Flagger's blue/green tutorial with mirroring of half the requests.
		name: "blue-green-mirroring", split: Split{Primary: 100, Canary: 0, Mirrored: true},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwCorpusCanary(t, "021")
			c.Spec.Analysis.MirrorWeight = 50
			return c
		},
	},
	{
		// Flagger's session-affinity tutorial in mid-run, with a primary cookie and every
		// cookie attribute.
		name: "session-affinity", split: Split{Primary: 90, Canary: 10},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwCorpusCanary(t, "020")
			sa := c.Spec.Analysis.SessionAffinity
			sa.PrimaryCookieName = "flagger-primary"
			sa.Domain, sa.Path, sa.SameSite = "example.com", "/", "Lax"
			sa.Secure, sa.HTTPOnly = true, true
			c.Status.SessionAffinityCookie = "flagger-cookie=CANARYVALUE"
			c.Status.PrimarySessionAffinityCookie = "flagger-primary=PRIMARYVALUE"
			return c
		},
	},
	{
		// The same run just ended: the canary cookie is expired for those who hold it.
		name: "session-affinity-expiring", split: Split{Primary: 100, Canary: 0},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwCorpusCanary(t, "020")
			c.Spec.Analysis.SessionAffinity.Path = "/"
			c.Spec.Service.Headers = &flaggerv1.Headers{Response: &flaggerv1.HeaderOperations{Set: map[string]string{"x-version": "stable"}}}
			c.Status.PreviousSessionAffinityCookie = "flagger-cookie=CANARYVALUE"
			return c
		},
	},
	{
		name: "http-settings", split: Split{Primary: 80, Canary: 20},
		canary: func(t testing.TB) *flaggerv1.Canary { return gwFullCanary(t) },
	},
	{
		// East-west (GAMMA): the route attaches to the apex Service itself, without hostnames.
		name: "mesh", split: Split{Primary: 60, Canary: 40},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwCorpusCanary(t, "018")
			c.Spec.Service.Hosts = nil
			c.Spec.Service.GatewayRefs = []flaggerv1.ParentReference{{Group: ptr.To(""), Kind: ptr.To("Service"), Name: "podinfo", Port: ptr.To[int32](9898)}}
			// A CORS policy without maxAge: the API's default (5s) is written out.
			c.Spec.Service.CorsPolicy = &flaggerv1.CorsPolicy{AllowOrigin: []string{"*"}}
			return c
		},
	},
	{
		name: "grpc-weighted", split: Split{Primary: 50, Canary: 50},
		canary: func(t testing.TB) *flaggerv1.Canary { return gwGRPCCanary(t) },
	},
	{
		// A/B on gRPC metadata, and a port name that says gRPC.
		name: "grpc-ab-testing", split: Split{Primary: 0, Canary: 100},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwGRPCCanary(t)
			c.Spec.Service.AppProtocol, c.Spec.Service.PortName = "", "grpc-api"
			c.Spec.Analysis.Iterations = 5
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{
				{Headers: map[string]flaggerv1.StringMatch{"x-canary": {Exact: "insider"}}},
				{URI: &flaggerv1.StringMatch{Exact: "/podinfo.v1.Echo/Beta"}},
			}
			return c
		},
	},
	{
		name: "grpc-mirroring", split: Split{Primary: 100, Canary: 0, Mirrored: true},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := gwGRPCCanary(t)
			c.Spec.Analysis.Iterations, c.Spec.Analysis.Mirror, c.Spec.Analysis.MirrorWeight = 5, true, 25
			return c
		},
	},
}

// gwRoute builds the route of a golden case.
func gwRoute(t testing.TB, c *flaggerv1.Canary, s Split) any {
	t.Helper()
	if IsGRPC(c) {
		rt, err := GRPCRoute(c, s)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	rt, err := HTTPRoute(c, s)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func gwGoldenPath(name string) string { return filepath.Join("testdata", "gatewayapi", name+".yaml") }

func TestGatewayAPIGolden(t *testing.T) {
	for _, tc := range gwGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := yaml.Marshal(gwRoute(t, tc.canary(t), tc.split))
			if err != nil {
				t.Fatal(err)
			}
			path := gwGoldenPath(tc.name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./controllers/router -run TestGatewayAPIGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (rerun with -update after checking the change):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestGatewayAPIGoldenFilesDecode: every golden file decodes strictly into the Gateway API's
// Go types and gives back the object built, so no field of them is unknown to the API.
func TestGatewayAPIGoldenFilesDecode(t *testing.T) {
	for _, tc := range gwGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(gwGoldenPath(tc.name))
			if err != nil {
				t.Fatal(err)
			}
			want := gwRoute(t, tc.canary(t), tc.split)
			var got any = &gatewayv1.HTTPRoute{}
			if _, ok := want.(*gatewayv1.GRPCRoute); ok {
				got = &gatewayv1.GRPCRoute{}
			}
			if err := yaml.UnmarshalStrict(data, got); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("the golden file decodes to another route")
			}
		})
	}
}

func TestIsGRPC(t *testing.T) {
	for _, tt := range []struct {
		appProtocol, portName string
		want                  bool
	}{
		{"", "", false}, {"", "http", false}, {"grpc", "", true}, {"GRPC", "http", true}, {"http", "grpc", false},
		{"", "grpc", true}, {"", "grpc-api", true}, {"", "grpc-web", false}, {"", "grpc-web-1", false}, {"", "grpcx", false},
	} {
		c := &flaggerv1.Canary{}
		c.Spec.Service.AppProtocol, c.Spec.Service.PortName = tt.appProtocol, tt.portName
		if got := IsGRPC(c); got != tt.want {
			t.Errorf("appProtocol %q portName %q: %v, want %v", tt.appProtocol, tt.portName, got, tt.want)
		}
	}
}

func TestGWTimeout(t *testing.T) {
	for in, want := range map[string]string{
		"0s": "0s", "90s": "1m30s", "1.5s": "1s500ms", "2h": "2h", "25h1m1s1ms": "25h1m1s1ms", "500ms": "500ms",
	} {
		d, _ := time.ParseDuration(in)
		got, err := gwTimeout(d)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
		if !regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`).MatchString(got) {
			t.Errorf("%s: %q is not a GEP-2257 duration", in, got)
		}
	}
	for _, in := range []string{"1.5ms", "-1s", "100000h"} {
		d, _ := time.ParseDuration(in)
		if got, err := gwTimeout(d); err == nil {
			t.Errorf("%s: %q, want an error", in, got)
		}
	}
}

// TestGatewayAPIRefusals: what a route cannot carry is refused with the Canary's field path.
func TestGatewayAPIRefusals(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *flaggerv1.Canary)
		fields []string
	}{
		{"no gatewayRefs", func(c *flaggerv1.Canary) { c.Spec.Service.GatewayRefs = nil }, []string{"spec.service.gatewayRefs"}},
		{"duplicate parent", func(c *flaggerv1.Canary) {
			c.Spec.Service.GatewayRefs = append(c.Spec.Service.GatewayRefs, c.Spec.Service.GatewayRefs[0])
		}, []string{"spec.service.gatewayRefs[1]"}},
		{"hostname with port", func(c *flaggerv1.Canary) { c.Spec.Service.Hosts = []string{"www.example.com:80"} }, []string{"spec.service.hosts[0]"}},
		{"Istio-only conditions", func(c *flaggerv1.Canary) {
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{
				Authority: &flaggerv1.StringMatch{Exact: "a"}, IgnoreURICase: true, SourceLabels: map[string]string{"a": "b"},
				WithoutHeaders: map[string]flaggerv1.StringMatch{"x": {}}, Port: 80, Gateways: []string{"mesh"}, SourceNamespace: "x",
				Scheme: &flaggerv1.StringMatch{Exact: "https"},
			}}
		}, []string{"spec.service.match[0].authority", "spec.service.match[0].ignoreUriCase", "spec.service.match[0].sourceLabels",
			"spec.service.match[0].withoutHeaders", "spec.service.match[0].port", "spec.service.match[0].gateways",
			"spec.service.match[0].sourceNamespace", "spec.service.match[0].scheme"}},
		{"pseudo-header", func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Iterations = 5
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{":authority": {Exact: "a"}}}}
		}, []string{"spec.analysis.match[0].headers[:authority]"}},
		{"headers differing in case", func(c *flaggerv1.Canary) {
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"X-A": {Exact: "1"}, "x-a": {Exact: "2"}}}}
		}, []string{"spec.service.match[0].headers[x-a]"}},
		{"bad regex and path", func(c *flaggerv1.Canary) {
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{
				{Headers: map[string]flaggerv1.StringMatch{"x": {Regex: "(("}}},
				{URI: &flaggerv1.StringMatch{Prefix: "shop"}},
				{URI: &flaggerv1.StringMatch{Exact: "/a/../b"}},
			}
		}, []string{"spec.service.match[0].headers[x].regex", "spec.service.match[1].uri.prefix", "spec.service.match[2].uri.exact"}},
		{"method", func(c *flaggerv1.Canary) {
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{Method: &flaggerv1.StringMatch{Exact: "FETCH"}}, {Method: &flaggerv1.StringMatch{Prefix: "G"}}}
		}, []string{"spec.service.match[0].method.exact", "spec.service.match[1].method"}},
		{"timeouts", func(c *flaggerv1.Canary) { c.Spec.Service.Timeout, c.Spec.Service.BackendTimeout = "10s", "1m" },
			[]string{"spec.service.backendTimeout"}},
		{"sub-millisecond timeout", func(c *flaggerv1.Canary) { c.Spec.Service.Timeout = "1.5ms" }, []string{"spec.service.timeout"}},
		{"CORS", func(c *flaggerv1.Canary) {
			c.Spec.Service.CorsPolicy = &flaggerv1.CorsPolicy{
				AllowOrigins: []flaggerv1.StringMatch{{Regex: ".*"}}, AllowOrigin: []string{"example.com"},
				AllowMethods: []string{"FETCH"}, MaxAge: "1.5s", AllowHeaders: []string{"*", "x"},
			}
		}, []string{"spec.service.corsPolicy.allowOrigins[0]", "spec.service.corsPolicy.allowOrigin[0]",
			"spec.service.corsPolicy.allowMethods[0]", "spec.service.corsPolicy.maxAge", "spec.service.corsPolicy.allowHeaders"}},
		{"prefix rewrite with two conditions", func(c *flaggerv1.Canary) {
			c.Spec.Service.Rewrite = &flaggerv1.HTTPRewrite{URI: "/", Type: "ReplacePrefixMatch"}
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{URI: &flaggerv1.StringMatch{Prefix: "/a"}}, {URI: &flaggerv1.StringMatch{Prefix: "/b"}}}
		}, []string{"spec.service.rewrite.type"}},
		{"rewrite type", func(c *flaggerv1.Canary) { c.Spec.Service.Rewrite = &flaggerv1.HTTPRewrite{URI: "/", Type: "Regex"} },
			[]string{"spec.service.rewrite.type"}},
		{"mirror without port, percent and fraction", func(c *flaggerv1.Canary) {
			c.Spec.Service.Mirror = []flaggerv1.HTTPRequestMirrorFilter{{BackendRef: flaggerv1.BackendObjectReference{Name: "x"},
				Percent: ptr.To[int32](5), Fraction: &flaggerv1.Fraction{Numerator: 200}}}
		}, []string{"spec.service.mirror[0].backendRef.port", "spec.service.mirror[0]", "spec.service.mirror[0].fraction.numerator"}},
		{"A/B product too large", func(c *flaggerv1.Canary) {
			c.Spec.Analysis.Iterations = 5
			for i := 0; i < 9; i++ {
				c.Spec.Service.Match = append(c.Spec.Service.Match, flaggerv1.HTTPMatchRequest{URI: &flaggerv1.StringMatch{Prefix: "/p"}})
				c.Spec.Analysis.Match = append(c.Spec.Analysis.Match, flaggerv1.HTTPMatchRequest{Headers: map[string]flaggerv1.StringMatch{"x": {Exact: "y"}}})
			}
		}, []string{"spec.analysis.match"}},
		{"tcp", func(c *flaggerv1.Canary) { c.Spec.Service.AppProtocol = "tcp" }, []string{"spec.service.appProtocol"}},
		{"gRPC without HTTP features", func(c *flaggerv1.Canary) {
			c.Spec.Service.AppProtocol = "grpc"
			c.Spec.Service.Timeout = "5s"
			c.Spec.Service.Rewrite = &flaggerv1.HTTPRewrite{URI: "/"}
			c.Spec.Service.CorsPolicy = &flaggerv1.CorsPolicy{}
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{
				{Method: &flaggerv1.StringMatch{Exact: "GET"}, QueryParams: map[string]flaggerv1.StringMatch{"a": {}}},
				{URI: &flaggerv1.StringMatch{Regex: "/x.*"}},
				{URI: &flaggerv1.StringMatch{Exact: "/only-one-part"}},
			}
		}, []string{"spec.service.timeout", "spec.service.rewrite", "spec.service.corsPolicy", "spec.service.match[0].method",
			"spec.service.match[0].queryParams", "spec.service.match[1].uri", "spec.service.match[2].uri.exact"}},
		{"Set-Cookie with session affinity", func(c *flaggerv1.Canary) {
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "c"}
			c.Spec.Service.Headers = &flaggerv1.Headers{Response: &flaggerv1.HeaderOperations{Add: map[string]string{"Set-Cookie": "x=y"}}}
			c.Status.PreviousSessionAffinityCookie = "c=OLD"
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gwCorpusCanary(t, "018")
			tt.mutate(c)
			errs := ValidateGatewayAPI(c)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if tt.fields == nil {
				// The expiring cookie's rule and the user's header collide only after a run.
				if _, err := HTTPRoute(c, Split{Primary: 100}); err == nil || !strings.Contains(err.Error(), "spec.service.headers.response.add[Set-Cookie]") {
					t.Errorf("want the Set-Cookie collision refused, got %v", err)
				}
				return
			}
			for _, f := range tt.fields {
				if !containsField(errs, f) {
					t.Errorf("no error at %s; got %v", f, errs)
				}
			}
			if len(got) != len(tt.fields) {
				t.Errorf("errors at %v, want exactly %v", got, tt.fields)
			}
		})
	}
}

func containsField(errs field.ErrorList, f string) bool {
	for _, e := range errs {
		if e.Field == f {
			return true
		}
	}
	return false
}

// TestGatewayAPICorpusBuilds: every Gateway API manifest of Flagger's documentation gives a
// route, in every state of its run.
func TestGatewayAPICorpusBuilds(t *testing.T) {
	for _, prefix := range []string{"018", "019", "020", "021"} {
		c := gwCorpusCanary(t, prefix)
		if errs := ValidateGatewayAPI(c); len(errs) > 0 {
			t.Errorf("%s: %v", prefix, errs)
		}
		for _, s := range []Split{{Primary: 100}, {Primary: 50, Canary: 50}, {Canary: 100}, {Primary: 100, Mirrored: true}} {
			if _, err := HTTPRoute(c, s); err != nil {
				t.Errorf("%s %+v: %v", prefix, s, err)
			}
		}
	}
}

func TestGatewayAPIMetadata(t *testing.T) {
	c := gwFullCanary(t)
	rt, err := HTTPRoute(c, Split{Primary: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Annotations[workloads.FluxKustomizeReconcileAnnotation] != "disabled" || rt.Annotations[workloads.FluxHelmDriftDetectionAnnotation] != "disabled" {
		t.Errorf("Flux opt-outs missing: %v", rt.Annotations)
	}
	if rt.Labels["team"] != "shop" || rt.Annotations["example.com/owner"] != "shop-team" {
		t.Errorf("service.apex metadata missing: %v %v", rt.Labels, rt.Annotations)
	}
	if rt.Name != "frontend" || rt.Namespace != "test" {
		t.Errorf("route %s/%s, want test/frontend (the apex Service's name)", rt.Namespace, rt.Name)
	}
}

// TestGatewayAPIReadSplit reads splits back from routes as an edit could leave them.
func TestGatewayAPIReadSplit(t *testing.T) {
	c := gwCorpusCanary(t, "020")
	c.Spec.Analysis.SessionAffinity.PrimaryCookieName = "p"
	c.Status.SessionAffinityCookie, c.Status.PrimarySessionAffinityCookie = "flagger-cookie=A", "p=B"
	rt, err := HTTPRoute(c, Split{Primary: 70, Canary: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Spec.Rules) != 3 {
		t.Fatalf("want the two sticky rules and the weighted one, got %d rules", len(rt.Spec.Rules))
	}
	if s, err := readRouteSplit(httpView(rt), c); err != nil || s != (Split{Primary: 70, Canary: 30}) {
		t.Errorf("split %+v %v, want 70/30 (the sticky rules skipped)", s, err)
	}
	// Relative weights: 1 and 3 is 25/75.
	w := rt.Spec.Rules[2].BackendRefs
	w[0].Weight, w[1].Weight = ptr.To[int32](1), ptr.To[int32](3)
	if s, _ := readRouteSplit(httpView(rt), c); s != (Split{Primary: 25, Canary: 75}) {
		t.Errorf("relative weights read as %+v", s)
	}
	w[0].Weight, w[1].Weight = nil, nil // the API's default weight is 1
	if s, _ := readRouteSplit(httpView(rt), c); s != (Split{Primary: 50, Canary: 50}) {
		t.Errorf("default weights read as %+v", s)
	}
	w[0].Weight, w[1].Weight = ptr.To[int32](0), ptr.To[int32](0)
	if _, err := readRouteSplit(httpView(rt), c); err == nil {
		t.Errorf("a rule with every weight at 0 must not read as a split")
	}
	rt.Spec.Rules = rt.Spec.Rules[:2]
	if _, err := readRouteSplit(httpView(rt), c); err == nil {
		t.Errorf("a route without the weighted rule must not read as a split")
	}
}

func TestGatewayAPIAccepted(t *testing.T) {
	c := gwCorpusCanary(t, "018")
	rt, err := HTTPRoute(c, Split{Primary: 100})
	if err != nil {
		t.Fatal(err)
	}
	rt.Generation = 3
	parent := rt.Spec.ParentRefs[0]
	status := func(s string, gen int64) {
		rt.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: parent, ControllerName: "example.com/gw",
			Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionStatus(s), ObservedGeneration: gen, Reason: "NotAllowedByListeners", Message: "no"}}}}
	}
	if err := checkAccepted(httpView(rt), rt, httpRouteGVK); err != nil {
		t.Errorf("no status yet must not block: %v", err)
	}
	status("True", 3)
	if err := checkAccepted(httpView(rt), rt, httpRouteGVK); err != nil {
		t.Errorf("accepted: %v", err)
	}
	status("False", 2)
	if err := checkAccepted(httpView(rt), rt, httpRouteGVK); err != nil {
		t.Errorf("a refusal of an older generation says nothing about this one: %v", err)
	}
	status("False", 3)
	if err := checkAccepted(httpView(rt), rt, httpRouteGVK); !errors.Is(err, ErrRouteRefused) || !IsConfigError(err) || !strings.Contains(err.Error(), "NotAllowedByListeners") {
		t.Errorf("refused: %v", err)
	}
	// A parent the route no longer lists does not count.
	rt.Status.Parents[0].ParentRef.Name = "gone"
	if err := checkAccepted(httpView(rt), rt, httpRouteGVK); err != nil {
		t.Errorf("status of another parent: %v", err)
	}
}

func BenchmarkHTTPRoute(b *testing.B) {
	for _, name := range []string{"weighted", "http-settings", "ab-testing", "session-affinity"} {
		var tc goldenCase
		for _, g := range gwGoldenCases {
			if g.name == name {
				tc = g
			}
		}
		c := tc.canary(b)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := HTTPRoute(c, tc.split); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
