package workload

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
)

func revisionOf(t *testing.T, h *Handler, d *appsv1.Deployment) string {
	t.Helper()
	resp, out := mutated(t, h, request(t, admissionv1.Create, d, nil, "alice"))
	rev := out.Annotations[contract.AnnotationRevision]
	if rev == "" {
		t.Fatalf("no revision written: %+v %s", resp.Result, mustJSON(t, resp.Patches))
	}
	return rev
}

func TestRevision(t *testing.T) {
	h := NewHandler(reader("cm1", "s1"), testOpts)
	base := revisionOf(t, h, podinfo())

	want, err := contract.Revision(&podinfo().Spec.Template, map[string]string{"configmap/podinfo-config": "cm1", "secret/podinfo-token": "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if base != want {
		t.Fatalf("revision %q, want contract.Of = %q", base, want)
	}
	if again := revisionOf(t, h, podinfo()); again != base {
		t.Fatalf("same spec twice: %q != %q", again, base)
	}

	changes := map[string]func(*appsv1.Deployment){
		"image": func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
		},
		"env": func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Env[0].Value = "#ff0000" },
		"volume": func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "tmp",
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		},
		"pod annotation": func(d *appsv1.Deployment) { d.Spec.Template.Annotations["restartedAt"] = "now" },
	}
	for name, change := range changes {
		d := podinfo()
		change(d)
		if got := revisionOf(t, h, d); got == base {
			t.Errorf("%s: revision unchanged", name)
		}
	}

	same := map[string]func(*appsv1.Deployment){
		"herald template label":      func(d *appsv1.Deployment) { d.Spec.Template.Labels[contract.LabelCanary] = "x" },
		"herald template annotation": func(d *appsv1.Deployment) { d.Spec.Template.Annotations[contract.AnnotationRevision] = "x" },
		"herald metadata annotation": func(d *appsv1.Deployment) { d.Annotations[contract.AnnotationIdle] = "x" },
		"old revision annotation":    func(d *appsv1.Deployment) { d.Annotations[contract.AnnotationRevision] = "0123456789abcdef" },
		"replicas":                   func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](7) },
		"workload label":             func(d *appsv1.Deployment) { d.Labels["team"] = "a" },
	}
	for name, change := range same {
		d := podinfo()
		change(d)
		if got := revisionOf(t, h, d); got != base {
			t.Errorf("%s: revision changed %q -> %q", name, base, got)
		}
	}

	// A config's checksum is part of the revision.
	if got := revisionOf(t, NewHandler(reader("cm2", "s1"), testOpts), podinfo()); got == base {
		t.Error("configmap checksum change: revision unchanged")
	}
	if got := revisionOf(t, NewHandler(reader("cm1", "s2"), testOpts), podinfo()); got == base {
		t.Error("secret checksum change: revision unchanged")
	}
	// Config tracking off: configs do not count.
	off := NewHandler(reader("cm2", "s2"), Options{DisableConfigTracking: true})
	noConfigs, _ := contract.Revision(&podinfo().Spec.Template, nil)
	if got := revisionOf(t, off, podinfo()); got != noConfigs {
		t.Errorf("tracking disabled: %q, want %q", got, noConfigs)
	}
}

func TestRevisionConfigs(t *testing.T) {
	tmpl := &podinfo().Spec.Template
	of := func(configs map[string]string) string {
		r, err := contract.Revision(tmpl, configs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	disabled := func(sum string) map[string]string {
		return map[string]string{contract.AnnotationChecksum: sum, contract.FlaggerConfigTracking: "disabled"}
	}
	cases := []struct {
		name   string
		cm, s  map[string]string // annotations; nil = object absent
		optCM  bool
		expect map[string]string
	}{
		{"both", map[string]string{contract.AnnotationChecksum: "a"}, map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"configmap/podinfo-config": "a", "secret/podinfo-token": "b"}},
		{"disabled configmap", disabled("a"), map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"secret/podinfo-token": "b"}},
		{"disabled configmap, other checksum", disabled("zzz"), map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"secret/podinfo-token": "b"}},
		{"disable-prefixed value", map[string]string{contract.FlaggerConfigTracking: "disable"}, map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"secret/podinfo-token": "b"}},
		{"no checksum yet", map[string]string{}, map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"configmap/podinfo-config": "missing", "secret/podinfo-token": "b"}},
		// Not in the cache of tracked configs: missing, or never tracked by the controller
		// (a Secret of an untracked type, a config that opted out before it was labelled).
		// The controller leaves such configs out of the revision too.
		{"missing", nil, map[string]string{contract.AnnotationChecksum: "b"}, false,
			map[string]string{"secret/podinfo-token": "b"}},
		{"missing optional", nil, map[string]string{contract.AnnotationChecksum: "b"}, true,
			map[string]string{"secret/podinfo-token": "b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var objs []client.Object
			if c.cm != nil {
				objs = append(objs, configMap("podinfo-config", c.cm))
			}
			if c.s != nil {
				objs = append(objs, secret("podinfo-token", c.s))
			}
			d := podinfo()
			if c.optCM {
				d.Spec.Template.Spec.Volumes[0].ConfigMap.Optional = ptr.To(true)
				tmpl = &d.Spec.Template
			} else {
				tmpl = &podinfo().Spec.Template
			}
			h := NewHandler(fakeReader(objs...), testOpts)
			if got, want := revisionOf(t, h, d), of(c.expect); got != want {
				t.Fatalf("revision %q, want %q (configs %v)", got, want, c.expect)
			}
		})
	}
}

