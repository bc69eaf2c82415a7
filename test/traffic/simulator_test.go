package traffic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestWeightedSplitIsExactAcrossTicks(t *testing.T) {
	s := newSim(t, podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 90, "podinfo-canary", 10)}))
	// 37 requests a tick for 10 ticks: the split must hold over the whole run, not per tick.
	for range 10 {
		mustStep(t, s, 37)
	}
	canary, _ := s.Served(ns, "podinfo")
	primary, _ := s.Served(ns, "podinfo-primary")
	if canary != 37 || primary != 333 {
		t.Fatalf("served canary=%d primary=%d, want exactly 37 and 333 (10%% of 370)", canary, primary)
	}
	got := counterSum(t, s, RequestsTotal, map[string]string{
		"reporter": "destination", "destination_workload": "podinfo", "destination_workload_namespace": ns,
		"destination_service": "podinfo-canary." + ns + ".svc.cluster.local", "response_code": "200",
	})
	if got != 37 {
		t.Fatalf("istio_requests_total at the canary (reporter=destination) = %v, want 37", got)
	}
	if src := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "destination_workload": "podinfo-primary"}); src != 333 {
		t.Fatalf("source-reported requests to the primary = %v, want 333", src)
	}
}

func TestWeightChangeTakesEffectOnTheNextTick(t *testing.T) {
	objs := podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100, "podinfo-canary", 0)})
	s := newSim(t, objs)
	mustStep(t, s, 100)
	if c, _ := s.Served(ns, "podinfo"); c != 0 {
		t.Fatalf("canary served %d requests at weight 0", c)
	}
	ctx := context.Background()
	var live networkingv1.VirtualService
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podinfo"}, &live); err != nil {
		t.Fatal(err)
	}
	live.Spec.Http = []*v1alpha3.HTTPRoute{{Route: weighted("podinfo-primary", 50, "podinfo-canary", 50)}}
	if err := s.Client.Update(ctx, &live); err != nil {
		t.Fatal(err)
	}
	mustStep(t, s, 100)
	if c, _ := s.Served(ns, "podinfo"); c != 50 {
		t.Fatalf("canary served %d of 100 requests at weight 50, want 50", c)
	}
}

func TestErrorRateIsExactOverAnyWindow(t *testing.T) {
	s := newSim(t, podinfo(map[string]string{ErrorRateAnnotation: "0.25"},
		&v1alpha3.HTTPRoute{Route: weighted("podinfo-canary", 100)}))
	prevTotal, prevErrors := int64(0), int64(0)
	for range 25 {
		mustStep(t, s, 4)
		total, errs := s.Served(ns, "podinfo")
		if total-prevTotal != 4 || errs-prevErrors != 1 {
			t.Fatalf("window of 4 requests: %d served, %d errors; want 4 and exactly 1", total-prevTotal, errs-prevErrors)
		}
		prevTotal, prevErrors = total, errs
	}
	ok := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "destination", "destination_workload": "podinfo", "response_code": "200"})
	failed := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "destination", "destination_workload": "podinfo", "response_code": "500"})
	if ok != 75 || failed != 25 {
		t.Fatalf("istio_requests_total: 200=%v 500=%v, want 75 and 25", ok, failed)
	}
	// The primary has no annotation and never fails.
	if _, errs := s.Served(ns, "podinfo-primary"); errs != 0 {
		t.Fatalf("primary errors = %d", errs)
	}
}

