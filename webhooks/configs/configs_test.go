package configs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks/internal/admissiontest"
)

const secretValue = "hunter2-very-secret-value"

func tracked() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: "podinfo-config", Namespace: "test",
		Labels:      map[string]string{"app": "podinfo", contract.LabelTracked: contract.TrackedValue},
		Annotations: map[string]string{"owner": "team-a"}}
}

func cm() *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: tracked(),
		Data:       map[string]string{"color": "blue", "config.yaml": "level: info\nport: 9898\n"},
		BinaryData: map[string][]byte{"logo.png": {0x89, 0x50, 0x4e, 0x47}}}
}

func sec() *corev1.Secret {
	s := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: tracked(),
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"token": []byte(secretValue), "user": []byte("admin")}}
	s.Name = "podinfo-token"
	return s
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func request(t testing.TB, op admissionv1.Operation, kind string, obj any) admission.Request {
	t.Helper()
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: strings.ToLower(kind) + "s"},
		Namespace: "test",
		Operation: op,
	}}
	if obj != nil {
		r.Object.Raw = mustJSON(t, obj)
		if op == admissionv1.Update {
			r.OldObject.Raw = r.Object.Raw
		}
	}
	return r
}

// apply checks the response of the mutating handler and applies its patch.
func apply(t testing.TB, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	if len(resp.Patches) == 0 {
		if resp.PatchType != nil {
			t.Fatal("patch type without patch")
		}
		return raw
	}
	p, err := jsonpatch.DecodePatch(mustJSON(t, resp.Patches))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", mustJSON(t, resp.Patches), err)
	}
	return out
}

func annotationsAfter(t *testing.T, req admission.Request) (admission.Response, map[string]string) {
	t.Helper()
	resp := NewHandler().Handle(context.Background(), req)
	var out metav1.PartialObjectMetadata
	if err := json.Unmarshal(apply(t, req.Object.Raw, resp), &out); err != nil {
		t.Fatal(err)
	}
	return resp, out.Annotations
}

func TestChecksumWritten(t *testing.T) {
	c := cm()
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
		_, ann := annotationsAfter(t, request(t, op, "ConfigMap", c))
		if want := contract.ConfigChecksum(c.Data, c.BinaryData); ann[contract.AnnotationChecksum] != want {
			t.Errorf("%s configmap: checksum %q, want %q", op, ann[contract.AnnotationChecksum], want)
		}
		if ann["owner"] != "team-a" {
			t.Error("other annotation lost")
		}
		s := sec()
		_, ann = annotationsAfter(t, request(t, op, "Secret", s))
		if want := contract.SecretChecksum(s.Data); ann[contract.AnnotationChecksum] != want {
			t.Errorf("%s secret: checksum %q, want %q", op, ann[contract.AnnotationChecksum], want)
		}
	}

	// Content changes change the checksum, a stale one is replaced; a current one is kept.
	c2 := cm()
	c2.Annotations[contract.AnnotationChecksum] = contract.ConfigChecksum(c.Data, c.BinaryData)
	c2.Data["color"] = "red"
	_, ann := annotationsAfter(t, request(t, admissionv1.Update, "ConfigMap", c2))
	if ann[contract.AnnotationChecksum] == c2.Annotations[contract.AnnotationChecksum] {
		t.Error("stale checksum kept")
	}
	c3 := cm()
	c3.Annotations[contract.AnnotationChecksum] = contract.ConfigChecksum(c3.Data, c3.BinaryData)
	if resp := NewHandler().Handle(context.Background(), request(t, admissionv1.Update, "ConfigMap", c3)); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("current checksum: patched %s", mustJSON(t, resp.Patches))
	}
	// binaryData counts.
	c4 := cm()
	c4.BinaryData["logo.png"] = []byte{1}
	_, ann4 := annotationsAfter(t, request(t, admissionv1.Create, "ConfigMap", c4))
	_, ann1 := annotationsAfter(t, request(t, admissionv1.Create, "ConfigMap", cm()))
	if ann4[contract.AnnotationChecksum] == ann1[contract.AnnotationChecksum] {
		t.Error("binaryData change did not change the checksum")
	}
	// stringData (normally merged by the API server already) overrides data.
	s := sec()
	s.StringData = map[string]string{"token": "other"}
	_, ann = annotationsAfter(t, request(t, admissionv1.Create, "Secret", s))
	if want := contract.SecretChecksum(map[string][]byte{"token": []byte("other"), "user": []byte("admin")}); ann[contract.AnnotationChecksum] != want {
		t.Errorf("stringData: checksum %q, want %q", ann[contract.AnnotationChecksum], want)
	}
	// No annotations at all.
	c5 := cm()
	c5.Annotations = nil
	_, ann = annotationsAfter(t, request(t, admissionv1.Create, "ConfigMap", c5))
	if ann[contract.AnnotationChecksum] == "" {
		t.Error("no checksum written on an object without annotations")
	}
}