func TestNotHandled(t *testing.T) {
	h := NewHandler(reader("a", "b"), testOpts)
	unmanaged := podinfo()
	delete(unmanaged.Labels, contract.LabelCanary)
	deployment := request(t, admissionv1.Create, podinfo(), nil, "alice")

	cases := map[string]func() admission.Request{
		"unmanaged": func() admission.Request { return request(t, admissionv1.Create, unmanaged, nil, "alice") },
		"delete":    func() admission.Request { r := deployment; r.Operation = admissionv1.Delete; return r },
		"connect":   func() admission.Request { r := deployment; r.Operation = admissionv1.Connect; return r },
		"other kind": func() admission.Request {
			r := deployment
			r.Kind.Kind = "ReplicaSet"
			return r
		},
		"other group": func() admission.Request { r := deployment; r.Kind.Group = "extensions"; return r },
		"malformed":   func() admission.Request { r := deployment; r.Object.Raw = []byte(`{"metadata":`); return r },
		"not object":  func() admission.Request { r := deployment; r.Object.Raw = []byte(`[1,2]`); return r },
		"null":        func() admission.Request { r := deployment; r.Object.Raw = []byte(`null`); return r },
		"empty":       func() admission.Request { r := deployment; r.Object.Raw = nil; return r },
		"wrong type": func() admission.Request {
			r := deployment
			r.Object.Raw = []byte(`{"metadata":{"labels":{"herald.dev/canary":"p"}},"spec":{"replicas":"two"}}`)
			return r
		},
		"duplicate keys": func() admission.Request {
			r := deployment
			r.Object.Raw = []byte(`{"metadata":{"labels":{"herald.dev/canary":"p"}},"metadata":{}}`)
			return r
		},
		"annotations not an object": func() admission.Request {
			r := deployment
			r.Object.Raw = []byte(`{"metadata":{"labels":{"herald.dev/canary":"p"},"annotations":[]}}`)
			return r
		},
		"case-insensitive metadata": func() admission.Request {
			r := deployment
			r.Object.Raw = []byte(`{"Metadata":{"labels":{"herald.dev/canary":"p"}}}`)
			return r
		},
	}
	for name, mk := range cases {
		resp := h.Handle(context.Background(), mk())
		if !resp.Allowed || len(resp.Patches) != 0 || resp.PatchType != nil {
			t.Errorf("%s: want allowed without patch, got allowed=%v patches=%s", name, resp.Allowed, mustJSON(t, resp.Patches))
		}
	}
}

func TestDaemonSet(t *testing.T) {
	h := NewHandler(reader("a", "b"), testOpts)
	ds := daemonset()
	ds.Annotations[contract.AnnotationIdle] = "whatever"
	req := request(t, admissionv1.Update, ds, ds, "alice")
	req.Resource.Resource = "daemonsets"
	resp, out := mutated(t, h, req)
	want, _ := contract.Revision(&ds.Spec.Template, map[string]string{"configmap/podinfo-config": "a", "secret/podinfo-token": "b"})
	if out.Annotations[contract.AnnotationRevision] != want {
		t.Fatalf("revision %q, want %q", out.Annotations[contract.AnnotationRevision], want)
	}
	for _, p := range resp.Patches {
		if !strings.HasPrefix(p.Path, "/metadata/annotations") {
			t.Errorf("unexpected patch operation %s %s", p.Operation, p.Path)
		}
	}
}

