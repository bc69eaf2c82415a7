package router

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/adopt"
	"github.com/herald-rollouts/herald/internal/contract"
)

// For returns the router of a provider: Kubernetes for "kubernetes", Istio (writing through cl)
// for "istio", GatewayAPI for "gatewayapi" and "gatewayapi:v1" (HTTPRoutes of
// gateway.networking.k8s.io/v1) and "gatewayapi:v1beta1" (the same through v1beta1). The
// caller resolves an empty spec.provider to its default first. Any other provider gets a
// router whose every call fails with an error naming it, so a Canary that slipped past
// admission stalls with a clear message instead of a nil router.
func For(provider string, cl client.Client) Router {
	switch provider {
	case flaggerv1.ProviderKubernetes:
		return Kubernetes{}
	case flaggerv1.ProviderIstio:
		return &Istio{Client: cl}
	case flaggerv1.ProviderGatewayAPI, flaggerv1.ProviderGatewayAPIV1:
		return &GatewayAPI{Client: cl}
	case flaggerv1.ProviderGatewayAPIV1Beta1:
		return &GatewayAPI{Client: cl, V1Beta1: true}
	default:
		return unsupported{provider: provider}
	}
}

type unsupported struct{ provider string }

func (u unsupported) err() error {
	return fmt.Errorf("provider %q is not supported: Herald routes traffic with %s", u.provider, strings.Join(flaggerv1.SupportedProviders, ", "))
}

func (u unsupported) Reconcile(context.Context, *flaggerv1.Canary) error { return u.err() }

func (u unsupported) SetRoutes(context.Context, *flaggerv1.Canary, int, int, bool) error {
	return u.err()
}

func (u unsupported) GetRoutes(context.Context, *flaggerv1.Canary) (int, int, bool, error) {
	return 0, 0, false, u.err()
}