func TestLatencyShowsInBothHistograms(t *testing.T) {
	s := newSim(t, podinfo(map[string]string{LatencyAnnotation: "150ms"},
		&v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 50, "podinfo-canary", 50)}))
	mustStep(t, s, 200)

	canary := map[string]string{"reporter": "destination", "destination_workload": "podinfo"}
	count, sum, buckets := histogramOf(t, s, RequestDurationMillis, canary)
	if count != 100 || !near(sum, 100*150) {
		t.Fatalf("canary ms histogram: count=%d sum=%v, want 100 observations of 150", count, sum)
	}
	if buckets[100] != 0 || buckets[250] != 100 {
		t.Fatalf("canary ms buckets le=100: %d, le=250: %d; want 0 and 100", buckets[100], buckets[250])
	}
	count, sum, _ = histogramOf(t, s, RequestDurationSeconds, canary)
	if count != 100 || !near(sum, 100*0.150) {
		t.Fatalf("canary seconds histogram: count=%d sum=%v, want 100 observations of 0.15", count, sum)
	}
	_, sum, buckets = histogramOf(t, s, RequestDurationMillis, map[string]string{"reporter": "destination", "destination_workload": "podinfo-primary"})
	if !near(sum, 100*10) || buckets[10] != 100 || buckets[5] != 0 {
		t.Fatalf("primary (default 10ms): sum=%v le=5:%d le=10:%d", sum, buckets[5], buckets[10])
	}
}

func TestLatencyRangeSpreadsEvenly(t *testing.T) {
	s := newSim(t, podinfo(map[string]string{LatencyAnnotation: "150ms-300ms"},
		&v1alpha3.HTTPRoute{Route: weighted("podinfo-canary", 100)}))
	mustStep(t, s, 300)
	count, sum, buckets := histogramOf(t, s, RequestDurationMillis, map[string]string{"reporter": "destination", "destination_workload": "podinfo"})
	if count != 300 || buckets[100] != 0 || buckets[500] != 300 {
		t.Fatalf("count=%d le=100:%d le=500:%d, want every observation within 150..300ms", count, buckets[100], buckets[500])
	}
	// (250-150)/(300-150) = 2/3 of the responses are at most 250ms.
	if b := float64(buckets[250]); b < 195 || b > 205 {
		t.Fatalf("le=250 holds %v of 300, want about 200", b)
	}
	if mean := sum / float64(count); mean < 220 || mean > 230 {
		t.Fatalf("mean latency %vms, want about 225", mean)
	}
}

func TestHeaderMatchSendsOnlyMatchingClassesToTheCanary(t *testing.T) {
	abRoute := &v1alpha3.HTTPRoute{
		Match: []*v1alpha3.HTTPMatchRequest{
			{Headers: map[string]*v1alpha3.StringMatch{"x-canary": exact("insider")}},
			{Headers: map[string]*v1alpha3.StringMatch{"cookie": regex("^(.*?;)?(canary=always)(;.*)?$")}},
		},
		Route: weighted("podinfo-primary", 0, "podinfo-canary", 100),
	}
	rest := &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100)}
	s := newSim(t, podinfo(nil, abRoute, rest),
		Class{Name: "insiders", Share: 1, Headers: map[string]string{"X-Canary": "insider"}},
		Class{Name: "cookie", Share: 1, Headers: map[string]string{"Cookie": "canary=always; session=1"}},
		Class{Name: "almost", Share: 1, Headers: map[string]string{"X-Canary": "insiders", "Cookie": "canary=never"}},
		Class{Name: "others", Share: 2},
	)
	mustStep(t, s, 500)

	for _, c := range []struct {
		class           string
		canary, primary int64
	}{
		{"insiders", 100, 0},
		{"cookie", 100, 0},
		{"almost", 0, 100},
		{"others", 0, 200},
	} {
		if got := s.ServedClass(ns, "podinfo", c.class, "podinfo"); got != c.canary {
			t.Errorf("class %s at the canary: %d, want %d", c.class, got, c.canary)
		}
		if got := s.ServedClass(ns, "podinfo", c.class, "podinfo-primary"); got != c.primary {
			t.Errorf("class %s at the primary: %d, want %d", c.class, got, c.primary)
		}
	}
	if got := counterSum(t, s, SimulatorRequestsTotal, map[string]string{
		"virtual_service": "podinfo", "namespace": ns, "class": "others", "destination_workload": "podinfo",
	}); got != 0 {
		t.Errorf("traffic_simulator_requests_total{class=others, canary} = %v, want 0", got)
	}
	if got := counterSum(t, s, SimulatorRequestsTotal, map[string]string{"class": "insiders", "destination_workload": "podinfo"}); got != 100 {
		t.Errorf("traffic_simulator_requests_total{class=insiders, canary} = %v, want 100", got)
	}
}