// idle returns podinfo idle at its current revision (as the controller leaves it) under h.
func idle(t *testing.T, h *Handler) (*appsv1.Deployment, string) {
	t.Helper()
	d := podinfo()
	rev := revisionOf(t, h, d)
	d.Annotations[contract.AnnotationRevision] = rev
	d.Annotations[contract.AnnotationIdle] = rev
	d.Spec.Replicas = ptr.To[int32](0)
	return d, rev
}

func TestTransparentReplicas(t *testing.T) {
	h := NewHandler(reader("a", "b"), testOpts)
	old, rev := idle(t, h)

	withReplicas := func(n int32) *appsv1.Deployment {
		d := old.DeepCopy()
		d.Spec.Replicas = ptr.To(n)
		return d
	}

	t.Run("user replicas held", func(t *testing.T) {
		resp, out := mutated(t, h, request(t, admissionv1.Update, withReplicas(2), old, "alice"))
		if got := *out.Spec.Replicas; got != 0 {
			t.Fatalf("replicas %d, want 0 (%s)", got, mustJSON(t, resp.Patches))
		}
		if got := out.Annotations[contract.AnnotationDesiredReplicas]; got != "2" {
			t.Fatalf("desired-replicas %q, want 2", got)
		}
		if out.Annotations[contract.AnnotationIdle] != rev || out.Annotations[contract.AnnotationRevision] != rev {
			t.Fatalf("annotations %v", out.Annotations)
		}
		// Re-sending the result (a second identical apply) changes nothing.
		again := request(t, admissionv1.Update, out, out, "alice")
		if resp := h.Handle(context.Background(), again); !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("second apply patched: %s", mustJSON(t, resp.Patches))
		}
		// The live object is the result; the client sends replicas 2 again.
		resp2, out2 := mutated(t, h, request(t, admissionv1.Update, withReplicasFrom(out, 2), out, "alice"))
		if !reflect.DeepEqual(out2, out) {
			t.Fatalf("re-apply of replicas 2 gave a different object:\n%s\n%s (%s)", mustJSON(t, out2), mustJSON(t, out), mustJSON(t, resp2.Patches))
		}
	})

	t.Run("desired replicas updated", func(t *testing.T) {
		live := withReplicas(0)
		live.Annotations[contract.AnnotationDesiredReplicas] = "2"
		_, out := mutated(t, h, request(t, admissionv1.Update, withReplicasFrom(live, 5), live, "alice"))
		if *out.Spec.Replicas != 0 || out.Annotations[contract.AnnotationDesiredReplicas] != "5" {
			t.Fatalf("replicas %d desired %q", *out.Spec.Replicas, out.Annotations[contract.AnnotationDesiredReplicas])
		}
	})

	t.Run("replicas 0 keeps desired replicas", func(t *testing.T) {
		live := withReplicas(0)
		live.Annotations[contract.AnnotationDesiredReplicas] = "3"
		resp := h.Handle(context.Background(), request(t, admissionv1.Update, live, live, "alice"))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("patched: %s", mustJSON(t, resp.Patches))
		}
	})

	t.Run("server-side apply without herald annotations", func(t *testing.T) {
		// A field manager that came to own Herald's annotations and no longer sets them:
		// the API server removes them from the merged object; the webhook puts them back.
		d := withReplicas(2)
		delete(d.Annotations, contract.AnnotationRevision)
		delete(d.Annotations, contract.AnnotationIdle)
		delete(d.Annotations, contract.AnnotationDesiredReplicas)
		_, out := mutated(t, h, request(t, admissionv1.Update, d, old, "flux"))
		if *out.Spec.Replicas != 0 || out.Annotations[contract.AnnotationDesiredReplicas] != "2" ||
			out.Annotations[contract.AnnotationIdle] != rev || out.Annotations[contract.AnnotationRevision] != rev {
			t.Fatalf("replicas %d annotations %v", *out.Spec.Replicas, out.Annotations)
		}
	})

	t.Run("no annotations at all", func(t *testing.T) {
		d := withReplicas(2)
		d.Annotations = nil
		_, out := mutated(t, h, request(t, admissionv1.Update, d, old, "alice"))
		if *out.Spec.Replicas != 0 || out.Annotations[contract.AnnotationDesiredReplicas] != "2" || out.Annotations[contract.AnnotationIdle] != rev {
			t.Fatalf("replicas %d annotations %v", *out.Spec.Replicas, out.Annotations)
		}
	})

	passes := map[string]func() admission.Request{
		"controller user": func() admission.Request { return request(t, admissionv1.Update, withReplicas(2), old, controllerUser) },
		"controller group": func() admission.Request {
			r := request(t, admissionv1.Update, withReplicas(2), old, "someone")
			r.UserInfo.Groups = []string{"system:authenticated", controllerGrp}
			return r
		},
		"new template": func() admission.Request {
			d := withReplicas(2)
			d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
			return request(t, admissionv1.Update, d, old, "alice")
		},
		"not idle (replicas)": func() admission.Request {
			o := old.DeepCopy()
			o.Spec.Replicas = ptr.To[int32](1)
			return request(t, admissionv1.Update, withReplicas(2), o, "alice")
		},
		"not idle (no annotation)": func() admission.Request {
			o := old.DeepCopy()
			delete(o.Annotations, contract.AnnotationIdle)
			return request(t, admissionv1.Update, withReplicas(2), o, "alice")
		},
		"idle at another revision": func() admission.Request {
			o := old.DeepCopy()
			o.Annotations[contract.AnnotationIdle] = "0000000000000000"
			return request(t, admissionv1.Update, withReplicas(2), o, "alice")
		},
		"create": func() admission.Request { return request(t, admissionv1.Create, withReplicas(2), nil, "alice") },
		"old undecodable": func() admission.Request {
			r := request(t, admissionv1.Update, withReplicas(2), old, "alice")
			r.OldObject.Raw = []byte("garbage")
			return r
		},
	}
	for name, mk := range passes {
		_, out := mutated(t, h, mk())
		if *out.Spec.Replicas != 2 {
			t.Errorf("%s: replicas %d, want 2 kept", name, *out.Spec.Replicas)
		}
		if _, ok := out.Annotations[contract.AnnotationDesiredReplicas]; ok {
			t.Errorf("%s: desired-replicas written", name)
		}
	}
}

