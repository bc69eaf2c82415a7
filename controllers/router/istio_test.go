package router

import (
	"maps"

	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/herald-rollouts/herald/internal/contract"

	istio "istio.io/api/networking/v1alpha3"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := flaggerv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newIstio(t testing.TB, objs ...client.Object) (*Istio, client.Client) {
	t.Helper()
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
	return &Istio{Client: cl}, cl
}

func getVS(t *testing.T, cl client.Client, c *flaggerv1.Canary) *istionet.VirtualService {
	t.Helper()
	apex, _, _ := c.GetServiceNames()
	vs := &istionet.VirtualService{}
	if err := cl.Get(context.Background(), types.NamespacedName{Namespace: c.Namespace, Name: apex}, vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func assertRoutes(t *testing.T, r Router, c *flaggerv1.Canary, wantPrimary, wantCanary int, wantMirrored bool) {
	t.Helper()
	p, w, m, err := r.GetRoutes(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if p != wantPrimary || w != wantCanary || m != wantMirrored {
		t.Errorf("GetRoutes = %d/%d mirrored %v, want %d/%d mirrored %v", p, w, m, wantPrimary, wantCanary, wantMirrored)
	}
}

func TestReconcileCreatesOwnedObjects(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")
	r, cl := newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	objs := map[string]client.Object{
		"podinfo-primary": &istionet.DestinationRule{},
		"podinfo-canary":  &istionet.DestinationRule{},
		"podinfo":         &istionet.VirtualService{},
	}
	for name, obj := range objs {
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: name}, obj); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		owner := metav1.GetControllerOf(obj)
		if owner == nil || owner.Kind != "Canary" || owner.Name != "podinfo" || owner.UID != c.UID {
			t.Errorf("%s: controller owner %v, want the Canary", name, owner)
		}
		if obj.GetAnnotations()[workloads.FluxKustomizeReconcileAnnotation] != workloads.FluxDisabled {
			t.Errorf("%s: Flux opt-out missing: %v", name, obj.GetAnnotations())
		}
	}
	dr := objs["podinfo-canary"].(*istionet.DestinationRule)
	if dr.Spec.Host != "podinfo-canary" || dr.Spec.TrafficPolicy.GetTls() == nil {
		t.Errorf("canary DestinationRule spec %v", &dr.Spec)
	}
	assertRoutes(t, r, c, 100, 0, false)

	// A second pass with nothing changed writes nothing.
	before := getVS(t, cl, c).ResourceVersion
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if after := getVS(t, cl, c).ResourceVersion; after != before {
		t.Errorf("an idle Reconcile updated the VirtualService (%s -> %s)", before, after)
	}
}

func TestSetRoutesGetRoutesRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		c    func(t *testing.T) *flaggerv1.Canary
	}{
		{"canary", func(t *testing.T) *flaggerv1.Canary { return corpusCanary(t, "029") }},
		{"ab-testing", func(t *testing.T) *flaggerv1.Canary { return corpusCanary(t, "028") }},
		{"session-affinity", func(t *testing.T) *flaggerv1.Canary { return corpusCanary(t, "030") }},
		{"delegation", func(t *testing.T) *flaggerv1.Canary { return corpusCanary(t, "011") }},
		{"tcp", func(t *testing.T) *flaggerv1.Canary {
			c := corpusCanary(t, "044")
			c.Spec.Service.AppProtocol = "tcp"
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c(t)
			r, _ := newIstio(t, c)
			if err := r.Reconcile(ctx, c); err != nil {
				t.Fatal(err)
			}
			for _, s := range []Split{{Primary: 90, Canary: 10}, {Primary: 0, Canary: 100}, {Primary: 55, Canary: 45}, {Primary: 100}} {
				if err := r.SetRoutes(ctx, c, s.Primary, s.Canary, false); err != nil {
					t.Fatal(err)
				}
				assertRoutes(t, r, c, s.Primary, s.Canary, false)
			}
		})
	}
}

func TestMirroringRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "044")
	c.Spec.Analysis.Iterations, c.Spec.Analysis.Mirror, c.Spec.Analysis.MirrorWeight = 5, true, 25
	r, cl := newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, c, 100, 0, true); err != nil {
		t.Fatal(err)
	}
	assertRoutes(t, r, c, 100, 0, true)
	route := getVS(t, cl, c).Spec.Http[0]
	if route.Mirror.GetHost() != "podinfo-canary" || route.MirrorPercentage.GetValue() != 25 {
		t.Errorf("mirror %v percentage %v", route.Mirror, route.MirrorPercentage)
	}
	// Reconcile keeps the mirror in place.
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	assertRoutes(t, r, c, 100, 0, true)
	if err := r.SetRoutes(ctx, c, 0, 100, false); err != nil {
		t.Fatal(err)
	}
	assertRoutes(t, r, c, 0, 100, false)
}

// TestDirectEditOverwrittenWeightsKept: someone edits the VirtualService by hand in mid-run;
// Reconcile restores the Canary's routing but keeps the split the analysis reached.
func TestDirectEditOverwrittenWeightsKept(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")
	r, cl := newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, c, 60, 40, false); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, cl, c)
	vs.Spec.Hosts = []string{"evil.example.com"}
	vs.Spec.Http[0].Timeout = nil
	vs.Spec.Http[0].Retries = nil
	vs.Spec.Http[0].Fault = &istio.HTTPFaultInjection{Abort: &istio.HTTPFaultInjection_Abort{
		ErrorType: &istio.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 503},
	}}
	vs.Spec.Http = append(vs.Spec.Http, &istio.HTTPRoute{Route: []*istio.HTTPRouteDestination{{Destination: &istio.Destination{Host: "elsewhere"}}}})
	vs.Annotations["example.com/note"] = "kept"
	if err := cl.Update(ctx, vs); err != nil {
		t.Fatal(err)
	}

	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	got := getVS(t, cl, c)
	want, err := VirtualService(c, Split{Primary: 60, Canary: 40})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got.Spec, &want.Spec) {
		t.Errorf("spec after Reconcile\n%v\nwant\n%v", &got.Spec, &want.Spec)
	}
	assertRoutes(t, r, c, 60, 40, false)
	if got.Annotations["example.com/note"] != "kept" {
		t.Errorf("an annotation set by someone else was removed: %v", got.Annotations)
	}
}

// TestReconcileFollowsSpecChanges: a changed Canary (trafficPolicy, gateways, apex labels)
// reaches the objects without moving the split.
func TestReconcileFollowsSpecChanges(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")
	r, cl := newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, c, 80, 20, false); err != nil {
		t.Fatal(err)
	}
	c.Spec.Service.TrafficPolicy.TLS.Mode = "ISTIO_MUTUAL"
	c.Spec.Service.Gateways = []string{"istio-system/other-gateway"}
	c.Spec.Service.Apex = &flaggerv1.CustomMetadata{Labels: map[string]string{"tier": "web"}}
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	dr := &istionet.DestinationRule{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: "test", Name: "podinfo-primary"}, dr); err != nil {
		t.Fatal(err)
	}
	if dr.Spec.TrafficPolicy.GetTls().GetMode() != istio.ClientTLSSettings_ISTIO_MUTUAL {
		t.Errorf("trafficPolicy not updated: %v", dr.Spec.TrafficPolicy)
	}
	vs := getVS(t, cl, c)
	if !equalStrings(vs.Spec.Gateways, []string{"istio-system/other-gateway"}) || vs.Labels["tier"] != "web" {
		t.Errorf("gateways %v labels %v", vs.Spec.Gateways, vs.Labels)
	}
	assertRoutes(t, r, c, 80, 20, false)
}