func TestDisabled(t *testing.T) {
	for _, value := range []string{"disabled", "disable"} {
		c := cm()
		c.Annotations[contract.FlaggerConfigTracking] = value
		resp, ann := annotationsAfter(t, request(t, admissionv1.Update, "ConfigMap", c))
		if len(resp.Patches) != 0 || ann[contract.AnnotationChecksum] != "" {
			t.Errorf("%s: patched %s", value, mustJSON(t, resp.Patches))
		}
		s := sec()
		s.Annotations[contract.FlaggerConfigTracking] = value
		s.Annotations[contract.AnnotationChecksum] = "stale"
		resp, ann = annotationsAfter(t, request(t, admissionv1.Update, "Secret", s))
		if _, ok := ann[contract.AnnotationChecksum]; ok {
			t.Errorf("%s: stale checksum kept", value)
		}
		if len(resp.Patches) != 1 || resp.Patches[0].Operation != "remove" {
			t.Errorf("%s: patch %s", value, mustJSON(t, resp.Patches))
		}
	}
	// "enabled" is not an opt-out.
	c := cm()
	c.Annotations[contract.FlaggerConfigTracking] = "enabled"
	if _, ann := annotationsAfter(t, request(t, admissionv1.Update, "ConfigMap", c)); ann[contract.AnnotationChecksum] == "" {
		t.Error("enabled: no checksum")
	}
}

func TestNotHandled(t *testing.T) {
	untracked := cm()
	delete(untracked.Labels, contract.LabelTracked)
	wrongValue := sec()
	wrongValue.Labels[contract.LabelTracked] = "false"
	reqs := map[string]admission.Request{
		"untracked":   request(t, admissionv1.Create, "ConfigMap", untracked),
		"label false": request(t, admissionv1.Create, "Secret", wrongValue),
		"delete":      request(t, admissionv1.Delete, "Secret", nil),
		"delete with old": func() admission.Request {
			r := request(t, admissionv1.Delete, "Secret", nil)
			r.OldObject.Raw = mustJSON(t, sec())
			return r
		}(),
		"connect":    request(t, admissionv1.Connect, "ConfigMap", cm()),
		"other kind": request(t, admissionv1.Create, "Pod", cm()),
		"other group": func() admission.Request {
			r := request(t, admissionv1.Create, "ConfigMap", cm())
			r.Kind.Group = "example.com"
			return r
		}(),
		"malformed": func() admission.Request {
			r := request(t, admissionv1.Create, "Secret", nil)
			r.Object.Raw = []byte(`{"metadata":{"labels":{"herald.dev/tracked":"true"}},"data":{"token":"not base64!` + secretValue + `"}}`)
			return r
		}(),
		"empty": request(t, admissionv1.Create, "Secret", nil),
	}
	for name, req := range reqs {
		resp := NewHandler().Handle(context.Background(), req)
		if !resp.Allowed || len(resp.Patches) != 0 || resp.PatchType != nil {
			t.Errorf("%s: want allowed without patch, got %+v", name, resp)
		}
		if resp.Result != nil && strings.Contains(resp.Result.Message, secretValue) {
			t.Errorf("%s: message leaks the secret", name)
		}
	}
}

