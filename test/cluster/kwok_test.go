package cluster

import (
	"fmt"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// stagesOf parses a stage file into name → selector requirements.
func stagesOf(t *testing.T, b []byte) (names []string, exprs map[string][]map[string]any) {
	t.Helper()
	exprs = map[string][]map[string]any{}
	for _, doc := range yamlDocSep.Split(string(b), -1) {
		var s struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchExpressions []map[string]any `json:"matchExpressions"`
				} `json:"selector"`
				Next struct {
					StatusTemplate string `json:"statusTemplate"`
				} `json:"next"`
			} `json:"spec"`
		}
		if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
			// Strict only on what is declared above: fall back for other fields.
			if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
				t.Fatalf("stage document does not parse: %v\n%s", err, doc)
			}
		}
		if s.Kind != "Stage" || s.Metadata.Name == "" {
			t.Fatalf("not a named Stage:\n%s", doc)
		}
		names = append(names, s.Metadata.Name)
		exprs[s.Metadata.Name] = s.Spec.Selector.MatchExpressions
	}
	return names, exprs
}

func TestKwokStages(t *testing.T) {
	upstream := []byte(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'NotIn'
      values: ['Running']
  next:
    statusTemplate: |
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
`)
	out, err := kwokStages(upstream)
	if err != nil {
		t.Fatal(err)
	}
	names, exprs := stagesOf(t, out)
	want := []string{"node-initialize", "pod-ready", "pod-delete", "herald-pod-image-pull-error", "herald-pod-crash-loop", "herald-primary-pod-crash-loop"}
	if !slices.Equal(names, want) {
		t.Fatalf("stages %q, want %q\n%s", names, want, out)
	}
	excluded := func(name string) bool {
		for _, e := range exprs[name] {
			if e["key"] == `.metadata.annotations["herald.dev/simulate"]` && e["operator"] == "NotIn" &&
				fmt.Sprint(e["values"]) == "[image-pull-error crash-loop]" {
				return true
			}
		}
		return false
	}
	if !excluded("pod-ready") {
		t.Errorf("pod-ready does not leave simulated pods out: %v", exprs["pod-ready"])
	}
	if len(exprs["pod-ready"]) != 2 {
		t.Errorf("pod-ready lost its own requirements: %v", exprs["pod-ready"])
	}
	for _, name := range []string{"node-initialize", "pod-delete"} {
		if excluded(name) || len(exprs[name]) != 1 {
			t.Errorf("%s changed: %v", name, exprs[name])
		}
	}
	for name, value := range map[string]string{"herald-pod-image-pull-error": SimulateImagePullError, "herald-pod-crash-loop": SimulateCrashLoop} {
		e := exprs[name][0]
		if e["key"] != `.metadata.annotations["herald.dev/simulate"]` || e["operator"] != "In" || fmt.Sprint(e["values"]) != "["+value+"]" {
			t.Errorf("%s does not select %s=%s: %v", name, SimulateAnnotation, value, e)
		}
	}
	// The primary's crash loop selects primaries' pods carrying its annotation, and keeps the
	// rest of the crash loop's requirements.
	primary := exprs["herald-primary-pod-crash-loop"]
	if len(primary) != len(exprs["herald-pod-crash-loop"])+1 ||
		primary[0]["key"] != `.metadata.annotations["simulate.herald.test/primary"]` || fmt.Sprint(primary[0]["values"]) != "[crash-loop]" ||
		primary[1]["key"] != `.metadata.annotations["herald.dev/promoted-revision"]` || primary[1]["operator"] != "Exists" {
		t.Errorf("herald-primary-pod-crash-loop selects %v", primary)
	}
	// The template of a rewritten stage survives the round trip unchanged.
	var ready struct {
		Spec struct {
			Next struct {
				StatusTemplate string `json:"statusTemplate"`
			} `json:"next"`
		} `json:"spec"`
	}
	docs := yamlDocSep.Split(string(out), -1)
	if err := yaml.Unmarshal([]byte(docs[1]), &ready); err != nil {
		t.Fatal(err)
	}
	if got := ready.Spec.Next.StatusTemplate; got != "{{ $now := Now }}\nphase: Running\nstartTime: {{ $now | Quote }}\n" {
		t.Errorf("pod-ready template changed: %q", got)
	}
}
