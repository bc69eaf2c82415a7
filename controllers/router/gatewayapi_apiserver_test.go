package router

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/cluster"
)

// gatewayAPIServer starts a real kube-apiserver serving the Gateway API's standard CRDs (the
// version in go.mod), so that their schemas and CEL rules judge what the router writes.
func gatewayAPIServer(t *testing.T) client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no API server")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (make test sets it): the Gateway API CRD check needs etcd and kube-apiserver")
	}
	crds, err := cluster.GatewayAPICRDs(context.Background())
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
	return cl
}

func createNamespace(t *testing.T, cl client.Client, name string) {
	t.Helper()
	if err := cl.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// TestAgainstGatewayAPICRDs writes every golden case to a real kube-apiserver serving the
// Gateway API's CRDs: the golden file itself must be accepted and read back with nothing
// pruned or defaulted, and the router must write the same route, read back the split it set,
// and write nothing on an idle Reconcile. A v1beta1 router writes the same route through the
// older API version.
func TestAgainstGatewayAPICRDs(t *testing.T) {
	cl := gatewayAPIServer(t)
	ctx := context.Background()
	for _, tc := range gwGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := "golden-" + tc.name
			createNamespace(t, cl, ns)

			// The golden file, as a user would apply it.
			raw, err := os.ReadFile(gwGoldenPath(tc.name))
			if err != nil {
				t.Fatal(err)
			}
			file := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(raw, &file.Object); err != nil {
				t.Fatal(err)
			}
			delete(file.Object, "status")
			file.SetNamespace(ns)
			file.SetName("from-file")
			if err := cl.Create(ctx, file); err != nil {
				t.Fatalf("the API server refused the golden route: %v", err)
			}
			back := &unstructured.Unstructured{}
			back.SetGroupVersionKind(file.GroupVersionKind())
			if err := cl.Get(ctx, client.ObjectKeyFromObject(file), back); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(back.Object["spec"], file.Object["spec"]) {
				got, _ := yaml.Marshal(back.Object["spec"])
				want, _ := yaml.Marshal(file.Object["spec"])
				t.Errorf("the API server changed the golden route:\n%s", lineDiff(string(want), string(got)))
			}

			// The same route through the router.
			c := tc.canary(t)
			c.Namespace = ns
			c.Status.CanaryWeight = tc.split.Canary
			routers := []*GatewayAPI{{Client: cl}}
			if !IsGRPC(c) {
				routers = append(routers, &GatewayAPI{Client: cl, V1Beta1: true})
			}
			for _, r := range routers {
				if r.V1Beta1 {
					// A fresh route: the v1 one is deleted first.
					apex, _, _ := c.GetServiceNames()
					if err := cl.Delete(ctx, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: apex}}); err != nil {
						t.Fatal(err)
					}
				}
				checkRouter(t, cl, r, c, tc.split)
			}
		})
	}
}

func checkRouter(t *testing.T, cl client.Client, r *GatewayAPI, c *flaggerv1.Canary, split Split) {
	t.Helper()
	ctx := context.Background()
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, c, split.Primary, split.Canary, split.Mirrored); err != nil {
		t.Fatal(err)
	}
	p, w, m, err := r.GetRoutes(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if (Split{Primary: p, Canary: w, Mirrored: m}) != split {
		t.Errorf("GetRoutes = %d/%d mirrored %v, want %+v", p, w, m, split)
	}
	k, _ := r.kinds(c)
	want, err := k.build(c, split)
	if err != nil {
		t.Fatal(err)
	}
	got := k.empty()
	if err := cl.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(k.spec(got), k.spec(want)) {
		g, _ := yaml.Marshal(k.spec(got))
		w, _ := yaml.Marshal(k.spec(want))
		t.Errorf("the API server changed the %s:\n%s", k.gvk, lineDiff(string(w), string(g)))
	}
	if !metav1.IsControlledBy(got, c) {
		t.Errorf("the route is not controlled by the Canary: %v", got.GetOwnerReferences())
	}
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	again := k.empty()
	if err := cl.Get(ctx, client.ObjectKeyFromObject(want), again); err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != got.GetResourceVersion() {
		t.Errorf("an idle Reconcile rewrote the %s (resourceVersion %s -> %s)", k.gvk, got.GetResourceVersion(), again.GetResourceVersion())
	}
}

