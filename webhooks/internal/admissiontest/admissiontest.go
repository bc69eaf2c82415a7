// Package admissiontest holds checks shared by the admission handlers' tests and fuzzers.
package admissiontest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// SameExceptHerald fails unless a and b are equal JSON documents once Herald's annotations
// and (when replicas is set) spec.replicas are removed from both: a handler's patch may touch
// nothing else.
func SameExceptHerald(t testing.TB, a, b []byte, replicas bool) {
	t.Helper()
	norm := func(raw []byte) any {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("result is not JSON: %v", err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		if md, ok := obj["metadata"].(map[string]any); ok {
			if ann, ok := md["annotations"].(map[string]any); ok {
				for k := range ann {
					if strings.HasPrefix(k, "herald.dev/") {
						delete(ann, k)
					}
				}
				if len(ann) == 0 {
					delete(md, "annotations")
				}
			} else if md["annotations"] == nil {
				delete(md, "annotations")
			}
		}
		if spec, ok := obj["spec"].(map[string]any); ok && replicas {
			delete(spec, "replicas")
		}
		return obj
	}
	if na, nb := norm(a), norm(b); !reflect.DeepEqual(na, nb) {
		t.Fatalf("patch changed more than Herald's fields:\n%s\n%s", a, b)
	}
}