// AddToScheme registers Istio's networking.istio.io/v1 types (VirtualService,
// DestinationRule, ...) and the Gateway API's (HTTPRoute and GRPCRoute of
// gateway.networking.k8s.io/v1, HTTPRoute of v1beta1) in s: the routers' clients need them.
func AddToScheme(s *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{istionet.AddToScheme, gatewayv1.Install, gatewayv1beta1.Install} {
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}

// ErrInvalidRoute marks the errors of a routing object that cannot be built from the Canary
// (the Canary webhook refuses such Canaries; this catches those that bypassed it).
var ErrInvalidRoute = errors.New("the Canary's routing cannot be built")

// IsConfigError reports whether err is a problem only a change to the Canary or the cluster
// can fix: a routing object that cannot be built, that the API server refuses as invalid or
// that its gateway refuses, or a provider whose kinds the cluster does not serve.
func IsConfigError(err error) bool {
	return IsNotInstalled(err) || errors.Is(err, ErrInvalidRoute) || errors.Is(err, ErrRouteRefused) || apierrors.IsInvalid(err)
}

// IsNotInstalled reports whether err says that the cluster does not serve a router's kinds
// (Istio's or the Gateway API's CRDs are not installed).
func IsNotInstalled(err error) bool {
	return meta.IsNoMatchError(err)
}

// notInstalled rewrites a "no match for kind" error into one that says what to do.
func notInstalled(gvk schema.GroupVersionKind, err error) error {
	if !IsNotInstalled(err) {
		return err
	}
	if isGatewayAPIGroup(gvk) {
		return fmt.Errorf("%s %s is not served by this cluster: install the Gateway API CRDs (standard channel) or use another provider: %w",
			gvk.GroupVersion(), gvk.Kind, err)
	}
	return fmt.Errorf("%s %s is not served by this cluster: install Istio's CRDs or use provider kubernetes: %w",
		gvk.GroupVersion(), gvk.Kind, err)
}

// ValidateIstio returns every problem that keeps the istio provider from building c's routing
// objects (durations, enums, one-of fields, regular expressions, features that need HTTP), with
// the paths of the Canary fields that cause them. The Canary webhook can call it to refuse
// such a Canary at admission instead of failing later in the controller.
func ValidateIstio(c *flaggerv1.Canary) field.ErrorList {
	var cv converter
	cv.trafficPolicy(servicePath.Child("trafficPolicy"), c.Spec.Service.TrafficPolicy)
	errs := cv.errs
	split := StatusSplit(c)
	if a := c.GetAnalysis(); a != nil && a.Mirror && isTCP(c) {
		split.Mirrored = true
	}
	_, vsErrs := virtualService(c, split)
	return dedupe(append(errs, vsErrs...))
}

// Istio is the router of the istio provider. It owns, in the Canary's namespace:
//
//   - DestinationRules <apex>-primary and <apex>-canary (host: the Service of the same name,
//     trafficPolicy: spec.service.trafficPolicy);
//   - VirtualService <apex>, with hosts spec.service.hosts plus the apex (unless present or
//     "*"), gateways spec.service.gateways or [mesh] (both empty for a delegate), the labels
//     and annotations of spec.service.apex, and one weighted HTTP route (or TCP route when
//     appProtocol is tcp) to <apex>-primary and <apex>-canary with spec.service's match,
//     rewrite, timeout, retries, corsPolicy and headers. A/B testing, mirroring and session
//     affinity shape the routes as described in VirtualService, httpRoutes and session.go.
//
// Every object Herald creates gets the Canary as controller owner; one a user made before is
// adopted and put back as it was when the Canary goes (Release). Each gets Flux's reconcile and
// drift-detection opt-out annotations. An object that another controller owns is left alone,
// with an error.
type Istio struct {
	Client client.Client
}

var _ Router = (*Istio)(nil)

func logger(ctx context.Context, c *flaggerv1.Canary) logr.Logger {
	return log.FromContext(ctx).WithValues("canary", c.Name, "namespace", c.Namespace)
}

// Reconcile creates or updates the DestinationRules and the VirtualService. The split in
// place (weights and mirroring) is kept: it is read from the VirtualService, or from
// c.status when the VirtualService is missing or has no readable split. Anything else that
// differs from the Canary, such as a direct edit, is overwritten.
func (r *Istio) Reconcile(ctx context.Context, c *flaggerv1.Canary) error {
	primary, canary, err := DestinationRules(c)
	if err != nil {
		return err
	}
	for _, dr := range []*istionet.DestinationRule{primary, canary} {
		if err := r.applyDestinationRule(ctx, c, dr); err != nil {
			return err
		}
	}
	return r.applyVirtualService(ctx, c)
}

// claim takes obj for c. An object Herald creates (new) gets c as its controller owner and
// goes with the Canary. An object a user made before (no controller owner) is adopted instead:
// Herald records what it was (package adopt) and puts it back when the Canary goes, and
// garbage collection never deletes it. An object another controller manages is left alone,
// with an error. claim reports whether it changed obj.
func (r *Istio) claim(c *flaggerv1.Canary, obj client.Object, gvk schema.GroupVersionKind, new bool, spec proto.Message) (bool, error) {
	return claim(r.Client.Scheme(), c, obj, gvk, new, spec)
}

// claim is Istio.claim for any kind: spec is the part of obj's spec Herald changes, recorded
// when obj is adopted.
func claim(scheme *runtime.Scheme, c *flaggerv1.Canary, obj client.Object, gvk schema.GroupVersionKind, new bool, spec any) (bool, error) {
	if owner := metav1.GetControllerOf(obj); owner != nil {
		if owner.UID == c.UID && owner.Kind == flaggerv1.CanaryKind {
			return false, nil
		}
		return false, fmt.Errorf("%s %s/%s is controlled by %s %s (uid %s), not by canary %s: Herald does not take over objects "+
			"another controller manages; delete it, or remove that controller owner reference",
			gvk.Kind, obj.GetNamespace(), obj.GetName(), owner.Kind, owner.Name, owner.UID, c.Name)
	}
	if new {
		if err := controllerutil.SetControllerReference(c, obj, scheme); err != nil {
			return false, fmt.Errorf("setting canary %s as owner of %s %s/%s: %w", c.Name, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		return true, nil
	}
	if by, adopted := adopt.Adopted(obj); adopted {
		if by != c.Name {
			return false, fmt.Errorf("%s %s/%s is already taken over by canary %s", gvk.Kind, obj.GetNamespace(), obj.GetName(), by)
		}
		return false, nil
	}
	if err := adopt.Record(obj, c.Name, spec); err != nil {
		return false, err
	}
	logger(context.Background(), c).Info("Adopting a "+gvk.Kind+" made before the Canary; it is put back as it was when the Canary goes", "name", obj.GetName())
	return true, nil
}

// mergeMetadata adds want's labels and annotations to obj and reports whether anything
// changed. Keys that others set are kept.
func mergeMetadata(obj metav1.Object, wantLabels, wantAnnotations map[string]string) bool {
	changed := false
	merge := func(have map[string]string, want map[string]string, set func(map[string]string)) {
		for k, v := range want {
			if cur, ok := have[k]; ok && cur == v {
				continue
			}
			if have == nil {
				have = map[string]string{}
			}
			have[k] = v
			changed = true
		}
		set(have)
	}
	merge(obj.GetLabels(), wantLabels, obj.SetLabels)
	merge(obj.GetAnnotations(), wantAnnotations, obj.SetAnnotations)
	return changed
}

// converge brings the object in the cluster (have, with spec haveSpec) to want: c as its
// controller owner, want's labels and annotations, want's spec. It reports whether have
// changed and must be written.
func (r *Istio) converge(c *flaggerv1.Canary, have, want client.Object, gvk schema.GroupVersionKind, haveSpec, wantSpec proto.Message) (bool, error) {
	claimed, err := r.claim(c, have, gvk, false, haveSpec)
	if err != nil {
		return false, err
	}
	changed := mergeMetadata(have, want.GetLabels(), want.GetAnnotations())
	if !proto.Equal(haveSpec, wantSpec) {
		proto.Reset(haveSpec)
		proto.Merge(haveSpec, wantSpec)
		changed = true
	}
	return claimed || changed, nil
}

// kind describes one kind of routing object for apply.
type kind struct {
	gvk schema.GroupVersionKind
	// empty returns a new, empty object of the kind.
	empty func() client.Object
	// spec returns the spec of an object of the kind.
	spec func(client.Object) proto.Message
}

var (
	destinationRuleKind = kind{
		gvk:   destinationRuleGVK,
		empty: func() client.Object { return &istionet.DestinationRule{} },
		spec:  func(o client.Object) proto.Message { return &o.(*istionet.DestinationRule).Spec },
	}
	virtualServiceKind = kind{
		gvk:   virtualServiceGVK,
		empty: func() client.Object { return &istionet.VirtualService{} },
		spec:  func(o client.Object) proto.Message { return &o.(*istionet.VirtualService).Spec },
	}
)

// apply creates the object name of kind k from build, or converges the existing one onto
// what build returns for it (build gets nil when there is none).
func (r *Istio) apply(ctx context.Context, c *flaggerv1.Canary, k kind, name string,
	build func(existing client.Object) (client.Object, error)) error {
	key := client.ObjectKey{Namespace: c.Namespace, Name: name}
	var action string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		action = ""
		have := k.empty() // fresh on every attempt: decoding into a used object merges maps
		err := r.Client.Get(ctx, key, have)
		if apierrors.IsNotFound(err) {
			want, err := build(nil)
			if err != nil {
				return err
			}
			if _, err := r.claim(c, want, k.gvk, true, nil); err != nil {
				return err
			}
			action = "created"
			return r.Client.Create(ctx, want)
		}
		if err != nil {
			return err
		}
		want, err := build(have)
		if err != nil {
			return err
		}
		changed, err := r.converge(c, have, want, k.gvk, k.spec(have), k.spec(want))
		if err != nil || !changed {
			return err
		}
		action = "updated"
		return r.Client.Update(ctx, have)
	})
	if err != nil {
		return fmt.Errorf("reconciling %s %s for canary %s: %w", k.gvk.Kind, key, c.Name, notInstalled(k.gvk, err))
	}
	if action != "" {
		logger(ctx, c).Info(k.gvk.Kind+" "+action, "name", name)
	}
	return nil
}

func (r *Istio) applyDestinationRule(ctx context.Context, c *flaggerv1.Canary, want *istionet.DestinationRule) error {
	return r.apply(ctx, c, destinationRuleKind, want.Name, func(client.Object) (client.Object, error) {
		return want.DeepCopy(), nil
	})
}

func (r *Istio) applyVirtualService(ctx context.Context, c *flaggerv1.Canary) error {
	apex, _, _ := c.GetServiceNames()
	return r.apply(ctx, c, virtualServiceKind, apex, func(existing client.Object) (client.Object, error) {
		split := StatusSplit(c)
		if existing != nil {
			s, err := readSplit(existing.(*istionet.VirtualService), c)
			if err == nil {
				split = s
			} else {
				logger(ctx, c).Info("VirtualService has no readable split; routing the weights of the Canary status",
					"name", apex, "reason", err.Error(), "primaryWeight", split.Primary, "canaryWeight", split.Canary)
			}
		}
		return VirtualService(c, split)
	})
}

// Release puts back the VirtualServices and DestinationRules of namespace that canary adopted,
// as they were before Herald took them over. The caller calls it once the Canary is gone and
// the objects the routes named no longer need to serve.
func (r *Istio) Release(ctx context.Context, namespace, canary string, keep func(name string) bool) error {
	for _, k := range []kind{virtualServiceKind, destinationRuleKind} {
		var objs []client.Object
		sel := client.MatchingLabels{contract.LabelAdoptedBy: canary}
		if k.gvk == virtualServiceGVK {
			var list istionet.VirtualServiceList
			if err := r.Client.List(ctx, &list, client.InNamespace(namespace), sel); err != nil {
				return fmt.Errorf("listing adopted %ss: %w", k.gvk.Kind, notInstalled(k.gvk, err))
			}
			for _, o := range list.Items {
				objs = append(objs, o)
			}
		} else {
			var list istionet.DestinationRuleList
			if err := r.Client.List(ctx, &list, client.InNamespace(namespace), sel); err != nil {
				return fmt.Errorf("listing adopted %ss: %w", k.gvk.Kind, notInstalled(k.gvk, err))
			}
			for _, o := range list.Items {
				objs = append(objs, o)
			}
		}
		for _, obj := range objs {
			if keep != nil && keep(obj.GetName()) {
				continue
			}
			spec := k.spec(obj)
			proto.Reset(spec)
			if _, err := adopt.Restore(obj, spec); err != nil {
				return err
			}
			if err := r.Client.Update(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("putting %s %s/%s back: %w", k.gvk.Kind, namespace, obj.GetName(), err)
			}
			log.FromContext(ctx).Info(k.gvk.Kind+" put back as it was before the Canary", "name", obj.GetName(), "canary", canary, "namespace", namespace)
		}
	}
	return nil
}

// SetRoutes routes primaryWeight and canaryWeight percent and turns mirroring on or off: it
// rewrites the routes of the VirtualService (which Reconcile must have created) from the
// Canary. With session affinity it first creates or retires the cookies in c.status; the
// caller writes the status.
func (r *Istio) SetRoutes(ctx context.Context, c *flaggerv1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	split := Split{Primary: primaryWeight, Canary: canaryWeight, Mirrored: mirrored}
	if err := split.validate(); err != nil {
		return fmt.Errorf("routing canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	updateSessionCookies(c, canaryWeight)
	want, err := VirtualService(c, split)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(want)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		have := &istionet.VirtualService{}
		if err := r.Client.Get(ctx, key, have); err != nil {
			return err
		}
		if proto.Equal(&have.Spec, &want.Spec) {
			return nil
		}
		want.Spec.DeepCopyInto(&have.Spec)
		return r.Client.Update(ctx, have)
	})
	if err != nil {
		return fmt.Errorf("routing canary %s/%s through VirtualService %s: %w", c.Namespace, c.Name, key.Name, describeGetError(err))
	}
	logger(ctx, c).V(1).Info("routes set", "primaryWeight", primaryWeight, "canaryWeight", canaryWeight, "mirrored", mirrored)
	return nil
}

// GetRoutes reads the split of the VirtualService: the weights of the route that holds the
// canary (the session-affinity routes aside), and whether that route mirrors to the canary.
func (r *Istio) GetRoutes(ctx context.Context, c *flaggerv1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error) {
	apex, _, _ := c.GetServiceNames()
	vs := &istionet.VirtualService{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: apex}, vs); err != nil {
		return 0, 0, false, fmt.Errorf("reading the routes of canary %s/%s from VirtualService %s: %w", c.Namespace, c.Name, apex, describeGetError(err))
	}
	s, err := readSplit(vs, c)
	if err != nil {
		return 0, 0, false, fmt.Errorf("reading the routes of canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	return s.Primary, s.Canary, s.Mirrored, nil
}

// describeGetError explains the two expected failures of reading the VirtualService.
func describeGetError(err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the VirtualService does not exist (the router's Reconcile creates it): %w", err)
	}
	return notInstalled(virtualServiceGVK, err)
}

// sameHost reports whether a destination host names the Service name in namespace ns: by short
// name, name.namespace, or a fully qualified name.
func sameHost(host, name, ns string) bool {
	if host == name {
		return true
	}
	qualified := name + "." + ns
	return host == qualified || strings.HasPrefix(host, qualified+".svc")
}

var errNoSplit = errors.New("no route to the canary")

// readSplit finds the split in vs: the first HTTP route (or, with none, TCP route) that has
// the canary among its destinations, leaving out the session-affinity routes, which pin
// users and do not carry the split. A route with a single destination sends it everything,
// whatever its weight says, as Istio does.
func readSplit(vs *istionet.VirtualService, c *flaggerv1.Canary) (Split, error) {
	_, primaryName, canaryName := c.GetServiceNames()
	ns := c.Namespace
	type dest struct {
		host   string
		weight int32
	}
	read := func(dests []dest) (Split, bool) {
		var s Split
		found := false
		for _, d := range dests {
			w := int(d.weight)
			if len(dests) == 1 && w == 0 {
				w = 100
			}
			switch {
			case sameHost(d.host, canaryName, ns):
				s.Canary, found = w, true
			case sameHost(d.host, primaryName, ns):
				s.Primary = w
			}
		}
		return s, found
	}
	for _, route := range vs.Spec.Http {
		switch route.Name {
		case stickyCanaryRoute, stickyPrimaryRoute, expireCookieRoute:
			continue
		}
		dests := make([]dest, 0, len(route.Route))
		for _, d := range route.Route {
			if d.Destination != nil {
				dests = append(dests, dest{d.Destination.Host, d.Weight})
			}
		}
		if s, ok := read(dests); ok {
			s.Mirrored = route.Mirror != nil && sameHost(route.Mirror.Host, canaryName, ns)
			return checkSplit(vs, s)
		}
	}
	for _, route := range vs.Spec.Tcp {
		dests := make([]dest, 0, len(route.Route))
		for _, d := range route.Route {
			if d.Destination != nil {
				dests = append(dests, dest{d.Destination.Host, d.Weight})
			}
		}
		if s, ok := read(dests); ok {
			return checkSplit(vs, s)
		}
	}
	return Split{}, fmt.Errorf("VirtualService %s/%s: %w %s", vs.Namespace, vs.Name, errNoSplit, canaryName)
}

func checkSplit(vs *istionet.VirtualService, s Split) (Split, error) {
	if s.Primary == 0 && s.Canary == 0 {
		return Split{}, fmt.Errorf("VirtualService %s/%s routes nothing to the primary or the canary: both weights are 0", vs.Namespace, vs.Name)
	}
	return s, nil
}
