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
// serving primary. When that write conflicts with someone else's (whose event was dropped as
// the write's own), the pass runs again shortly instead of waiting out the stall's interval;
// any other failure leaves the stall as it is, shown on the Canary.
func TestAStalledRunWhoseRoutingConflictsRunsAgain(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	primary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "podinfo-primary"},
		Status: appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}}
	for _, tc := range []struct {
		name         string
		err          error
		wantConflict bool
	}{
		{"conflict", apierrors.NewConflict(schema.GroupResource{Group: "networking.istio.io", Resource: "virtualservices"}, "podinfo", errors.New("changed")), true},
		{"other failure", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "podinfo"},
				Spec: flaggerv1.CanarySpec{
					TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
					Analysis:  &flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50},
				}}
			c.Status.Phase, c.Status.CanaryWeight = flaggerv1.CanaryPhaseProgressing, 30
			rt := &stuckRouter{primary: 70, canary: 30, err: tc.err}
			p := &pass{r: &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(primary.DeepCopy()).Build()},
				c: c, router: rt, provider: flaggerv1.ProviderIstio}
			_, err := p.run(context.Background())
			if rt.wrote != 1 {
				t.Fatalf("the guard wrote the routes %d times, want 1", rt.wrote)
			}
			if apierrors.IsConflict(err) != tc.wantConflict || isTerminal(err) == tc.wantConflict {
				t.Fatalf("the pass ended with %v (terminal %v); want a conflict %v", err, isTerminal(err), tc.wantConflict)
			}
		})
	}
}
