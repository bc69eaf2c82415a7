package router

import (
	"context"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/herald-rollouts/herald/test/cluster"
)

// TestAgainstIstioCRDs writes every golden case through the router to a real kube-apiserver
// that serves Istio's own CRDs, so their schemas and validation rules judge the objects: each
// must be accepted, come back unchanged (nothing pruned), read back as the split that was set,
// and a second Reconcile must write nothing. It needs the local control plane binaries
// (KUBEBUILDER_ASSETS, which `make test` sets).
func TestAgainstIstioCRDs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no API server")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (make test sets it): the Istio CRD check needs etcd and kube-apiserver")
	}
	ctx := context.Background()
	crds, err := cluster.IstioCRDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{CRDs: crds}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	scheme := testScheme(t)
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	r := &Istio{Client: cl}

	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.canary(t)
			c.Namespace = tc.name
			if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}); err != nil {
				t.Fatal(err)
			}
			c.Status.CanaryWeight = tc.split.Canary
			if err := r.Reconcile(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := r.SetRoutes(ctx, c, tc.split.Primary, tc.split.Canary, tc.split.Mirrored); err != nil {
				t.Fatal(err)
			}
			p, w, m, err := r.GetRoutes(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if (Split{Primary: p, Canary: w, Mirrored: m}) != tc.split {
				t.Errorf("GetRoutes = %d/%d mirrored %v, want %+v", p, w, m, tc.split)
			}

			want, err := VirtualService(c, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			got := &istionet.VirtualService{}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got.Spec, &want.Spec) {
				t.Errorf("the API server changed the VirtualService:\n%v\nwant\n%v", &got.Spec, &want.Spec)
			}
			primary, _, err := DestinationRules(c)
			if err != nil {
				t.Fatal(err)
			}
			gotDR := &istionet.DestinationRule{}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(primary), gotDR); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&gotDR.Spec, &primary.Spec) {
				t.Errorf("the API server changed the DestinationRule:\n%v\nwant\n%v", &gotDR.Spec, &primary.Spec)
			}

			if err := r.Reconcile(ctx, c); err != nil {
				t.Fatal(err)
			}
			again := &istionet.VirtualService{}
			if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: want.Name}, again); err != nil {
				t.Fatal(err)
			}
			if again.ResourceVersion != got.ResourceVersion {
				t.Errorf("an idle Reconcile rewrote the VirtualService (resourceVersion %s -> %s)", got.ResourceVersion, again.ResourceVersion)
			}
		})
	}
}