// TestGatewayAPIOwnership: a direct edit is put back by the next Reconcile, with the split in
// place kept; a user's route is adopted and given back unchanged when the Canary goes; a
// route another controller owns is left alone; a Canary that turns to gRPC leaves no
// HTTPRoute behind.
func TestGatewayAPIOwnership(t *testing.T) {
	cl := gatewayAPIServer(t)
	ctx := context.Background()
	createNamespace(t, cl, "test")
	r := &GatewayAPI{Client: cl}
	get := func(name string) *gatewayv1.HTTPRoute {
		t.Helper()
		rt := &gatewayv1.HTTPRoute{}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: name}, rt); err != nil {
			t.Fatal(err)
		}
		return rt
	}

	t.Run("direct edit", func(t *testing.T) {
		c := gwCorpusCanary(t, "018")
		c.Name, c.Spec.TargetRef.Name, c.UID = "edited", "edited", "uid-edited"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := r.SetRoutes(ctx, c, 80, 20, false); err != nil {
			t.Fatal(err)
		}
		rt := get("edited")
		rt.Spec.Hostnames = []gatewayv1.Hostname{"evil.example.com"}
		rt.Spec.Rules[0].Filters = append(rt.Spec.Rules[0].Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
			RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "x", Value: "y"}}}})
		if err := cl.Update(ctx, rt); err != nil {
			t.Fatal(err)
		}
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		want, _ := HTTPRoute(c, Split{Primary: 80, Canary: 20})
		if got := get("edited"); !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
			t.Errorf("the edit was not put back (the 80/20 split kept): %+v", got.Spec)
		}
	})

	t.Run("adopted and restored", func(t *testing.T) {
		mine := &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo", Labels: map[string]string{"app": "podinfo"},
				Annotations: map[string]string{"example.com/note": "mine"}},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway"}}},
				Hostnames:       []gatewayv1.Hostname{"old.example.com"},
				Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "podinfo", Port: ptr.To[gatewayv1.PortNumber](9898)}}}}}},
			},
		}
		if err := cl.Create(ctx, mine); err != nil {
			t.Fatal(err)
		}
		before := get("podinfo")
		c := gwCorpusCanary(t, "018")
		c.UID = "uid-podinfo"
		c.Spec.Service.Apex = &flaggerv1.CustomMetadata{Labels: map[string]string{"team": "shop"}}
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		adopted := get("podinfo")
		// Adopted, not owned: garbage collection must never delete a user's route.
		if len(adopted.OwnerReferences) != 0 || adopted.Labels[contract.LabelAdoptedBy] != c.Name || adopted.Annotations[contract.AnnotationOriginal] == "" {
			t.Fatalf("not adopted: owners %v, labels %v, annotations %v", adopted.OwnerReferences, adopted.Labels, adopted.Annotations)
		}
		if adopted.Labels["team"] != "shop" || adopted.Annotations["example.com/note"] != "mine" {
			t.Errorf("metadata while adopted: %v %v", adopted.Labels, adopted.Annotations)
		}
		want, _ := HTTPRoute(c, Split{Primary: 100})
		if !equality.Semantic.DeepEqual(adopted.Spec, want.Spec) {
			t.Errorf("the adopted route does not route the Canary: %+v", adopted.Spec)
		}
		if _, w, _, err := r.GetRoutes(ctx, c); err != nil || w != 0 {
			t.Errorf("adopted route split: canary %d, %v", w, err)
		}
		// A second pass records nothing new: the record stays the user's route.
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got := get("podinfo"); got.ResourceVersion != adopted.ResourceVersion {
			t.Errorf("an idle Reconcile rewrote the adopted route")
		}
		// Another Canary cannot take it.
		other := c.DeepCopy()
		other.Name, other.UID = "other", "uid-other-canary"
		if err := r.Reconcile(ctx, other); err == nil || !strings.Contains(err.Error(), "already taken over by canary podinfo") {
			t.Errorf("a second Canary took the adopted route: %v", err)
		}

		if err := r.Release(ctx, "test", c.Name, nil); err != nil {
			t.Fatal(err)
		}
		after := get("podinfo")
		if !equality.Semantic.DeepEqual(after.Spec, before.Spec) {
			t.Errorf("spec not restored:\n%+v\nwant\n%+v", after.Spec, before.Spec)
		}
		if !equality.Semantic.DeepEqual(after.Annotations, before.Annotations) || !equality.Semantic.DeepEqual(after.Labels, before.Labels) {
			t.Errorf("metadata not restored: labels %v annotations %v", after.Labels, after.Annotations)
		}
	})

	t.Run("another controller's route", func(t *testing.T) {
		theirs := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "taken",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "App", Name: "x", UID: "uid-other", Controller: ptr.To(true)}}},
			Spec: gatewayv1.HTTPRouteSpec{Hostnames: []gatewayv1.Hostname{"theirs.example.com"}}}
		if err := cl.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		c := gwCorpusCanary(t, "018")
		c.Name, c.Spec.TargetRef.Name, c.UID = "taken", "taken", "uid-taken"
		err := r.Reconcile(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "controlled by App x") {
			t.Fatalf("want a refusal naming the owner, got %v", err)
		}
		if err := r.Release(ctx, "test", c.Name, nil); err != nil {
			t.Fatal(err)
		}
		if got := get("taken"); len(got.Spec.Hostnames) != 1 || got.Spec.Hostnames[0] != "theirs.example.com" {
			t.Errorf("their route was changed: %+v", got.Spec)
		}
	})

	t.Run("HTTP to gRPC", func(t *testing.T) {
		c := gwCorpusCanary(t, "018")
		c.Name, c.Spec.TargetRef.Name, c.UID = "switch", "switch", "uid-switch"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.Spec.Service.AppProtocol = "grpc"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "switch"}, &gatewayv1.HTTPRoute{}); !apierrors.IsNotFound(err) {
			t.Errorf("the HTTPRoute is still there: %v", err)
		}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "switch"}, &gatewayv1.GRPCRoute{}); err != nil {
			t.Errorf("no GRPCRoute: %v", err)
		}
		c.Spec.Service.AppProtocol = ""
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "switch"}, &gatewayv1.GRPCRoute{}); !apierrors.IsNotFound(err) {
			t.Errorf("the GRPCRoute is still there after the switch back: %v", err)
		}
	})

	t.Run("an adopted HTTPRoute is put back, not deleted, when the service turns to gRPC", func(t *testing.T) {
		mine := &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "grpc-later"},
			Spec:       gatewayv1.HTTPRouteSpec{Hostnames: []gatewayv1.Hostname{"mine.example.com"}},
		}
		if err := cl.Create(ctx, mine); err != nil {
			t.Fatal(err)
		}
		c := gwCorpusCanary(t, "018")
		c.Name, c.Spec.TargetRef.Name, c.UID = "grpc-later", "grpc-later", "uid-grpc-later"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.Spec.Service.AppProtocol = "grpc"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		got := get("grpc-later")
		if len(got.Spec.Hostnames) != 1 || got.Spec.Hostnames[0] != "mine.example.com" || got.Labels[contract.LabelAdoptedBy] != "" {
			t.Errorf("the adopted HTTPRoute was not put back: %+v %v", got.Spec, got.Labels)
		}
	})

	t.Run("v1beta1 reads what v1 wrote", func(t *testing.T) {
		c := gwCorpusCanary(t, "018")
		c.Name, c.Spec.TargetRef.Name, c.UID = "versions", "versions", "uid-versions"
		if err := r.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := r.SetRoutes(ctx, c, 40, 60, false); err != nil {
			t.Fatal(err)
		}
		old := &GatewayAPI{Client: cl, V1Beta1: true}
		if p, w, _, err := old.GetRoutes(ctx, c); err != nil || p != 40 || w != 60 {
			t.Errorf("v1beta1 read %d/%d %v", p, w, err)
		}
		var rt gatewayv1beta1.HTTPRoute
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "versions"}, &rt); err != nil {
			t.Fatal(err)
		}
		before := rt.ResourceVersion
		if err := old.Reconcile(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "versions"}, &rt); err != nil {
			t.Fatal(err)
		}
		if rt.ResourceVersion != before {
			t.Errorf("the v1beta1 router rewrote a route the v1 router wrote")
		}
	})
}

