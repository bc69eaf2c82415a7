package router

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	istio "istio.io/api/networking/v1alpha3"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the builders' output")

// corpusDir holds Canary manifests taken from Flagger's documentation (beside the checkout).
const corpusDir = "../../../shared/compat/flagger-docs-canaries"

// corpusCanary reads a manifest of the compatibility corpus strictly.
func corpusCanary(t testing.TB, prefix string) *flaggerv1.Canary {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, prefix+"-*.yaml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("corpus manifest %s-*.yaml: %v (found %d)", prefix, err, len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	c := &flaggerv1.Canary{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		t.Fatalf("decoding %s: %v", files[0], err)
	}
	if c.Namespace == "" {
		c.Namespace = "test"
	}
	c.UID = "canary-uid"
	return c
}

// fullCanary sets every routing setting of spec.service that the istio provider carries over.
func fullCanary(t testing.TB) *flaggerv1.Canary {
	c := corpusCanary(t, "044")
	c.Spec.Service.Name = "frontend"
	c.Spec.Service.TargetPort = intstr.FromString("http")
	c.Spec.Service.Timeout = "1m30s"
	c.Spec.Service.Retries = &flaggerv1.HTTPRetry{Attempts: 3, PerTryTimeout: "500ms", RetryOn: "5xx,reset"}
	c.Spec.Service.Rewrite = &flaggerv1.HTTPRewrite{URI: "/", Authority: "frontend.internal"}
	c.Spec.Service.Headers = &flaggerv1.Headers{
		Request:  &flaggerv1.HeaderOperations{Set: map[string]string{"x-route": "canary"}, Remove: []string{"x-debug"}},
		Response: &flaggerv1.HeaderOperations{Add: map[string]string{"x-served-by": "herald"}},
	}
	c.Spec.Service.CorsPolicy = &flaggerv1.CorsPolicy{
		AllowOrigins:     []flaggerv1.StringMatch{{Exact: "https://example.com"}, {Suffix: ".example.org"}},
		AllowMethods:     []string{"GET", "POST"},
		AllowHeaders:     []string{"x-token"},
		ExposeHeaders:    []string{"x-request-id"},
		MaxAge:           "24h",
		AllowCredentials: ptr.To(false),
	}
	c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{
		URI:         &flaggerv1.StringMatch{Prefix: "/shop"},
		Headers:     map[string]flaggerv1.StringMatch{"X-Tenant": {Suffix: ".eu"}},
		QueryParams: map[string]flaggerv1.StringMatch{"beta": {}},
	}}
	c.Spec.Service.Apex = &flaggerv1.CustomMetadata{
		Labels:      map[string]string{"team": "shop"},
		Annotations: map[string]string{"example.com/owner": "shop-team"},
	}
	c.Spec.Service.TrafficPolicy = &flaggerv1.TrafficPolicy{
		LoadBalancer: &flaggerv1.LoadBalancerSettings{
			ConsistentHash:     &flaggerv1.ConsistentHashLB{HTTPCookie: &flaggerv1.HTTPCookie{Name: "user", TTL: "1m"}},
			WarmupDurationSecs: "30s",
			LocalityLbSetting: &flaggerv1.LocalityLbSetting{
				Distribute: []flaggerv1.LocalityLbDistribute{{From: "eu-west/*", To: map[string]int32{"eu-west/*": 80, "eu-central/*": 20}}},
				Enabled:    ptr.To(true),
			},
		},
		ConnectionPool: &flaggerv1.ConnectionPoolSettings{
			TCP: &flaggerv1.TCPSettings{
				MaxConnections: 100, ConnectTimeout: "30ms",
				TCPKeepalive: &flaggerv1.TCPKeepalive{Probes: 3, Time: "2h", Interval: "75s"},
			},
			HTTP: &flaggerv1.HTTPSettings{HTTP1MaxPendingRequests: 10, MaxRequestsPerConnection: 5, H2UpgradePolicy: "UPGRADE", IdleTimeout: "5m"},
		},
		OutlierDetection: &flaggerv1.OutlierDetection{
			Consecutive5xxErrors: ptr.To[int32](7), Interval: "5m", BaseEjectionTime: "15m", MaxEjectionPercent: 50,
		},
		TLS: &flaggerv1.ClientTLSSettings{Mode: "ISTIO_MUTUAL", Sni: "frontend.test"},
		PortLevelSettings: []flaggerv1.PortTrafficPolicy{{
			Port:         &flaggerv1.PortSelector{Number: 9797},
			LoadBalancer: &flaggerv1.LoadBalancerSettings{Simple: "LEAST_REQUEST"},
		}},
	}
	return c
}