func TestMirroringCountsCopiesAtTheCanary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		percent *v1alpha3.Percent
		want    int64
	}{
		{"default 100%", nil, 100},
		{"mirrorPercentage 30", &v1alpha3.Percent{Value: 30}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			route := &v1alpha3.HTTPRoute{
				Route:            weighted("podinfo-primary", 100, "podinfo-canary", 0),
				Mirror:           &v1alpha3.Destination{Host: "podinfo-canary"},
				MirrorPercentage: tc.percent,
			}
			s := newSim(t, podinfo(map[string]string{ErrorRateAnnotation: "0.5"}, route))
			mustStep(t, s, 100)
			canary, canaryErrs := s.Served(ns, "podinfo")
			primary, _ := s.Served(ns, "podinfo-primary")
			if canary != tc.want || primary != 100 {
				t.Fatalf("canary served %d copies (want %d), primary %d (want 100)", canary, tc.want, primary)
			}
			if canaryErrs != tc.want/2 {
				t.Fatalf("canary errors on copies = %d, want %d: copies are served like any request", canaryErrs, tc.want/2)
			}
			// The copies are reported by the canary's sidecar only; the client never sees them.
			dst := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "destination", "destination_workload": "podinfo"})
			src := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "destination_workload": "podinfo"})
			if dst != float64(tc.want) || src != 0 {
				t.Fatalf("mirrored copies: reporter=destination %v (want %d), reporter=source %v (want 0)", dst, tc.want, src)
			}
			if got := s.ServedClass(ns, "podinfo", "default", "podinfo"); got != 0 {
				t.Fatalf("routed requests at the canary = %d, want 0 (copies are not routed requests)", got)
			}
		})
	}
}

func TestNoReadyWorkloadAnswers503(t *testing.T) {
	objs := podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 50, "podinfo-canary", 50)})
	objs[1] = deployment("podinfo", 0, nil) // the canary is scaled to zero
	s := newSim(t, objs)
	mustStep(t, s, 100)

	total, errs := s.Served(ns, "unknown")
	if total != 50 || errs != 50 {
		t.Fatalf("unknown workload served %d with %d errors, want 50 and 50", total, errs)
	}
	if c, _ := s.Served(ns, "podinfo"); c != 0 {
		t.Fatalf("a workload without available replicas served %d requests", c)
	}
	got := counterSum(t, s, RequestsTotal, map[string]string{
		"reporter": "source", "response_code": "503", "response_flags": "UH", "destination_workload": "unknown",
		"destination_service_name": "podinfo-canary",
	})
	if got != 50 {
		t.Fatalf("istio_requests_total 503 UH at the client = %v, want 50", got)
	}
	if s.ServedClass(ns, "podinfo", "default", "unknown") != 50 {
		t.Fatalf("the simulator's own counter does not record the 503s under destination_workload=unknown")
	}
}

