package workload

import (
	"reflect"
	"strings"
	"testing"

	sigsjson "sigs.k8s.io/json"

	"github.com/herald-rollouts/herald/webhooks/meta"
)

// TEMPORARY (not to be committed): decodeIdleState against non-strict sigs decoding.
func refIdle(raw []byte) (*idleState, bool) {
	var s idleState
	if len(raw) == 0 || sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &s) != nil {
		return nil, false
	}
	if v, ok := s.Metadata.Annotations[meta.AnnotationIdle]; ok {
		s.Metadata.Annotations = map[string]string{meta.AnnotationIdle: v}
	} else {
		s.Metadata.Annotations = nil
	}
	return &s, true
}

func checkIdle(t *testing.T, raw []byte) {
	want, wok := refIdle(raw)
	got, gok := decodeIdleState(raw)
	if wok != gok || !reflect.DeepEqual(want, got) {
		t.Fatalf("%q: got %v %+v want %v %+v", raw, gok, got, wok, want)
	}
}

func TestTmpIdle(t *testing.T) {
	for _, d := range []string{
		`null`, ` null `, `{}`, `[]`, `"x"`, `1`, `{"metadata":null}`, `{"metadata":[]}`, `{"spec":{"replicas":"1"}}`,
		`{"spec":{"replicas":1.0}}`, `{"spec":{"replicas":-0}}`, `{"spec":{"replicas":2147483648}}`, `{"spec":{"replicas":-2147483648}}`,
		`{"spec":{"replicas":1e2}}`, `{"spec":{"replicas":null}}`, `{"spec":{"replicas":1,"replicas":null}}`, `{"spec":{"replicas":01}}`,
		`{"Spec":{"replicas":1}}`, `{"sp\u0065c":{"repl\u0069cas":1}}`, `{"metadata":{"annotations":{"herald.dev/idle":"abc"}}}`,
		`{"metadata":{"annotations":{"herald.dev/idle":null}}}`, `{"metadata":{"annotations":{"herald.dev/idle":1}}}`,
		`{"metadata":{"annotations":{"x":1}}}`, `{"metadata":{"annotations":{"herald.dev\/idle":"a\u0062"}}}`,
		`{"metadata":{"annotations":{"herald.dev/idle":"a"},"annotations":null}}`, `{"metadata":{"annotations":{"herald.dev/idle":"a"},"annotations":{}}}`,
		`{"metadata":{"annotations":{"herald.dev/idle":"a"}},"metadata":null}`, "{\"metadata\":{\"annotations\":{\"herald.dev/idle\":\"a\xff\"}}}",
		`{"x":[1,2,{"a":[]}],"y":tru}`, `{"x":"\u00"}`, `{"x":"\q"}`, "{\"x\":\"\x01\"}", `{"x":1.}`, `{"x":-}`, `{"x":1e}`, `{} x`, `{"a":1,}`, `[1,]`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	} {
		checkIdle(t, []byte(d))
	}
}

func FuzzTmpIdle(f *testing.F) {
	f.Add([]byte(`{"metadata":{"annotations":{"herald.dev/idle":"abc","x":null},"name":"a"},"spec":{"replicas":0,"template":{"a":[1,true,false,null,"x\n"]}},"status":{}}`))
	f.Add(mustJSON(f, podinfo()))
	f.Fuzz(func(t *testing.T, raw []byte) { checkIdle(t, raw) })
}
