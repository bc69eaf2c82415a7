/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// corpusDir holds Canary manifests taken from Flagger's documentation. It sits beside the
// repository (../shared next to the checkout).
const corpusDir = "../../../shared/compat/flagger-docs-canaries"

func corpusFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests found in %s", corpusDir)
	}
	return files
}

// TestCorpusDecodesStrictly proves that every field of every corpus manifest is known to the
// Go types: strict decoding fails on an unknown or duplicated field.
func TestCorpusDecodesStrictly(t *testing.T) {
	for _, file := range corpusFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var c Canary
			if err := yaml.UnmarshalStrict(data, &c); err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if c.Kind != CanaryKind || c.APIVersion != GroupVersion.String() {
				t.Errorf("got %s %s", c.APIVersion, c.Kind)
			}
			if c.Spec.TargetRef.Name == "" || c.Spec.Service.Port == 0 {
				t.Errorf("targetRef or service.port not decoded: %+v", c.Spec)
			}
		})
	}
}

// TestCorpusRoundTrips proves that nothing is lost: encoding the decoded Canary gives back
// the same JSON document as the manifest.
func TestCorpusRoundTrips(t *testing.T) {
	for _, file := range corpusFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, err := yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			var c Canary
			if err := json.Unmarshal(in, &c); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			var want, got map[string]any
			if err := json.Unmarshal(in, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip changed the manifest\n in: %s\nout: %s", in, out)
			}
		})
	}
}

// TestCanaryAnalysisAliasRoundTrips covers the deprecated spec.canaryAnalysis, which no
// corpus manifest uses.
func TestCanaryAnalysisAliasRoundTrips(t *testing.T) {
	const manifest = `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: legacy
  namespace: test
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: legacy}
  service: {port: 80, targetPort: http, portDiscovery: true}
  canaryAnalysis:
    interval: 1m30s
    threshold: 3
    stepWeights: [1, 5, 25]
    primaryReadyThreshold: 0
    sessionAffinity: {cookieName: a, primaryCookieName: b, httpOnly: true, sameSite: Lax}
    metrics:
    - name: custom
      query: sum(rate(x[1m]))
      threshold: 0.5
    webhooks:
    - name: gate
      type: confirm-promotion
      url: http://gate/
      retries: 2
      disableTLS: true
      muteAlert: true
`
	var c Canary
	if err := yaml.UnmarshalStrict([]byte(manifest), &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Analysis != nil || c.GetAnalysis() != c.Spec.CanaryAnalysis {
		t.Fatal("GetAnalysis must fall back to canaryAnalysis")
	}
	if got := c.GetMaxWeight(); got != 25 {
		t.Errorf("GetMaxWeight = %d, want 25", got)
	}
	if got := c.GetAnalysisPrimaryReadyThreshold(); got != 0 {
		t.Errorf("an explicit primaryReadyThreshold 0 must be kept, got %d", got)
	}
	in, _ := yaml.YAMLToJSON([]byte(manifest))
	out, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	_ = json.Unmarshal(in, &want)
	_ = json.Unmarshal(out, &got)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("round trip changed the manifest\n in: %s\nout: %s", in, out)
	}
}
