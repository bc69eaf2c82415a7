package workload

import (
	"context"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks/internal/admissiontest"
)

var fuzzOps = []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect, ""}

// checkMutating asserts the contract of a mutating handler's response: allowed, and either no
// patch or a patch that applies cleanly to the original object. It returns the patched object.
func checkMutating(t *testing.T, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("mutating handler denied: %+v", resp.Result)
	}
	if len(resp.Patch) != 0 {
		t.Fatalf("raw Patch set: %s", resp.Patch)
	}
	if len(resp.Patches) == 0 {
		if resp.PatchType != nil {
			t.Fatal("patch type without patches")
		}
		return raw
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatal("patches without JSONPatch type")
	}
	p, err := jsonpatch.DecodePatch(mustJSON(t, resp.Patches))
	if err != nil {
		t.Fatalf("patch does not decode: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s does not apply to %q: %v", mustJSON(t, resp.Patches), raw, err)
	}
	return out
}

func FuzzWorkloadHandler(f *testing.F) {
	h := NewHandler(reader("a", "b"), testOpts)
	valid := mustJSON(f, podinfo())
	idleDep := podinfo()
	idleDep.Annotations[contract.AnnotationIdle] = "777321398302c1ad"
	idleDep.Spec.Replicas = ptr.To[int32](0)
	f.Add(valid, []byte(nil), uint8(0), uint8(0), uint8(0))
	f.Add(valid, mustJSON(f, idleDep), uint8(1), uint8(0), uint8(0))
	f.Add(valid, valid, uint8(1), uint8(0), uint8(1))
	f.Add(mustJSON(f, daemonset()), []byte(nil), uint8(0), uint8(1), uint8(0))
	f.Add([]byte(`{"metadata":{"labels":{"herald.dev/canary":"x"}},"spec":{"replicas":3}}`),
		[]byte(`{"metadata":{"annotations":{"herald.dev/idle":"04c1fd1893d1c190"}},"spec":{"replicas":0}}`), uint8(1), uint8(0), uint8(0))
	f.Add([]byte(`{"metadata":{"labels":{"herald.dev/canary":"x"},"annotations":null},"spec":null}`), []byte(nil), uint8(0), uint8(1), uint8(0))
	f.Add([]byte{}, []byte{}, uint8(0), uint8(0), uint8(0))
	f.Add([]byte("\x00garbage{"), []byte("]"), uint8(1), uint8(0), uint8(0))

	f.Fuzz(func(t *testing.T, obj, old []byte, op, kind, user uint8) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID:       "fuzz",
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: [...]string{"Deployment", "DaemonSet", "StatefulSet"}[kind%3]},
			Namespace: ns,
			Name:      "podinfo",
			Operation: fuzzOps[int(op)%len(fuzzOps)],
			UserInfo:  authenticationv1.UserInfo{Username: [...]string{"alice", controllerUser}[user%2]},
		}}
		req.Object.Raw, req.OldObject.Raw = obj, old
		out := checkMutating(t, obj, h.Handle(context.Background(), req))
		if string(out) == string(obj) {
			return
		}
		admissiontest.SameExceptHerald(t, obj, out, true)
		// The result of a patch is a fixed point: sending it again changes nothing.
		req.Object.Raw = out
		if again := h.Handle(context.Background(), req); len(again.Patches) != 0 {
			t.Fatalf("not idempotent: %s gave %s", out, mustJSON(t, again.Patches))
		}
	})
}

func FuzzScaleHandler(f *testing.F) {
	h := NewScaleHandler(scaleFixture(f), testOpts)
	req := scaleRequest(f, "podinfo", 5, 0, "alice")
	f.Add(req.Object.Raw, req.OldObject.Raw, "podinfo", uint8(0))
	f.Add([]byte(`{"spec":{"replicas":3}}`), []byte(nil), "busy", uint8(1))
	f.Add([]byte{}, []byte{}, "", uint8(0))
	f.Add([]byte("garbage"), []byte("{"), "unmanaged", uint8(0))
	f.Fuzz(func(t *testing.T, obj, old []byte, name string, user uint8) {
		r := scaleRequest(t, name, 0, 0, [...]string{"alice", controllerUser}[user%2])
		r.Object.Raw, r.OldObject.Raw = obj, old
		resp := h.Handle(context.Background(), r)
		if len(resp.Patches) != 0 || resp.PatchType != nil {
			t.Fatal("validating handler returned a patch")
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatal("denied without a message")
		}
	})
}