func TestOddObjectsAreLoggedOnceAndSkipped(t *testing.T) {
	var logs []string
	logger := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	objs := []client.Object{
		deployment("podinfo-primary", 1, map[string]string{ErrorRateAnnotation: "lots", LatencyAnnotation: "300ms-100ms"}),
		service("podinfo-primary", "podinfo-primary"),
		virtualService("no-http"),
		virtualService("zero", &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 0, "podinfo-canary", 0)}),
		virtualService("nowhere", &v1alpha3.HTTPRoute{Route: weighted("missing", 100)}),
		virtualService("bad-regex",
			&v1alpha3.HTTPRoute{Match: []*v1alpha3.HTTPMatchRequest{{Uri: regex("(")}}, Route: weighted("podinfo-primary", 100)}),
		virtualService("nil-bits", &v1alpha3.HTTPRoute{Match: []*v1alpha3.HTTPMatchRequest{nil}, Route: weighted("podinfo-primary", 100)}),
	}
	s := &Simulator{Client: fakeClient(t, objs...), Namespaces: []string{ns, ns}, Log: logger}
	mustStep(t, s, 10)
	first := len(logs)
	mustStep(t, s, 10)
	if len(logs) != first {
		t.Fatalf("second tick logged again: %q", logs[first:])
	}
	for _, want := range []string{"no http routes", "positive weight", "names no Service", "invalid regex", "is not a number", "low <= high"} {
		if !strings.Contains(strings.Join(logs, "\n"), want) {
			t.Errorf("no log line about %q in %q", want, logs)
		}
	}
	if got := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "response_code": "503", "response_flags": "NC"}); got != 20 {
		t.Errorf("requests to an unknown host: %v 503 NC, want 20", got)
	}
	if got := counterSum(t, s, RequestsTotal, map[string]string{"reporter": "source", "response_code": "404", "response_flags": "NR"}); got != 20 {
		t.Errorf("requests no route matched (invalid regex): %v 404 NR, want 20", got)
	}
	// Unreadable annotations fall back to the defaults: no errors.
	if total, errs := s.Served(ns, "podinfo-primary"); errs != 0 || total != 20 {
		t.Errorf("primary with unreadable annotations: %d served, %d errors; want 20 served (nil-bits route), 0 errors", total, errs)
	}
}

func TestReadyReplicasShareAServiceLikeEndpoints(t *testing.T) {
	blue := deployment("blue", 3, nil)
	green := deployment("green", 1, nil)
	for _, d := range []*appsv1.Deployment{blue, green} {
		d.Spec.Template.Labels["tier"] = "web"
	}
	web := service("web", "")
	web.Spec.Selector = map[string]string{"tier": "web"}
	s := newSim(t, []client.Object{blue, green, web, virtualService("web", &v1alpha3.HTTPRoute{Route: weighted("web."+ns+".svc.cluster.local", 100)})})
	mustStep(t, s, 40)
	b, _ := s.Served(ns, "blue")
	g, _ := s.Served(ns, "green")
	if b != 30 || g != 10 {
		t.Fatalf("blue (3 replicas) %d, green (1 replica) %d; want 30 and 10", b, g)
	}
}

func TestDelegatedRoutes(t *testing.T) {
	child := virtualService("podinfo-routes",
		&v1alpha3.HTTPRoute{Match: []*v1alpha3.HTTPMatchRequest{{Uri: prefix("/api")}}, Route: weighted("podinfo-canary", 100)})
	child.Spec.Hosts = nil // a delegate has no hosts and gets no traffic of its own
	parent := virtualService("podinfo",
		&v1alpha3.HTTPRoute{Delegate: &v1alpha3.Delegate{Name: "podinfo-routes"}},
		&v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100)})
	objs := podinfo(nil)
	objs[4] = parent
	objs = append(objs, child)
	s := newSim(t, objs, Class{Name: "api", Path: "/api/info"}, Class{Name: "home", Path: "/"})
	mustStep(t, s, 20)
	if got := s.ServedClass(ns, "podinfo", "api", "podinfo"); got != 10 {
		t.Errorf("/api requests delegated to the canary: %d, want 10", got)
	}
	if got := s.ServedClass(ns, "podinfo", "home", "podinfo-primary"); got != 10 {
		t.Errorf("requests the delegate does not match fall through to the primary: %d, want 10", got)
	}
	if total, _ := s.Served(ns, "podinfo"); total != 10 {
		t.Errorf("the delegate got traffic of its own: canary served %d, want 10", total)
	}
}

