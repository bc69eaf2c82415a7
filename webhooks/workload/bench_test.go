package workload

import (
	"context"
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
)

// BenchmarkWorkloadHandler: the podinfo Deployment with two config references, read from a
// fake cache (controller-runtime's fake client, which deep-copies through a scheme: slower
// than an informer cache, so the figures are an upper bound).
func BenchmarkWorkloadHandler(b *testing.B) {
	b.Run("fake-client", func(b *testing.B) { benchWorkload(b, reader("a", "b")) })
	b.Run("informer-like", func(b *testing.B) {
		benchWorkload(b, memReader{
			"ConfigMap/test/podinfo-config": {Annotations: map[string]string{contract.AnnotationChecksum: "a"}},
			"Secret/test/podinfo-token":     {Annotations: map[string]string{contract.AnnotationChecksum: "b"}},
		})
	})
}

// memReader serves PartialObjectMetadata from a map with a deep copy per Get, as an informer
// cache does: the figures with it are what the webhook costs in a cluster.
type memReader map[string]metav1.ObjectMeta

func (m memReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	p, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("unsupported %T", obj)
	}
	om, ok := m[p.Kind+"/"+key.Namespace+"/"+key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: p.Kind}, key.Name)
	}
	om.DeepCopyInto(&p.ObjectMeta)
	p.Name, p.Namespace = key.Name, key.Namespace
	return nil
}

func (m memReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("not implemented")
}

func benchWorkload(b *testing.B, r client.Reader) {
	h := NewHandler(r, testOpts)
	d := podinfo()
	create := request(b, admissionv1.Create, d, nil, "alice")

	resp := h.Handle(context.Background(), create)
	rev := ""
	for _, p := range resp.Patches {
		if s, ok := p.Value.(string); ok {
			rev = s
		}
	}
	live := podinfo()
	live.Annotations[contract.AnnotationRevision] = rev
	unchanged := request(b, admissionv1.Update, live, live, "alice")

	idleDep := live.DeepCopy()
	idleDep.Annotations[contract.AnnotationIdle] = rev
	idleDep.Spec.Replicas = ptr.To[int32](0)
	held := request(b, admissionv1.Update, live, idleDep, "alice")

	unmanaged := podinfo()
	delete(unmanaged.Labels, contract.LabelCanary)
	skip := request(b, admissionv1.Update, unmanaged, unmanaged, "alice")

	for _, c := range []struct {
		name string
		req  admission.Request
	}{{"create-patch", create}, {"update-unchanged", unchanged}, {"update-idle-hold", held}, {"unmanaged", skip}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.Handle(context.Background(), c.req); !resp.Allowed {
					b.Fatal("denied")
				}
			}
		})
	}
}

func BenchmarkScaleHandler(b *testing.B) {
	h := NewScaleHandler(scaleFixture(b), testOpts)
	req := scaleRequest(b, "podinfo", 5, 0, "alice")
	b.ReportAllocs()
	for b.Loop() {
		h.Handle(context.Background(), req)
	}
}

// BenchmarkRevisionOf is the baseline: contract.Of alone on the same template, which the
// handler must call and which dominates its cost.
func BenchmarkRevisionOf(b *testing.B) {
	tmpl := &podinfo().Spec.Template
	configs := map[string]string{"configmap/podinfo-config": "a", "secret/podinfo-token": "b"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contract.Revision(tmpl, configs); err != nil {
			b.Fatal(err)
		}
	}
}