func TestSessionAffinityThroughTheRouter(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "030")
	r, cl := newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(ctx, c, 90, 10, false); err != nil {
		t.Fatal(err)
	}
	cookie := c.Status.SessionAffinityCookie
	name, value, ok := parseCookie(cookie)
	if !ok || name != "flagger-cookie" || len(value) < 16 {
		t.Fatalf("status cookie %q", cookie)
	}
	vs := getVS(t, cl, c)
	if names := routeNames(vs); !equalStrings(names, []string{stickyCanaryRoute, ""}) {
		t.Fatalf("routes %v", names)
	}
	if !strings.Contains(vs.Spec.Http[0].Match[0].Headers["cookie"].GetRegex(), value) {
		t.Errorf("sticky route does not match the cookie: %v", vs.Spec.Http[0].Match)
	}
	// The sticky route sends everything to the canary; the split is read from the weighted one.
	assertRoutes(t, r, c, 90, 10, false)

	// The controller writes the status; a Reconcile in between keeps the sticky route.
	c.Status.CanaryWeight = 10
	rv := vs.ResourceVersion
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := getVS(t, cl, c).ResourceVersion; got != rv {
		t.Errorf("Reconcile rewrote a VirtualService in the middle of a session-affinity run")
	}

	if err := r.SetRoutes(ctx, c, 50, 50, false); err != nil {
		t.Fatal(err)
	}
	if c.Status.SessionAffinityCookie != cookie {
		t.Errorf("the cookie changed during the run: %q -> %q", cookie, c.Status.SessionAffinityCookie)
	}
	if err := r.SetRoutes(ctx, c, 100, 0, false); err != nil {
		t.Fatal(err)
	}
	if c.Status.SessionAffinityCookie != "" || c.Status.PreviousSessionAffinityCookie != cookie {
		t.Errorf("status after the run: %+v", c.Status)
	}
	vs = getVS(t, cl, c)
	if names := routeNames(vs); !equalStrings(names, []string{expireCookieRoute, ""}) {
		t.Fatalf("routes after the run %v", names)
	}
	if got := vs.Spec.Http[0].Headers.GetResponse().GetAdd()["Set-Cookie"]; got != cookie+"; Max-Age=-1" {
		t.Errorf("expiring cookie %q", got)
	}
	assertRoutes(t, r, c, 100, 0, false)
}

func TestGetRoutesErrors(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")
	r, cl := newIstio(t, c)
	if _, _, _, err := r.GetRoutes(ctx, c); err == nil || !strings.Contains(err.Error(), "VirtualService does not exist") {
		t.Errorf("missing VirtualService: %v", err)
	}
	if err := r.SetRoutes(ctx, c, 90, 10, false); err == nil || !strings.Contains(err.Error(), "VirtualService does not exist") {
		t.Errorf("SetRoutes before Reconcile: %v", err)
	}
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, cl, c)
	vs.Spec.Http[0].Route[0].Weight = 0
	if err := cl.Update(ctx, vs); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.GetRoutes(ctx, c); err == nil || !strings.Contains(err.Error(), "both weights are 0") {
		t.Errorf("both weights 0: %v", err)
	}
	vs = getVS(t, cl, c)
	vs.Spec.Http = []*istio.HTTPRoute{{Route: []*istio.HTTPRouteDestination{{Destination: &istio.Destination{Host: "podinfo-primary"}}}}}
	if err := cl.Update(ctx, vs); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.GetRoutes(ctx, c); err == nil || !strings.Contains(err.Error(), "no route to the canary") {
		t.Errorf("no canary route: %v", err)
	}
	// Reconcile repairs it from the status.
	c.Status.CanaryWeight = 30
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	assertRoutes(t, r, c, 70, 30, false)

	if err := r.SetRoutes(ctx, c, 90, 20, false); err == nil || !strings.Contains(err.Error(), "add up to 100") {
		t.Errorf("bad weights: %v", err)
	}
}

func TestReadSplitAcceptsQualifiedHosts(t *testing.T) {
	c := corpusCanary(t, "029")
	vs := &istionet.VirtualService{Spec: istio.VirtualService{Http: []*istio.HTTPRoute{{
		Route: []*istio.HTTPRouteDestination{
			{Destination: &istio.Destination{Host: "podinfo-primary.test.svc.cluster.local"}, Weight: 75},
			{Destination: &istio.Destination{Host: "podinfo-canary.test"}, Weight: 25},
		},
		Mirror: &istio.Destination{Host: "podinfo-canary.test.svc"},
	}}}}
	s, err := readSplit(vs, c)
	if err != nil || s != (Split{Primary: 75, Canary: 25, Mirrored: true}) {
		t.Errorf("readSplit = %+v, %v", s, err)
	}
	// A lone destination gets everything, whatever its weight says.
	vs.Spec.Http[0].Route = vs.Spec.Http[0].Route[1:]
	vs.Spec.Http[0].Route[0].Weight = 0
	if s, err := readSplit(vs, c); err != nil || s.Canary != 100 {
		t.Errorf("lone canary: %+v, %v", s, err)
	}
}