func TestMatchConditions(t *testing.T) {
	s := &Simulator{}
	s.init()
	vs := virtualService("podinfo")
	vs.Spec.Gateways = []string{"public-gateway"}
	req := newRequest(Class{Name: "c", Path: "/API/v1?user=alice&x=1", Method: "POST", Headers: map[string]string{"User-Agent": "Mozilla/5.0 Firefox/120"}})
	e := entryFor(vs, &req)
	for _, tc := range []struct {
		name string
		m    *v1alpha3.HTTPMatchRequest
		want bool
	}{
		{"empty", &v1alpha3.HTTPMatchRequest{}, true},
		{"uri exact", &v1alpha3.HTTPMatchRequest{Uri: exact("/API/v1")}, true},
		{"uri exact ignores the query", &v1alpha3.HTTPMatchRequest{Uri: exact("/API/v1?user=alice&x=1")}, false},
		{"uri prefix is case-sensitive", &v1alpha3.HTTPMatchRequest{Uri: prefix("/api")}, false},
		{"uri prefix ignoreUriCase", &v1alpha3.HTTPMatchRequest{Uri: prefix("/api"), IgnoreUriCase: true}, true},
		{"uri regex is anchored", &v1alpha3.HTTPMatchRequest{Uri: regex("v1")}, false},
		{"uri regex whole", &v1alpha3.HTTPMatchRequest{Uri: regex("/API/v[0-9]+")}, true},
		{"method", &v1alpha3.HTTPMatchRequest{Method: exact("POST")}, true},
		{"method mismatch", &v1alpha3.HTTPMatchRequest{Method: exact("GET")}, false},
		{"header regex", &v1alpha3.HTTPMatchRequest{Headers: map[string]*v1alpha3.StringMatch{"user-agent": regex(".*Firefox.*")}}, true},
		{"header names are case-insensitive", &v1alpha3.HTTPMatchRequest{Headers: map[string]*v1alpha3.StringMatch{"User-Agent": prefix("Mozilla")}}, true},
		{"header absent", &v1alpha3.HTTPMatchRequest{Headers: map[string]*v1alpha3.StringMatch{"x-user": exact("a")}}, false},
		{"header presence", &v1alpha3.HTTPMatchRequest{Headers: map[string]*v1alpha3.StringMatch{"user-agent": {}}}, true},
		{"withoutHeaders", &v1alpha3.HTTPMatchRequest{WithoutHeaders: map[string]*v1alpha3.StringMatch{"user-agent": regex(".*Chrome.*")}}, true},
		{"withoutHeaders excludes", &v1alpha3.HTTPMatchRequest{WithoutHeaders: map[string]*v1alpha3.StringMatch{"user-agent": regex(".*Firefox.*")}}, false},
		{"all conditions must hold", &v1alpha3.HTTPMatchRequest{Method: exact("POST"), Uri: prefix("/nope")}, false},
		{"query param", &v1alpha3.HTTPMatchRequest{QueryParams: map[string]*v1alpha3.StringMatch{"user": exact("alice")}}, true},
		{"query param mismatch", &v1alpha3.HTTPMatchRequest{QueryParams: map[string]*v1alpha3.StringMatch{"user": exact("bob")}}, false},
		{"authority is the first host", &v1alpha3.HTTPMatchRequest{Authority: exact("podinfo")}, true},
		{"gateway of entry", &v1alpha3.HTTPMatchRequest{Gateways: []string{"public-gateway"}}, true},
		{"mesh-only match on gateway traffic", &v1alpha3.HTTPMatchRequest{Gateways: []string{"mesh"}}, false},
		{"source namespace", &v1alpha3.HTTPMatchRequest{SourceNamespace: ns}, true},
		{"source labels", &v1alpha3.HTTPMatchRequest{SourceLabels: map[string]string{"app": "frontend"}}, false},
	} {
		if got := s.matchRequest(vs, tc.m, &req, e); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClassesShareTraffic(t *testing.T) {
	s := newSim(t, podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100)}),
		Class{Name: "a", Share: 0.3}, Class{Name: "b", Share: 0.7})
	mustStep(t, s, 100)
	if a, b := s.ServedClass(ns, "podinfo", "a", "podinfo-primary"), s.ServedClass(ns, "podinfo", "b", "podinfo-primary"); a != 30 || b != 70 {
		t.Fatalf("classes a (0.3) and b (0.7): %d and %d of 100, want 30 and 70", a, b)
	}
	eq := newSim(t, podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100)}), Class{Name: "a"}, Class{Name: "b"})
	mustStep(t, eq, 10)
	if a := eq.ServedClass(ns, "podinfo", "a", "podinfo-primary"); a != 5 {
		t.Fatalf("classes without shares split equally: a got %d of 10", a)
	}
}

