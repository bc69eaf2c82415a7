package canary

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/metrics"
)

// stuckRouter reports a split and fails to write another.
type stuckRouter struct {
	primary, canary int
	err             error
	wrote           int
}

func (r *stuckRouter) Reconcile(context.Context, *flaggerv1.Canary) error { return nil }
func (r *stuckRouter) SetRoutes(context.Context, *flaggerv1.Canary, int, int, bool) error {
	r.wrote++
	return r.err
}
func (r *stuckRouter) GetRoutes(context.Context, *flaggerv1.Canary) (int, int, bool, error) {
	return r.primary, r.canary, false, nil
}

// A run stalls with 30% on a canary whose target is gone: the guard routes everything to the
// serving primary. When that write fails, a conflict or otherwise, the stall stays what the
// pass reports (a Canary's Stalled condition must not come and go); the guard tries again on
// the next pass.
func TestAStalledRunKeepsItsStallWhenItsRoutingFails(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	primary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "podinfo-primary"},
		Status: appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"conflict", apierrors.NewConflict(schema.GroupResource{Group: "networking.istio.io", Resource: "virtualservices"}, "podinfo", errors.New("changed"))},
		{"other failure", errors.New("connection refused")},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "podinfo"},
				Spec: flaggerv1.CanarySpec{
					TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
					Analysis:  &flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50},
				}}
			c.Status.Phase, c.Status.CanaryWeight = flaggerv1.CanaryPhaseProgressing, 30
			rt := &stuckRouter{primary: 70, canary: 30, err: tc.err}
			p := &pass{r: &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(primary.DeepCopy()).Build(), Metrics: &metrics.Recorder{}},
				c: c, router: rt, provider: flaggerv1.ProviderIstio}
			_, err := p.run(context.Background())
			if rt.wrote != 1 {
				t.Fatalf("the guard wrote the routes %d times, want 1", rt.wrote)
			}
			var stall *terminalError
			if !errors.As(err, &stall) || stall.reason != "TargetNotFound" || apierrors.IsConflict(err) {
				t.Fatalf("the pass ended with %v; want the stall TargetNotFound alone", err)
			}
		})
	}
}