// The patch of a Secret touches metadata only and carries no data value, in any encoding.
func TestSecretValuesNeverInPatch(t *testing.T) {
	s := sec()
	s.Annotations[contract.AnnotationChecksum] = "stale"
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
		for _, mutate := range []func(*corev1.Secret){
			func(*corev1.Secret) {},
			func(s *corev1.Secret) { s.Annotations = nil },
			func(s *corev1.Secret) { s.Annotations[contract.FlaggerConfigTracking] = "disabled" },
		} {
			c := s.DeepCopy()
			mutate(c)
			req := request(t, op, "Secret", c)
			req.DryRun = ptr.To(op == admissionv1.Update)
			resp := NewHandler().Handle(context.Background(), req)
			apply(t, req.Object.Raw, resp)
			if len(resp.Patches) == 0 {
				t.Fatalf("%s: expected a patch", op)
			}
			for _, p := range resp.Patches {
				if !strings.HasPrefix(p.Path, "/metadata/") {
					t.Errorf("patch operation outside metadata: %s %s", p.Operation, p.Path)
				}
			}
			raw := mustJSON(t, resp.Patches)
			out, _ := json.Marshal(resp)
			for _, v := range c.Data {
				for _, enc := range []string{string(v), base64.StdEncoding.EncodeToString(v)} {
					if bytes.Contains(raw, []byte(enc)) || bytes.Contains(out, []byte(enc)) {
						t.Errorf("patch or response contains a secret value: %s", raw)
					}
				}
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	c := cm()
	c.Annotations = nil
	req := request(t, admissionv1.Update, "ConfigMap", c)
	first := mustJSON(t, NewHandler().Handle(context.Background(), req))
	req.DryRun = ptr.To(true)
	for i := 0; i < 20; i++ {
		if got := mustJSON(t, NewHandler().Handle(context.Background(), req)); !bytes.Equal(got, first) {
			t.Fatalf("%s != %s", got, first)
		}
	}
}

func FuzzConfigHandler(f *testing.F) {
	h := NewHandler()
	f.Add(mustJSON(f, cm()), uint8(0), uint8(0))
	f.Add(mustJSON(f, sec()), uint8(1), uint8(1))
	s := sec()
	s.Annotations[contract.FlaggerConfigTracking] = "disabled"
	s.Annotations[contract.AnnotationChecksum] = "stale"
	f.Add(mustJSON(f, s), uint8(1), uint8(1))
	f.Add([]byte(`{"metadata":{"labels":{"herald.dev/tracked":"true"},"annotations":null},"data":null}`), uint8(0), uint8(0))
	f.Add([]byte{}, uint8(2), uint8(0))
	f.Add([]byte("garbage\xff"), uint8(0), uint8(1))
	ops := []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect}
	f.Fuzz(func(t *testing.T, obj []byte, op, kind uint8) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID:       "fuzz",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: [...]string{"ConfigMap", "Secret", "Pod"}[kind%3]},
			Operation: ops[int(op)%len(ops)],
		}}
		req.Object.Raw = obj
		resp := h.Handle(context.Background(), req)
		out := apply(t, obj, resp)
		for _, p := range resp.Patches {
			if !strings.HasPrefix(p.Path, "/metadata/") {
				t.Fatalf("patch operation outside metadata: %s %s", p.Operation, p.Path)
			}
		}
		if len(resp.Patches) > 0 {
			admissiontest.SameExceptHerald(t, obj, out, false)
			req.Object.Raw = out
			if again := h.Handle(context.Background(), req); len(again.Patches) != 0 {
				t.Fatalf("not idempotent: %s", mustJSON(t, again.Patches))
			}
		}
	})
}

func BenchmarkConfigHandler(b *testing.B) {
	h := NewHandler()
	s := sec()
	s.Data["config.json"] = bytes.Repeat([]byte(`{"key":"value"},`), 64)
	req := request(b, admissionv1.Update, "Secret", s)
	c := cm()
	cmReq := request(b, admissionv1.Update, "ConfigMap", c)
	c.Annotations[contract.AnnotationChecksum] = contract.ConfigChecksum(c.Data, c.BinaryData)
	unchanged := request(b, admissionv1.Update, "ConfigMap", c)
	for name, r := range map[string]admission.Request{"secret-patch": req, "configmap-patch": cmReq, "configmap-unchanged": unchanged} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.Handle(context.Background(), r); !resp.Allowed {
					b.Fatal("denied")
				}
			}
		})
	}
}