func TestParseAnnotations(t *testing.T) {
	for _, v := range []string{"1.5", "-0.1", "x"} {
		if _, err := parseErrorRate(v); err == nil || !strings.Contains(err.Error(), ErrorRateAnnotation) {
			t.Errorf("error rate %q: err = %v, want an error naming the annotation", v, err)
		}
	}
	if r, err := parseErrorRate(" 0.05 "); err != nil || r != 0.05 {
		t.Errorf("0.05 -> %v, %v", r, err)
	}
	lo, hi, err := parseLatency("150ms-1s")
	if err != nil || lo != 150*time.Millisecond || hi != time.Second {
		t.Errorf("150ms-1s -> %v %v %v", lo, hi, err)
	}
	for _, v := range []string{"fast", "1s-100ms", "100ms-", ""} {
		if _, _, err := parseLatency(v); err == nil {
			t.Errorf("latency %q accepted", v)
		}
	}
}

func TestServedMetricsParseWithIstioLabels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSim(t, podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 90, "podinfo-canary", 10)}))
	s.RPS = 400
	s.Tick = 10 * time.Millisecond
	url, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, "127.0.0.1:0"); err == nil {
		t.Fatal("a second Start was accepted")
	}
	// Wait, bounded, until the canary has been reached: at 400 rps that is about 25ms.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, _ := s.Served(ns, "podinfo"); c > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no request reached the canary within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	wantLabels := append([]string(nil), IstioLabels...)
	sort.Strings(wantLabels)
	for _, name := range []string{RequestsTotal, RequestDurationMillis, RequestDurationSeconds} {
		mf, ok := mfs[name]
		if !ok || len(mf.GetMetric()) == 0 {
			t.Fatalf("/metrics has no %s series", name)
		}
		reporters := map[string]bool{}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
				if lp.GetName() == "reporter" {
					reporters[lp.GetValue()] = true
				}
			}
			sort.Strings(names)
			if strings.Join(names, ",") != strings.Join(wantLabels, ",") {
				t.Fatalf("%s labels %v, want Istio's %v", name, names, wantLabels)
			}
		}
		if !reporters["source"] || !reporters["destination"] {
			t.Fatalf("%s reporters %v, want both source and destination", name, reporters)
		}
	}
	for _, series := range []string{"istio_request_duration_milliseconds_bucket{", "istio_request_duration_seconds_bucket{", `destination_workload="podinfo"`} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if _, ok := mfs[SimulatorRequestsTotal]; !ok {
		t.Errorf("/metrics lacks %s", SimulatorRequestsTotal)
	}
}

func TestUnreadableClusterIsReportedOnceAndTrafficResumes(t *testing.T) {
	var logs []string
	logger := funcr.New(func(_, args string) { logs = append(logs, args) }, funcr.Options{})
	broken := true
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(podinfo(nil, &v1alpha3.HTTPRoute{Route: weighted("podinfo-primary", 100)})...).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, isVS := list.(*networkingv1.VirtualServiceList); isVS && broken {
				return errors.New("no matches for kind VirtualService")
			}
			return cl.List(ctx, list, opts...)
		}}).Build()
	s := &Simulator{Client: c, Namespaces: []string{ns}, Log: logger}
	ctx := context.Background()

	err := s.step(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), `list VirtualServices in namespace "test"`) {
		t.Fatalf("step error = %v, want one naming the failed list and namespace", err)
	}
	for range 3 {
		s.tick(ctx, time.Second)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "no matches for kind") {
		t.Fatalf("three failing ticks logged %q, want the error once", logs)
	}
	broken = false
	s.tick(ctx, time.Second)
	if total, _ := s.Served(ns, "podinfo-primary"); total != DefaultRPS {
		t.Fatalf("after recovery one second of traffic served %d requests, want %v", total, DefaultRPS)
	}
	if len(logs) != 2 || !strings.Contains(logs[1], "resumed") {
		t.Fatalf("recovery not reported: %q", logs)
	}
}