func TestTakeOverAndOwnership(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")

	// A VirtualService the user created by hand, with no controller, is adopted: routed by
	// Herald but never owned (garbage collection must not delete it with the Canary), and put
	// back as it was by Release.
	userVS := &istionet.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", Annotations: map[string]string{"owner": "me"}},
		Spec:       istio.VirtualService{Hosts: []string{"podinfo"}, Gateways: []string{"public"}},
	}
	r, cl := newIstio(t, c, userVS)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, cl, c)
	if owner := metav1.GetControllerOf(vs); owner != nil {
		t.Errorf("a user's VirtualService got a controller owner: %v", owner)
	}
	if vs.Labels[contract.LabelAdoptedBy] != c.Name || vs.Annotations[contract.AnnotationOriginal] == "" {
		t.Errorf("adoption not recorded: labels %v", vs.Labels)
	}
	assertRoutes(t, r, c, 100, 0, false)
	if err := r.SetRoutes(ctx, c, 50, 50, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Reconcile(ctx, c); err != nil { // a second pass keeps the first record
		t.Fatal(err)
	}
	if err := r.Release(ctx, "test", c.Name, nil); err != nil {
		t.Fatal(err)
	}
	vs = getVS(t, cl, c)
	if !proto.Equal(&vs.Spec, &userVS.Spec) || !maps.Equal(vs.Annotations, userVS.Annotations) || len(vs.Labels) != 0 {
		t.Errorf("not put back as it was: spec %v labels %v annotations %v", &vs.Spec, vs.Labels, vs.Annotations)
	}
	// A VirtualService Herald made is the Canary's own.
	r, cl = newIstio(t, c)
	if err := r.Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if owner := metav1.GetControllerOf(getVS(t, cl, c)); owner == nil || owner.UID != c.UID {
		t.Errorf("Herald's own VirtualService: owner %v", owner)
	}

	// One that another controller manages is not.
	other := &istionet.DestinationRule{ObjectMeta: metav1.ObjectMeta{
		Name: "podinfo-canary", Namespace: "test",
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "helm.toolkit.fluxcd.io/v2", Kind: "HelmRelease", Name: "shop", UID: "hr-uid", Controller: ptr.To(true),
		}},
	}}
	r, _ = newIstio(t, c, other)
	err := r.Reconcile(ctx, c)
	if err == nil {
		t.Fatal("took over an object another controller owns")
	}
	for _, w := range []string{"DestinationRule test/podinfo-canary", "HelmRelease shop", "not by canary podinfo"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestNotInstalled(t *testing.T) {
	ctx := context.Background()
	c := corpusCanary(t, "029")
	// What the API server's REST mapper answers for a kind whose CRD is absent.
	noMatch := func(obj client.Object) error {
		switch obj.(type) {
		case *istionet.VirtualService, *istionet.DestinationRule:
			return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "networking.istio.io", Kind: "VirtualService"}, SearchedVersions: []string{"v1"}}
		}
		return nil
	}
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := noMatch(obj); err != nil {
				return err
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	}).Build()
	r := &Istio{Client: cl}
	check := func(what string, err error) {
		t.Helper()
		if !IsNotInstalled(err) {
			t.Errorf("%s: IsNotInstalled(%v) = false", what, err)
		}
		if err == nil || !strings.Contains(err.Error(), "is not served by this cluster: install Istio's CRDs or use provider kubernetes") {
			t.Errorf("%s: %v", what, err)
		}
	}
	check("Reconcile", r.Reconcile(ctx, c))
	check("SetRoutes", r.SetRoutes(ctx, c, 90, 10, false))
	_, _, _, err := r.GetRoutes(ctx, c)
	check("GetRoutes", err)
	if IsNotInstalled(errors.New("boom")) {
		t.Error("IsNotInstalled of an unrelated error")
	}
}

func TestFor(t *testing.T) {
	_, cl := newIstio(t)
	if _, ok := For("kubernetes", cl).(Kubernetes); !ok {
		t.Error("kubernetes")
	}
	if r, ok := For("istio", cl).(*Istio); !ok || r.Client != cl {
		t.Error("istio")
	}
	err := For("linkerd", cl).Reconcile(context.Background(), corpusCanary(t, "029"))
	if err == nil || !strings.Contains(err.Error(), `provider "linkerd" is not supported`) {
		t.Errorf("unsupported provider: %v", err)
	}
}