// TestGatewayAPIRefusesUnacceptedRoute: a parent's Accepted=False status for the current
// generation, written as a Gateway controller would, stops GetRoutes and Reconcile with its
// reason.
func TestGatewayAPIRefusesUnacceptedRoute(t *testing.T) {
	cl := gatewayAPIServer(t)
	ctx := context.Background()
	createNamespace(t, cl, "test")
	r := &GatewayAPI{Client: cl}
	c := gwCorpusCanary(t, "018")
	c.UID = "uid"
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	rt := &gatewayv1.HTTPRoute{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "podinfo"}, rt); err != nil {
		t.Fatal(err)
	}
	rt.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: rt.Spec.ParentRefs[0], ControllerName: "example.com/gateway",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionFalse, Reason: "NotAllowedByListeners",
			Message: "hostname does not match", ObservedGeneration: rt.Generation, LastTransitionTime: metav1.Now()}}}}
	if err := cl.Status().Update(ctx, rt); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := r.GetRoutes(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "NotAllowedByListeners") || !strings.Contains(err.Error(), "istio-ingress/gateway") {
		t.Errorf("want the refusal with its reason and parent, got %v", err)
	}
	// Reconcile reports it too, as a configuration problem (the controller stalls the Canary
	// with this message instead of analysing traffic that does not flow).
	if err := r.Reconcile(ctx, c); !IsConfigError(err) || !strings.Contains(err.Error(), "hostname does not match") {
		t.Errorf("Reconcile of a refused route: %v", err)
	}
	raw, _ := json.Marshal(rt.Status)
	t.Logf("status written: %s", raw)
}
