/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// gatewayCorpus returns the Gateway API manifests of Flagger's documentation (they set no
// provider: the tutorials run Flagger with -mesh-provider=gatewayapi:v1).
func gatewayCorpus(t *testing.T) []corpusCanary {
	var out []corpusCanary
	for _, cc := range loadCorpus(t) {
		if strings.Contains(cc.file, "gatewayapi") {
			out = append(out, cc)
		}
	}
	if len(out) != 4 {
		t.Fatalf("want the 4 Gateway API manifests of the corpus, found %d", len(out))
	}
	return out
}

// TestCorpusGatewayAPI: with the Gateway API as the default provider, in each of Flagger's
// spellings, every Gateway API manifest of the corpus is accepted without a warning about its
// routing; with the default istio it is accepted too, with a warning that its gatewayRefs are
// not used and how to use them.
func TestCorpusGatewayAPI(t *testing.T) {
	for _, cc := range gatewayCorpus(t) {
		t.Run(cc.file, func(t *testing.T) {
			c := cc.canary
			for _, def := range []string{flaggerv1.ProviderGatewayAPI, flaggerv1.ProviderGatewayAPIV1, flaggerv1.ProviderGatewayAPIV1Beta1} {
				v := NewCanaryValidator(Options{DefaultProvider: def, Reader: fakeReader(t, dependencies(c)...)})
				warns, err := v.ValidateCreate(context.Background(), c)
				if err != nil {
					t.Fatalf("default provider %s: refused: %v", def, err)
				}
				for _, w := range warns {
					if strings.HasPrefix(w, "spec.service") {
						t.Errorf("default provider %s: routing warning %q", def, w)
					}
				}
				// The same with spec.provider set.
				withProvider := c.DeepCopy()
				withProvider.Spec.Provider = def
				if _, err := NewCanaryValidator(Options{Reader: fakeReader(t, dependencies(c)...)}).ValidateCreate(context.Background(), withProvider); err != nil {
					t.Fatalf("spec.provider %s: refused: %v", def, err)
				}
			}
			v := NewCanaryValidator(Options{Reader: fakeReader(t, dependencies(c)...)})
			warns, err := v.ValidateCreate(context.Background(), c)
			if err != nil {
				t.Fatalf("default provider istio: refused: %v", err)
			}
			if !slices.ContainsFunc(warns, func(w string) bool {
				return strings.HasPrefix(w, "spec.service.gatewayRefs: is ignored by provider istio") && strings.Contains(w, "gatewayapi:v1")
			}) {
				t.Errorf("istio: want a warning that gatewayRefs are ignored, got %q", warns)
			}
		})
	}
}

// TestGatewayAPIRules: what the Gateway API router cannot build is refused with its field
// paths, all at once; Istio's settings it has no place for are warnings.
func TestGatewayAPIRules(t *testing.T) {
	gw := func(c *flaggerv1.Canary) *flaggerv1.Canary {
		c.Spec.Provider = flaggerv1.ProviderGatewayAPIV1
		c.Spec.Service.GatewayRefs = []flaggerv1.ParentReference{{Name: "gateway"}}
		c.Spec.Service.Hosts = []string{"app.example.com"}
		return c
	}
	cases := []struct {
		name   string
		mutate func(c *flaggerv1.Canary)
		errs   []string
		warns  []string
	}{
		{name: "valid"},
		{name: "no gatewayRefs", mutate: func(c *flaggerv1.Canary) { c.Spec.Service.GatewayRefs = nil }, errs: []string{"spec.service.gatewayRefs"}},
		{name: "everything wrong at once", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Service.Hosts = []string{"App.Example.com"}
			c.Spec.Service.Match = []flaggerv1.HTTPMatchRequest{{IgnoreURICase: true}}
			c.Spec.Service.Timeout, c.Spec.Service.BackendTimeout = "1s", "2s"
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.Iterations = 0, 0, 10
			c.Spec.Analysis.Match = []flaggerv1.HTTPMatchRequest{{WithoutHeaders: map[string]flaggerv1.StringMatch{"x": {}}}}
		}, errs: []string{"spec.service.hosts[0]", "spec.service.match[0].ignoreUriCase", "spec.service.backendTimeout",
			"spec.analysis.match[0].withoutHeaders"}},
		{name: "gRPC with a timeout", mutate: func(c *flaggerv1.Canary) { c.Spec.Service.AppProtocol = "grpc" },
			errs: []string{"spec.service.timeout"}},
		{name: "Istio settings ignored", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Service.Gateways = []string{"mesh"}
			c.Spec.Service.Retries = &flaggerv1.HTTPRetry{Attempts: 3}
			c.Spec.Service.TrafficPolicy = &flaggerv1.TrafficPolicy{}
		}, warns: []string{"spec.service.gateways: is ignored by provider gatewayapi:v1", "spec.service.retries: is ignored",
			"experimental channel", "spec.service.trafficPolicy: is ignored"}},
		{name: "session affinity", mutate: func(c *flaggerv1.Canary) {
			c.Spec.Analysis.SessionAffinity = &flaggerv1.SessionAffinity{CookieName: "canary", PrimaryCookieName: "primary"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := gw(validCanary())
			if tc.mutate != nil {
				tc.mutate(c)
			}
			warns, err := NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)}).ValidateCreate(context.Background(), c)
			checkErrs(t, err, tc.errs, nil)
			containsAll(t, "warnings", warns, tc.warns)
			if tc.warns == nil {
				for _, w := range warns {
					t.Errorf("unexpected warning %q", w)
				}
			}
		})
	}
}

// TestGatewayAPISamples: the Canaries of config/samples/gatewayapi (which `make demo
// PROVIDER=gatewayapi` applies) are accepted without a warning about their routing.
func TestGatewayAPISamples(t *testing.T) {
	for _, f := range []string{"podinfo-canary.yaml", "podinfo-abtest.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gatewayapi", f))
		if err != nil {
			t.Fatal(err)
		}
		c := &flaggerv1.Canary{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		warns, err := NewCanaryValidator(Options{Reader: fakeReader(t, dependencies(c)...)}).ValidateCreate(context.Background(), c)
		if err != nil {
			t.Fatalf("%s refused: %v", f, err)
		}
		for _, w := range warns {
			if strings.HasPrefix(w, "spec.service") || strings.HasPrefix(w, "spec.provider") {
				t.Errorf("%s: routing warning %q", f, w)
			}
		}
	}
}
