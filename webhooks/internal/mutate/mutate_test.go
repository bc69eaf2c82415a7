package mutate

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The operations equal, once applied, the diff admission.PatchResponseFromRaw computes for the
// same edit made on the generic document.
func TestSameAsPatchResponseFromRaw(t *testing.T) {
	cases := []struct {
		name     string
		raw      string
		ann      map[string]string
		set      map[string]string
		remove   []string
		replicas *int64
	}{
		{"no annotations", `{"metadata":{"name":"a"},"spec":{"replicas":2}}`, nil,
			map[string]string{"herald.dev/revision": "r", "herald.dev/x~y": "z"}, nil, ptr(2)},
		{"null annotations", `{"metadata":{"annotations":null},"spec":{}}`, nil,
			map[string]string{"herald.dev/revision": "r"}, []string{"gone"}, nil},
		{"existing", `{"metadata":{"annotations":{"a":"1","herald.dev/revision":"old","herald.dev/checksum":"c"}},"spec":{"replicas":3}}`,
			map[string]string{"a": "1", "herald.dev/revision": "old", "herald.dev/checksum": "c"},
			map[string]string{"herald.dev/revision": "new", "a": "1", "b": "2"}, []string{"herald.dev/checksum", "nothere"}, ptr(3)},
		{"unchanged", `{"metadata":{"annotations":{"a":"1"}},"spec":{"replicas":0}}`, map[string]string{"a": "1"},
			map[string]string{"a": "1"}, nil, ptr(0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := New(c.ann)
			for k, v := range c.set {
				p.SetAnnotation(k, v)
			}
			for _, k := range c.remove {
				p.RemoveAnnotation(k)
			}
			if c.replicas != nil {
				p.SetSpecInt("replicas", 0, c.replicas)
			}
			ours := p.Response("x")

			var generic map[string]any
			if err := json.Unmarshal([]byte(c.raw), &generic); err != nil {
				t.Fatal(err)
			}
			md := generic["metadata"].(map[string]any)
			ann, _ := md["annotations"].(map[string]any)
			if ann == nil && len(c.set) > 0 {
				ann = map[string]any{}
				md["annotations"] = ann
			}
			for k, v := range c.set {
				ann[k] = v
			}
			for _, k := range c.remove {
				delete(ann, k)
			}
			if c.replicas != nil {
				generic["spec"].(map[string]any)["replicas"] = 0
			}
			edited, _ := json.Marshal(generic)
			theirs := admission.PatchResponseFromRaw([]byte(c.raw), edited)

			if (len(ours.Patches) == 0) != (len(theirs.Patches) == 0) {
				t.Fatalf("ours %v, theirs %v", ours.Patches, theirs.Patches)
			}
			a, b := applied(t, c.raw, ours), applied(t, c.raw, theirs)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("ours gives %v, PatchResponseFromRaw %v", a, b)
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

func applied(t *testing.T, raw string, resp admission.Response) any {
	t.Helper()
	out := []byte(raw)
	if len(resp.Patches) > 0 {
		ops, _ := json.Marshal(resp.Patches)
		p, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = p.Apply(out); err != nil {
			t.Fatalf("%s: %v", ops, err)
		}
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
