package router

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// TestConversionErrors: settings Istio cannot take are refused with the path of the Canary
// field that holds them and the reason, not dropped and not a panic.
func TestConversionErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *flaggerv1.Canary)
		want   []string // substrings of the error, in any order
	}{
		{
			name: "two string conditions",
			mutate: func(c *flaggerv1.Canary) {
				c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{URI: &flaggerv1.StringMatch{Exact: "/a", Prefix: "/b"}}}
			},
			want: []string{"spec.service.match[0].uri", "set only one of exact, prefix, suffix and regex"},
		},
		{
			name: "bad regex",
			mutate: func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x-user": {Regex: "(unclosed"}}}}
			},
			want: []string{"spec.analysis.match[0].headers[x-user].regex", "not a valid RE2 regular expression"},
		},
		{
			name: "header names differing only in case",
			mutate: func(c *flaggerv1.Canary) {
				c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"X-A": {Exact: "1"}, "x-a": {Exact: "2"}}}}
			},
			want: []string{"spec.service.match[0].headers", "header names are case-insensitive"},
		},
		{
			name:   "negative port",
			mutate: func(c *flaggerv1.Canary) { c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{Port: -1}} },
			want:   []string{"spec.service.match[0].port", "must not be negative"},
		},
		{
			name:   "timeout",
			mutate: func(c *flaggerv1.Canary) { c.Spec.Service.Timeout = "soon" },
			want:   []string{"spec.service.timeout", "must be a duration"},
		},
		{
			name: "retries",
			mutate: func(c *flaggerv1.Canary) {
				c.Spec.Service.Retries = &flaggerv1.HTTPRetry{Attempts: -2, PerTryTimeout: "-1s"}
			},
			want: []string{"spec.service.retries.attempts", "spec.service.retries.perTryTimeout"},
		},
		{
			name:   "cors max age",
			mutate: func(c *flaggerv1.Canary) { c.Spec.Service.CorsPolicy = &flaggerv1.CorsPolicy{MaxAge: "1 day"} },
			want:   []string{"spec.service.corsPolicy.maxAge"},
		},
		{
			name: "TCP with HTTP features",
			mutate: func(c *flaggerv1.Canary) {
				c.Spec.Service.AppProtocol = "tcp"
				c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{URI: &flaggerv1.StringMatch{Prefix: "/"}}}
				c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{Headers: map[string]flaggerv1.StringMatch{"x": {Exact: "1"}}}}
				c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "c"}
				c.Spec.Analysis.Mirror = true
			},
			want: []string{
				"spec.service.match[0]", "HTTP conditions cannot match TCP traffic",
				"spec.analysis.match: Forbidden: A/B testing needs HTTP routing",
				"spec.analysis.sessionAffinity: Forbidden", "spec.analysis.mirror: Forbidden",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := corpusCanary(t, "044")
			tt.mutate(c)
			_, err := VirtualService(c, Split{Primary: 100, Mirrored: c.Spec.Analysis.Mirror})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "canary test/podinfo") {
				t.Errorf("error %q does not name the canary", err)
			}
			if errs := ValidateIstio(c); len(errs) == 0 {
				t.Errorf("ValidateIstio found nothing")
			}
		})
	}
}

func TestTrafficPolicyErrors(t *testing.T) {
	c := corpusCanary(t, "044")
	c.Spec.Service.TrafficPolicy = &flaggerv1.TrafficPolicy{
		LoadBalancer: &flaggerv1.LoadBalancerSettings{
			Simple:         "FASTEST",
			ConsistentHash: &flaggerv1.ConsistentHashLB{HTTPHeaderName: "x-user", UseSourceIP: true},
		},
		ConnectionPool: &flaggerv1.ConnectionPoolSettings{
			TCP:  &flaggerv1.TCPSettings{ConnectTimeout: "fast", TCPKeepalive: &flaggerv1.TCPKeepalive{Probes: -1}},
			HTTP: &flaggerv1.HTTPSettings{H2UpgradePolicy: "MAYBE"},
		},
		OutlierDetection:  &flaggerv1.OutlierDetection{Consecutive5xxErrors: ptr.To[int32](-3)},
		TLS:               &flaggerv1.ClientTLSSettings{Mode: "PLAIN"},
		PortLevelSettings: []flaggerv1.PortTrafficPolicy{{LoadBalancer: &flaggerv1.LoadBalancerSettings{ConsistentHash: &flaggerv1.ConsistentHashLB{}}}},
	}
	_, _, err := DestinationRules(c)
	if err == nil {
		t.Fatal("no error")
	}
	p := "spec.service.trafficPolicy."
	for _, w := range []string{
		p + `loadBalancer.simple: Unsupported value: "FASTEST"`,
		p + "loadBalancer: Invalid value: \"simple, consistentHash\"",
		p + "loadBalancer.consistentHash: Invalid value: \"httpHeaderName, useSourceIp\"",
		p + "connectionPool.tcp.connectTimeout",
		p + "connectionPool.tcp.tcpKeepalive.probes",
		p + `connectionPool.http.h2UpgradePolicy: Unsupported value: "MAYBE"`,
		p + "outlierDetection.consecutive5xxErrors",
		p + `tls.mode: Unsupported value: "PLAIN"`,
		p + "portLevelSettings[0].port.number: Required value",
		p + "portLevelSettings[0].loadBalancer.consistentHash: Required value",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
	// The primary and canary rules share the policy: each problem is reported once.
	if n := strings.Count(err.Error(), "FASTEST"); n != 1 {
		t.Errorf("the simple problem is reported %d times", n)
	}
	if errs := ValidateIstio(c); len(errs) != 10 {
		t.Errorf("ValidateIstio: %d errors, want 10: %v", len(errs), errs)
	}
}

// TestSuffixBecomesRegex: Istio has no suffix match; the regex that replaces it matches the
// same values, with regex metacharacters in the suffix taken literally.
func TestSuffixBecomesRegex(t *testing.T) {
	var cv converter
	m := cv.stringMatch(nil, &flaggerv1.StringMatch{Suffix: ".example.com"})
	if len(cv.errs) > 0 {
		t.Fatal(cv.errs)
	}
	if got := m.GetRegex(); got != `.*\.example\.com` {
		t.Errorf("regex %q", got)
	}
}

// TestCorpusIstioCanariesConvert: every Istio manifest of Flagger's documentation builds.
func TestCorpusIstioCanariesConvert(t *testing.T) {
	for _, prefix := range []string{"011", "028", "029", "030", "044"} {
		c := corpusCanary(t, prefix)
		if errs := ValidateIstio(c); len(errs) > 0 {
			t.Errorf("%s: %v", prefix, errs)
		}
	}
}
