package workload

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

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

type refWorkloadDoc struct {
	Metadata struct {
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32                 `json:"replicas"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

func refDecodeWorkload(kind string, raw []byte) (*workloadObject, bool) {
	if len(raw) == 0 || (kind != "Deployment" && kind != "DaemonSet") {
		return nil, false
	}
	var d refWorkloadDoc
	if !decodeStrict(raw, &d) {
		return nil, false
	}
	obj := &workloadObject{labels: d.Metadata.Labels, annotations: d.Metadata.Annotations,
		namespace: d.Metadata.Namespace, template: &d.Spec.Template}
	if kind == "Deployment" {
		obj.replicas = d.Spec.Replicas
	}
	return obj, true
}

func checkWorkload(t *testing.T, kind string, raw []byte) {
	want, wok := refDecodeWorkload(kind, raw)
	got, gok := decodeWorkload(kind, raw)
	if wok != gok || !reflect.DeepEqual(want, got) {
		t.Fatalf("%q: got %v %#v want %v %#v", raw, gok, got, wok, want)
	}
	if gok && (want.labels == nil) != (got.labels == nil) || gok && (want.annotations == nil) != (got.annotations == nil) {
		t.Fatalf("%q: nil maps differ", raw)
	}
}

func TestTmpWorkload(t *testing.T) {
	for _, d := range []string{
		`null`, `{}`, `[]`, `"x"`, `{"metadata":null,"spec":null}`, `{"metadata":null,"metadata":null}`, `{"metadata":{},"metadata":{}}`,
		`{"metadata":{"labels":{"a":"1","a":"2"}}}`, "{\"metadata\":{\"labels\":{\"a\xff\":\"1\",\"a\xfe\":\"2\"}}}", `{"metadata":{"labels":{"a":null}}}`,
		`{"metadata":{"labels":{"a":1}}}`, `{"metadata":{"labels":null,"annotations":{}}}`, `{"metadata":{"namespace":null}}`, `{"metadata":{"namespace":1}}`,
		`{"metadata":{"namespace":"a\u0062"}}`, `{"metadata":{"Namespace":"x"}}`, `{"spec":{"replicas":3,"replicas":3}}`, `{"spec":{"replicas":null}}`,
		`{"spec":{"template":null}}`, `{"spec":{"template":"x"}}`, `{"spec":{"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}}}`,
		`{"spec":{"template":{"metadata":{"labels":{"a":"b"}}},"template":{}}}`, `{"status":{},"status":{}}`, `{"metadata":{"x":1,"x":2}}`,
		`{"spec":{"template":{"spec":{"containers":[{"resources":{"limits":{"cpu":"1x"}}}]}}}}`,
		`{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		`{"spec":{"template":` + strings.Repeat(`{"metadata":`, 9998) + `{}` + strings.Repeat("}", 9998) + `}}`,
		`{"spec":{"template":` + strings.Repeat(`{"metadata":`, 9997) + `{}` + strings.Repeat("}", 9997) + `}}`,
	} {
		checkWorkload(t, "Deployment", []byte(d))
		checkWorkload(t, "DaemonSet", []byte(d))
	}
	checkWorkload(t, "Deployment", mustJSON(t, podinfo()))
	checkWorkload(t, "DaemonSet", mustJSON(t, daemonset()))
}

func FuzzTmpWorkload(f *testing.F) {
	f.Add(mustJSON(f, podinfo()), false)
	f.Add(mustJSON(f, daemonset()), true)
	f.Add([]byte(`{"metadata":{"labels":{"herald.dev/canary":"x"},"annotations":null,"namespace":"n"},"spec":{"replicas":3,"template":{"spec":{"activeDeadlineSeconds":1}}}}`), false)
	f.Fuzz(func(t *testing.T, raw []byte, ds bool) {
		kind := "Deployment"
		if ds {
			kind = "DaemonSet"
		}
		checkWorkload(t, kind, raw)
	})
}