type goldenCase struct {
	name   string
	canary func(t testing.TB) *flaggerv1.Canary
	split  Split
}

var goldenCases = []goldenCase{
	{
		// Flagger's Istio tutorial: gateway, host, retries and a TLS policy, in mid-run.
		name: "weighted", split: Split{Primary: 70, Canary: 30},
		canary: func(t testing.TB) *flaggerv1.Canary { return corpusCanary(t, "029") },
	},
	{
		// Flagger's A/B tutorial (a user-agent header or an insider cookie) while testing,
		// with two service.match conditions: the A/B route gets the 2 x 2 combinations.
		name: "ab-testing", split: Split{Primary: 0, Canary: 100},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "028")
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{
				{URI: &flaggerv1.StringMatch{Prefix: "/api"}},
				{URI: &flaggerv1.StringMatch{Prefix: "/v2"}, Headers: map[string]flaggerv1.StringMatch{"x-env": {Exact: "prod"}}},
			}
			return c
		},
	},
	{
		// Blue/green with mirroring of half the requests, before any traffic shifts.
		name: "mirroring", split: Split{Primary: 100, Canary: 0, Mirrored: true},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "044")
			c.Spec.Analysis.Iterations = 10
			c.Spec.Analysis.Mirror = true
			c.Spec.Analysis.MirrorWeight = 50
			return c
		},
	},
	{
		// Flagger's FAQ delegate with port discovery: no hosts or gateways, ports on the
		// destinations.
		name: "delegation", split: Split{Primary: 100, Canary: 0},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "011")
			c.Spec.Service.PortDiscovery = true
			return c
		},
	},
	{
		// An ingress gateway first, the apex already among the hosts, port discovery: the
		// destinations name the port, and the hosts are left as they are.
		name: "gateways-hosts-ports", split: Split{Primary: 90, Canary: 10},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "029")
			c.Spec.Service.Hosts = []string{"app.example.com", "podinfo"}
			c.Spec.Service.Gateways = []string{"istio-system/public-gateway", "mesh"}
			c.Spec.Service.PortDiscovery = true
			return c
		},
	},
	{
		// The mesh first and a wildcard host: no port on the destinations, no apex added.
		name: "mesh-first-wildcard", split: Split{Primary: 90, Canary: 10},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "029")
			c.Spec.Service.Hosts = []string{"*"}
			c.Spec.Service.Gateways = []string{"mesh", "istio-system/public-gateway"}
			c.Spec.Service.PortDiscovery = true
			return c
		},
	},
	{
		name: "tcp", split: Split{Primary: 50, Canary: 50},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "044")
			c.Spec.Service.AppProtocol = "TCP"
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{Port: 9898, SourceLabels: map[string]string{"app": "client"}}}
			return c
		},
	},
	{
		name: "http-settings", split: Split{Primary: 80, Canary: 20},
		canary: func(t testing.TB) *flaggerv1.Canary { return fullCanary(t) },
	},
	{
		// Flagger's session-affinity tutorial in mid-run, with a primary cookie and every
		// cookie attribute.
		name: "session-affinity", split: Split{Primary: 90, Canary: 10},
		canary: func(t testing.TB) *flaggerv1.Canary {
			c := corpusCanary(t, "030")
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
			c := corpusCanary(t, "030")
			c.Spec.Analysis.SessionAffinity.Path = "/"
			c.Status.PreviousSessionAffinityCookie = "flagger-cookie=CANARYVALUE"
			return c
		},
	},
}

