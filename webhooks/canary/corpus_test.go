/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// TestCorpus validates every Canary of Flagger's documentation, with its target and the
// objects it names in the cache, and again with none of them (kubectl apply -f dir/ and Helm
// may send them after the Canary): the providers Herald implements (and no provider, which
// means the default istio) are accepted either way, every other one is refused with its name
// in the error, and so is a KEDA ScaledObject (Herald copies HorizontalPodAutoscalers only).
// The counts make a change in the corpus or the rules visible.
func TestCorpus(t *testing.T) {
	const wantAccepted, wantRefused, wantKEDA = 14, 6, 1
	accepted, refused, keda := 0, 0, 0
	for _, cc := range loadCorpus(t) {
		t.Run(cc.file, func(t *testing.T) {
			c := cc.canary
			for _, deps := range []bool{true, false} {
				var objs []client.Object
				if deps {
					objs = dependencies(c)
				}
				v := NewCanaryValidator(Options{Reader: fakeReader(t, objs...)})
				warns, err := v.ValidateCreate(context.Background(), c)
				for _, w := range warns {
					t.Logf("warning (dependencies %v): %s", deps, w)
				}
				supported := slices.Contains([]string{"", "istio", "kubernetes"}, c.Spec.Provider)
				usesKEDA := c.Spec.AutoscalerRef != nil && c.Spec.AutoscalerRef.Kind == "ScaledObject"
				switch {
				case supported && usesKEDA:
					if err == nil || !strings.Contains(err.Error(), "KEDA") || strings.Join(causes(t, err), ",") != "spec.autoscalerRef.kind" {
						t.Fatalf("ScaledObject: want only spec.autoscalerRef.kind refused, naming KEDA; got %v", err)
					}
					if deps {
						keda++
					}
				case supported:
					if err != nil {
						t.Fatalf("provider %q refused (dependencies %v): %v", c.Spec.Provider, deps, err)
					}
					if deps {
						accepted++
					}
				default:
					if err == nil {
						t.Fatalf("provider %q accepted", c.Spec.Provider)
					}
					if !strings.Contains(err.Error(), `"`+c.Spec.Provider+`"`) {
						t.Errorf("error does not name provider %q: %v", c.Spec.Provider, err)
					}
					fields := causes(t, err)
					if !slices.Contains(fields, "spec.provider") {
						t.Errorf("no spec.provider cause in %q", fields)
					}
					if len(fields) != 1 {
						t.Errorf("want only the provider refused, got %v", err)
					}
					if deps {
						refused++
					}
				}
			}
		})
	}
	if accepted != wantAccepted || refused != wantRefused || keda != wantKEDA {
		t.Errorf("accepted %d, refused %d (provider), %d (KEDA); want %d, %d and %d", accepted, refused, keda, wantAccepted, wantRefused, wantKEDA)
	}
}

// TestCorpusUnsupportedDefault: with a default provider Herald does not implement, a
// corpus Canary without spec.provider is refused, and the error says where the value
// comes from.
func TestCorpusUnsupportedDefault(t *testing.T) {
	for _, cc := range loadCorpus(t) {
		if cc.canary.Spec.Provider != "" {
			continue
		}
		c := cc.canary
		v := NewCanaryValidator(Options{DefaultProvider: "linkerd", Reader: fakeReader(t, dependencies(c)...)})
		_, err := v.ValidateCreate(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), `"linkerd"`) || !strings.Contains(err.Error(), "--mesh-provider") {
			t.Fatalf("%s: want the default provider refused, got %v", cc.file, err)
		}
		return
	}
	t.Fatal("no corpus Canary without provider")
}

func istioCorpusCanary(tb testing.TB) *flaggerv1.Canary {
	for _, cc := range loadCorpus(tb) {
		if strings.Contains(cc.file, "istio-progressive-delivery") {
			return cc.canary
		}
	}
	tb.Fatal("no Istio canary in the corpus")
	return nil
}

func BenchmarkValidateCanary(b *testing.B) {
	c := istioCorpusCanary(b)
	v := NewCanaryValidator(Options{Reader: fakeReader(b, dependencies(c)...)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.ValidateCreate(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzValidateCanary decodes arbitrary JSON into a Canary and validates it: the validator
// must never panic, whatever the input.
func FuzzValidateCanary(f *testing.F) {
	for _, cc := range loadCorpus(f) {
		data, err := json.Marshal(cc.canary)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"spec":{"analysis":{"stepWeights":[50,10,-1],"metrics":[{"name":"x","thresholdRange":{"min":2,"max":1}}],"webhooks":[{"url":"::"},{"timeout":"x"}]}}}`))
	f.Add([]byte(`{"spec":{"canaryAnalysis":{},"targetRef":{"kind":"DaemonSet","name":"ds"},"provider":"kubernetes"}}`))
	reader := fakeReader(f,
		podinfo("test", "podinfo"),
		deployment("test", "two", map[string]string{"app": "a", "name": "b"}, nil),
		metricTemplate("test", "error-rate"),
		alertProvider("test", "slack"),
	)
	v := NewCanaryValidator(Options{Reader: reader})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &flaggerv1.Canary{}
		if err := json.Unmarshal(data, c); err != nil {
			return
		}
		_, _ = v.ValidateCreate(context.Background(), c)
		old := c.DeepCopy()
		_, _ = v.ValidateUpdate(context.Background(), old, c)
	})
}
