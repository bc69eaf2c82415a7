package workload

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
)

func scaleRequest(t testing.TB, name string, replicas, oldReplicas int32, user string) admission.Request {
	t.Helper()
	s := func(n int32) *autoscalingv1.Scale {
		return &autoscalingv1.Scale{
			TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       autoscalingv1.ScaleSpec{Replicas: n},
		}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:         "uid-2",
		Kind:        metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"},
		Resource:    metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		SubResource: "scale",
		Name:        name,
		Namespace:   ns,
		Operation:   admissionv1.Update,
		UserInfo:    authenticationv1.UserInfo{Username: user},
		Object:      runtimeRaw(mustJSON(t, s(replicas))),
		OldObject:   runtimeRaw(mustJSON(t, s(oldReplicas))),
	}}
}

func scaleFixture(t testing.TB) client.Reader {
	t.Helper()
	idleDep := podinfo()
	idleDep.Annotations[contract.AnnotationRevision] = "1111111111111111"
	idleDep.Annotations[contract.AnnotationIdle] = "1111111111111111"
	busy := podinfo()
	busy.Name = "busy"
	newRev := podinfo()
	newRev.Name = "newrev"
	newRev.Annotations[contract.AnnotationRevision] = "2222222222222222"
	newRev.Annotations[contract.AnnotationIdle] = "1111111111111111"
	unmanaged := podinfo()
	unmanaged.Name = "unmanaged"
	delete(unmanaged.Labels, contract.LabelCanary)
	unmanaged.Annotations[contract.AnnotationIdle] = "1111111111111111"
	idleSts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns,
		Labels:      map[string]string{contract.LabelCanary: "db"},
		Annotations: map[string]string{contract.AnnotationIdle: "3333333333333333"}}}
	return fakeReader(idleDep, busy, newRev, unmanaged, idleSts)
}

func TestScaleHandler(t *testing.T) {
	h := NewScaleHandler(scaleFixture(t), testOpts)
	ctx := context.Background()

	resp := h.Handle(ctx, scaleRequest(t, "podinfo", 5, 0, "alice"))
	if resp.Allowed {
		t.Fatal("scaling an idle managed target was allowed")
	}
	msg := resp.Result.Message
	for _, want := range []string{"deployment test/podinfo", "canary podinfo", "idle at revision 1111111111111111",
		"kubectl scale deployment/podinfo-primary --replicas 5"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}

	// An idle StatefulSet target is refused likewise, naming its own primary.
	stsReq := scaleRequest(t, "db", 2, 0, "alice")
	stsReq.Resource.Resource = "statefulsets"
	resp = h.Handle(ctx, stsReq)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "statefulset test/db is managed by Herald (canary db)") ||
		!strings.Contains(resp.Result.Message, "kubectl scale statefulset/db-primary --replicas 2 -n test") {
		t.Errorf("idle statefulset: allowed=%v %+v", resp.Allowed, resp.Result)
	}

	allowed := map[string]admission.Request{
		"controller":          scaleRequest(t, "podinfo", 5, 0, controllerUser),
		"to zero":             scaleRequest(t, "podinfo", 0, 0, "alice"),
		"not idle (replicas)": scaleRequest(t, "podinfo", 5, 2, "alice"),
		"not idle":            scaleRequest(t, "busy", 5, 0, "alice"),
		"new revision":        scaleRequest(t, "newrev", 5, 0, "alice"),
		"unmanaged":           scaleRequest(t, "unmanaged", 5, 0, "alice"),
		"not found":           scaleRequest(t, "nothere", 5, 0, "alice"),
	}
	group := scaleRequest(t, "podinfo", 5, 0, "bob")
	group.UserInfo.Groups = []string{controllerGrp}
	allowed["controller group"] = group
	sts := scaleRequest(t, "podinfo", 5, 0, "alice")
	sts.Resource.Resource = "statefulsets"
	allowed["statefulset of another name"] = sts
	rs := scaleRequest(t, "podinfo", 5, 0, "alice")
	rs.Resource.Resource = "replicasets"
	allowed["replicaset"] = rs
	notScale := scaleRequest(t, "podinfo", 5, 0, "alice")
	notScale.SubResource = "status"
	allowed["other subresource"] = notScale
	garbage := scaleRequest(t, "podinfo", 5, 0, "alice")
	garbage.Object.Raw = []byte("{")
	allowed["garbage"] = garbage
	if resp := NewScaleHandler(nil, testOpts).Handle(ctx, scaleRequest(t, "podinfo", 5, 0, "alice")); !resp.Allowed {
		t.Error("nil reader: denied")
	}
	for name, req := range allowed {
		if resp := h.Handle(ctx, req); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("%s: want allowed, got %+v", name, resp.Result)
		}
	}
}