// render returns the three generated objects as one YAML stream.
func render(t testing.TB, c *flaggerv1.Canary, s Split) []byte {
	t.Helper()
	primary, canary, err := DestinationRules(c)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := VirtualService(c, s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i, obj := range []any{primary, canary, vs} {
		out, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(out)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, tc.canary(t), tc.split)
			path := filepath.Join("testdata", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./controllers/router -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (rerun with -update after checking the change):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff lists the lines that differ, for a readable failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string {
	out, _ := json.Marshal(i)
	return string(out)
}

// TestGoldenFilesReadByIstio proves that the golden files are what Istio reads: decoding each
// document with Istio's own JSON decoder gives back exactly the object that was built.
func TestGoldenFilesReadByIstio(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.canary(t)
			data, err := os.ReadFile(filepath.Join("testdata", tc.name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			docs := strings.Split(string(data), "\n---\n")
			if len(docs) != 3 {
				t.Fatalf("want 3 documents, got %d", len(docs))
			}
			primary, canary, err := DestinationRules(c)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := VirtualService(c, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []proto.Message{&primary.Spec, &canary.Spec} {
				var got istionet.DestinationRule
				if err := yaml.Unmarshal([]byte(docs[i]), &got); err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if !proto.Equal(&got.Spec, want) {
					t.Errorf("document %d decodes to\n%v\nwant\n%v", i, &got.Spec, want)
				}
			}
			var got istionet.VirtualService
			if err := yaml.Unmarshal([]byte(docs[2]), &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got.Spec, &vs.Spec) {
				t.Errorf("VirtualService decodes to\n%v\nwant\n%v", &got.Spec, &vs.Spec)
			}
		})
	}
}

func TestHostsAndGateways(t *testing.T) {
	tests := []struct {
		name                   string
		hosts, gateways        []string
		delegation             bool
		wantHosts, wantGateway []string
	}{
		{name: "defaults", wantHosts: []string{"podinfo"}, wantGateway: []string{"mesh"}},
		{name: "apex appended", hosts: []string{"app.example.com"}, gateways: []string{"gw"},
			wantHosts: []string{"app.example.com", "podinfo"}, wantGateway: []string{"gw"}},
		{name: "apex present", hosts: []string{"podinfo", "app.example.com"},
			wantHosts: []string{"podinfo", "app.example.com"}, wantGateway: []string{"mesh"}},
		{name: "wildcard", hosts: []string{"*"}, wantHosts: []string{"*"}, wantGateway: []string{"mesh"}},
		{name: "mesh not added to explicit gateways", gateways: []string{"a", "b"},
			wantHosts: []string{"podinfo"}, wantGateway: []string{"a", "b"}},
		{name: "delegation empties both", hosts: []string{"app.example.com"}, gateways: []string{"gw"}, delegation: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := corpusCanary(t, "044")
			c.Spec.Service.Hosts, c.Spec.Service.Gateways, c.Spec.Service.Delegation = tt.hosts, tt.gateways, tt.delegation
			vs, err := VirtualService(c, Split{Primary: 100})
			if err != nil {
				t.Fatal(err)
			}
			if !equalStrings(vs.Spec.Hosts, tt.wantHosts) || !equalStrings(vs.Spec.Gateways, tt.wantGateway) {
				t.Errorf("hosts %v gateways %v, want %v %v", vs.Spec.Hosts, vs.Spec.Gateways, tt.wantHosts, tt.wantGateway)
			}
			if len(c.Spec.Service.Hosts) != len(tt.hosts) {
				t.Errorf("the Canary's hosts were changed: %v", c.Spec.Service.Hosts)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDestinationPort(t *testing.T) {
	tests := []struct {
		name          string
		portDiscovery bool
		gateways      []string
		delegation    bool
		want          bool
	}{
		{name: "no port discovery", gateways: []string{"gw"}},
		{name: "mesh only", portDiscovery: true},
		{name: "mesh first", portDiscovery: true, gateways: []string{"mesh", "gw"}},
		{name: "gateway first", portDiscovery: true, gateways: []string{"gw", "mesh"}, want: true},
		{name: "delegation", portDiscovery: true, delegation: true, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := corpusCanary(t, "044")
			c.Spec.Analysis.Mirror, c.Spec.Analysis.Iterations = true, 5
			c.Spec.Service.PortDiscovery, c.Spec.Service.Gateways, c.Spec.Service.Delegation = tt.portDiscovery, tt.gateways, tt.delegation
			vs, err := VirtualService(c, Split{Primary: 100, Mirrored: true})
			if err != nil {
				t.Fatal(err)
			}
			r := vs.Spec.Http[0]
			for _, d := range []*istio.Destination{r.Route[0].Destination, r.Route[1].Destination, r.Mirror} {
				if got := d.Port != nil && d.Port.Number == 9898; got != tt.want || (!tt.want && d.Port != nil) {
					t.Errorf("destination %s port %v, want port 9898: %v", d.Host, d.Port, tt.want)
				}
			}
		})
	}
}

// TestABMatchKeepsServiceConditions: every A/B condition is combined with every service
// condition, and both sides' headers survive (Flagger replaced the service's headers).
func TestABMatchKeepsServiceConditions(t *testing.T) {
	c := corpusCanary(t, "028")
	c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{
		URI:     &flaggerv1.StringMatch{Prefix: "/api"},
		Headers: map[string]flaggerv1.StringMatch{"x-env": {Exact: "prod"}},
	}}
	c.Spec.Analysis.Match = append(c.Spec.Analysis.Match, flaggerv1.HTTPMatchRequest{
		QueryParams: map[string]flaggerv1.StringMatch{"beta": {Exact: "1"}},
	})
	vs, err := VirtualService(c, Split{Primary: 0, Canary: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Spec.Http) != 2 {
		t.Fatalf("want the A/B route and the default route, got %d routes", len(vs.Spec.Http))
	}
	ab := vs.Spec.Http[0]
	if len(ab.Match) != 3 {
		t.Fatalf("want 3 x 1 conditions, got %d", len(ab.Match))
	}
	for i, m := range ab.Match {
		if m.Uri.GetPrefix() != "/api" || m.Headers["x-env"].GetExact() != "prod" {
			t.Errorf("condition %d lost the service match: %v", i, m)
		}
	}
	if ab.Match[0].Headers["user-agent"].GetRegex() != ".*Firefox.*" || ab.Match[1].Headers["cookie"] == nil {
		t.Errorf("A/B headers missing: %v", ab.Match)
	}
	if ab.Match[2].QueryParams["beta"].GetExact() != "1" {
		t.Errorf("A/B query parameter missing: %v", ab.Match[2])
	}
	def := vs.Spec.Http[1]
	if len(def.Route) != 1 || def.Route[0].Destination.Host != "podinfo-primary" || def.Route[0].Weight != 100 {
		t.Errorf("default route %v, want all to the primary", def.Route)
	}
	if len(def.Match) != 1 || def.Match[0].Headers["user-agent"] != nil {
		t.Errorf("default route match %v, want service.match only", def.Match)
	}
}

func TestSessionAffinityCookies(t *testing.T) {
	c := corpusCanary(t, "030")
	c.Spec.Analysis.SessionAffinity.PrimaryCookieName = "primary"
	values := []string{"AAA", "BBB", "CCC", "DDD"}
	saved := newCookieValue
	newCookieValue = func() string { v := values[0]; values = values[1:]; return v }
	t.Cleanup(func() { newCookieValue = saved })

	updateSessionCookies(c, 0)
	if c.Status.SessionAffinityCookie != "" || c.Status.PreviousSessionAffinityCookie != "" {
		t.Fatalf("cookies before any traffic: %+v", c.Status)
	}
	updateSessionCookies(c, 10)
	if c.Status.SessionAffinityCookie != "flagger-cookie=AAA" || c.Status.PrimarySessionAffinityCookie != "primary=BBB" {
		t.Fatalf("first step: %+v", c.Status)
	}
	updateSessionCookies(c, 20)
	if c.Status.SessionAffinityCookie != "flagger-cookie=AAA" || c.Status.PrimarySessionAffinityCookie != "primary=BBB" {
		t.Fatalf("the cookies must last the whole run: %+v", c.Status)
	}
	vs, err := VirtualService(c, Split{Primary: 80, Canary: 20})
	if err != nil {
		t.Fatal(err)
	}
	names := routeNames(vs)
	if !equalStrings(names, []string{stickyCanaryRoute, stickyPrimaryRoute, ""}) {
		t.Fatalf("routes %v", names)
	}
	weighted := vs.Spec.Http[2]
	if got := weighted.Route[1].Headers.GetResponse().GetAdd()["Set-Cookie"]; got != "flagger-cookie=AAA; Max-Age=21600" {
		t.Errorf("canary Set-Cookie %q", got)
	}
	if got := weighted.Route[0].Headers.GetResponse().GetAdd()["Set-Cookie"]; got != "primary=BBB; Max-Age=60" {
		t.Errorf("primary Set-Cookie %q, want one interval (1m)", got)
	}

	updateSessionCookies(c, 0)
	if c.Status.SessionAffinityCookie != "" || c.Status.PreviousSessionAffinityCookie != "flagger-cookie=AAA" || c.Status.PrimarySessionAffinityCookie != "" {
		t.Fatalf("after the run: %+v", c.Status)
	}
	vs, err = VirtualService(c, Split{Primary: 100})
	if err != nil {
		t.Fatal(err)
	}
	if names := routeNames(vs); !equalStrings(names, []string{expireCookieRoute, ""}) {
		t.Fatalf("routes after the run %v", names)
	}
	if got := vs.Spec.Http[0].Headers.GetResponse().GetAdd()["Set-Cookie"]; got != "flagger-cookie=AAA; Max-Age=-1" {
		t.Errorf("expiring Set-Cookie %q", got)
	}
	if vs.Spec.Http[1].Route[1].Headers != nil {
		t.Errorf("the canary still sets a cookie at weight 0: %v", vs.Spec.Http[1].Route[1].Headers)
	}

	updateSessionCookies(c, 5)
	if c.Status.SessionAffinityCookie != "flagger-cookie=CCC" || c.Status.PrimarySessionAffinityCookie != "primary=DDD" {
		t.Errorf("the next run must get a new cookie: %+v", c.Status)
	}
}

func routeNames(vs *istionet.VirtualService) []string {
	var out []string
	for _, r := range vs.Spec.Http {
		out = append(out, r.Name)
	}
	return out
}

// TestCookieMatch checks the sticky route's pattern against real Cookie headers.
func TestCookieMatch(t *testing.T) {
	m := cookieMatch("flagger-cookie", "ABC")
	re := m.Headers["cookie"].GetRegex()
	// Envoy matches the whole header value; the pattern is anchored, so Go's matcher agrees.
	rx := regexp.MustCompile(re)
	for header, want := range map[string]bool{
		"flagger-cookie=ABC":                  true,
		"a=1; flagger-cookie=ABC":             true,
		"a=1;flagger-cookie=ABC; b=2":         true,
		"flagger-cookie=ABCD":                 false,
		"xflagger-cookie=ABC":                 false,
		"flagger-cookie=XABC":                 false,
		"other=flagger-cookie=ABC":            false,
		"flagger-cookie=OLD; session=ABC; z=": false,
	} {
		if got := rx.MatchString(header); got != want {
			t.Errorf("%q against %q: %v, want %v", re, header, got, want)
		}
	}
}

func TestSplitIsValidated(t *testing.T) {
	c := corpusCanary(t, "044")
	for _, s := range []Split{{Primary: 90, Canary: 20}, {Primary: -10, Canary: 110}, {}} {
		if _, err := VirtualService(c, s); err == nil || !strings.Contains(err.Error(), "add up to 100") {
			t.Errorf("split %+v: err %v", s, err)
		}
	}
}

func TestGeneratedMetadata(t *testing.T) {
	c := fullCanary(t)
	primary, _, err := DestinationRules(c)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := VirtualService(c, Split{Primary: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []map[string]string{primary.Annotations, vs.Annotations} {
		if a[workloads.FluxKustomizeReconcileAnnotation] != "disabled" || a[workloads.FluxHelmDriftDetectionAnnotation] != "disabled" {
			t.Errorf("Flux opt-outs missing: %v", a)
		}
	}
	if vs.Labels["team"] != "shop" || vs.Annotations["example.com/owner"] != "shop-team" {
		t.Errorf("service.apex metadata missing: %v %v", vs.Labels, vs.Annotations)
	}
	if primary.Labels["team"] != "" {
		t.Errorf("service.apex metadata is for the VirtualService only: %v", primary.Labels)
	}
	if _, ok := c.Spec.Service.Apex.Annotations[workloads.FluxKustomizeReconcileAnnotation]; ok {
		t.Errorf("the Canary's spec was changed")
	}
}

func BenchmarkVirtualService(b *testing.B) {
	for _, name := range []string{"weighted", "http-settings", "ab-testing", "session-affinity"} {
		var tc goldenCase
		for _, g := range goldenCases {
			if g.name == name {
				tc = g
			}
		}
		c := tc.canary(b)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VirtualService(c, tc.split); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDestinationRules(b *testing.B) {
	c := fullCanary(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DestinationRules(c); err != nil {
			b.Fatal(err)
		}
	}
}