func withReplicasFrom(d *appsv1.Deployment, n int32) *appsv1.Deployment {
	c := d.DeepCopy()
	c.Spec.Replicas = ptr.To(n)
	return c
}

// The same request always gives the same response, and a dry-run request the same patch.
func TestDeterministicAndDryRun(t *testing.T) {
	h := NewHandler(reader("a", "b"), testOpts)
	old, _ := idle(t, h)
	d := old.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](3)
	d.Annotations = nil // several operations in one patch
	req := request(t, admissionv1.Update, d, old, "alice")
	first := h.Handle(context.Background(), req)
	if len(first.Patches) < 2 {
		t.Fatalf("expected several patch operations, got %s", mustJSON(t, first.Patches))
	}
	for i := 0; i < 50; i++ {
		if got := h.Handle(context.Background(), req); !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d: %s != %s", i, mustJSON(t, got), mustJSON(t, first))
		}
	}
	dry := req
	dry.DryRun = ptr.To(true)
	if got := h.Handle(context.Background(), dry); !reflect.DeepEqual(got, first) {
		t.Fatalf("dry run: %s != %s", mustJSON(t, got), mustJSON(t, first))
	}
	raw1, _ := json.Marshal(first.Patches)
	raw2, _ := json.Marshal(h.Handle(context.Background(), dry).Patches)
	if string(raw1) != string(raw2) {
		t.Fatalf("patch bytes differ: %s != %s", raw1, raw2)
	}
}

// The patch leaves fields the typed API does not know, and number formats, alone.
func TestPatchTouchesOnlyHeraldFields(t *testing.T) {
	h := NewHandler(reader("a", "b"), testOpts)
	raw := mustJSON(t, podinfo())
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	generic["spec"].(map[string]any)["futureField"] = map[string]any{"x": 1.5e300, "y": []any{1, "a"}}
	req := request(t, admissionv1.Create, podinfo(), nil, "alice")
	req.Object.Raw = mustJSON(t, generic)
	resp := h.Handle(context.Background(), req)
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/metadata/annotations/herald.dev~1revision" || resp.Patches[0].Operation != "add" {
		t.Fatalf("patch %s", mustJSON(t, resp.Patches))
	}
}
