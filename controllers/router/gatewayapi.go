package router

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/adopt"
	"github.com/herald-rollouts/herald/internal/contract"
)

// GatewayAPI is the router of the gatewayapi provider: it owns one route named after the
// apex Service in the Canary's namespace, an HTTPRoute or, when the service speaks gRPC
// (IsGRPC), a GRPCRoute, shaped as gatewayapi_build.go describes. It serves every
// implementation of the Gateway API's HTTPRoute (Istio, Linkerd, Cilium, Envoy Gateway,
// Contour, Kong, NGINX Gateway Fabric, Traefik, ...), as a north-south route on Gateways or an
// east-west (GAMMA) route on a Service.
//
// A route Herald creates gets the Canary as controller owner, and goes with it; direct edits
// are put back. A route that already exists without a controller (written by its user) is
// adopted (package adopt): Herald records it as it was and puts it back once the Canary is
// gone (Release). Every route gets Flux's opt-out annotations. A route that another
// controller owns is left alone, with an error.
type GatewayAPI struct {
	Client client.Client
	// V1Beta1 reads and writes HTTPRoutes as gateway.networking.k8s.io/v1beta1 (provider
	// gatewayapi:v1beta1), for implementations that serve only that version.
	V1Beta1 bool
}

var _ Router = (*GatewayAPI)(nil)

// routeKind describes one kind of route for the generic code below.
type routeKind struct {
	gvk   schema.GroupVersionKind
	empty func() client.Object
	build func(c *flaggerv1.Canary, s Split) (client.Object, error)
	// spec returns a pointer to the object's spec.
	spec func(client.Object) any
	// view returns what the split reading and acceptance check need.
	view func(client.Object) routeView
}

// routeView is the part of an HTTPRoute or GRPCRoute that carries the split.
type routeView struct {
	parents []gatewayv1.ParentReference
	status  []gatewayv1.RouteParentStatus
	rules   []ruleView
}

type ruleView struct {
	name     string
	backends []gatewayv1.BackendRef
	mirrors  []*gatewayv1.HTTPRequestMirrorFilter
}

func ruleNameOf(n *gatewayv1.SectionName) string {
	if n == nil {
		return ""
	}
	return string(*n)
}

func httpView(rt *gatewayv1.HTTPRoute) routeView {
	v := routeView{parents: rt.Spec.ParentRefs, status: rt.Status.Parents}
	for _, r := range rt.Spec.Rules {
		rv := ruleView{name: ruleNameOf(r.Name)}
		for _, b := range r.BackendRefs {
			rv.backends = append(rv.backends, b.BackendRef)
		}
		for _, f := range r.Filters {
			if f.Type == gatewayv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil {
				rv.mirrors = append(rv.mirrors, f.RequestMirror)
			}
		}
		v.rules = append(v.rules, rv)
	}
	return v
}

func grpcView(rt *gatewayv1.GRPCRoute) routeView {
	v := routeView{parents: rt.Spec.ParentRefs, status: rt.Status.Parents}
	for _, r := range rt.Spec.Rules {
		rv := ruleView{name: ruleNameOf(r.Name)}
		for _, b := range r.BackendRefs {
			rv.backends = append(rv.backends, b.BackendRef)
		}
		for _, f := range r.Filters {
			if f.Type == gatewayv1.GRPCRouteFilterRequestMirror && f.RequestMirror != nil {
				rv.mirrors = append(rv.mirrors, f.RequestMirror)
			}
		}
		v.rules = append(v.rules, rv)
	}
	return v
}

var (
	httpRouteKind = routeKind{
		gvk:   httpRouteGVK,
		empty: func() client.Object { return &gatewayv1.HTTPRoute{} },
		build: func(c *flaggerv1.Canary, s Split) (client.Object, error) { return HTTPRoute(c, s) },
		spec:  func(o client.Object) any { return &o.(*gatewayv1.HTTPRoute).Spec },
		view:  func(o client.Object) routeView { return httpView(o.(*gatewayv1.HTTPRoute)) },
	}
	// The v1beta1 HTTPRoute has the v1 type's layout: the same object through the older API.
	httpRouteV1Beta1Kind = routeKind{
		gvk:   httpRouteV1Beta1GVK,
		empty: func() client.Object { return &gatewayv1beta1.HTTPRoute{} },
		build: func(c *flaggerv1.Canary, s Split) (client.Object, error) {
			rt, err := HTTPRoute(c, s)
			if err != nil {
				return nil, err
			}
			out := (*gatewayv1beta1.HTTPRoute)(rt)
			out.TypeMeta = metav1.TypeMeta{APIVersion: httpRouteV1Beta1GVK.GroupVersion().String(), Kind: httpRouteV1Beta1GVK.Kind}
			return out, nil
		},
		spec: func(o client.Object) any { return &o.(*gatewayv1beta1.HTTPRoute).Spec },
		view: func(o client.Object) routeView {
			return httpView((*gatewayv1.HTTPRoute)(o.(*gatewayv1beta1.HTTPRoute)))
		},
	}
	grpcRouteKind = routeKind{
		gvk:   grpcRouteGVK,
		empty: func() client.Object { return &gatewayv1.GRPCRoute{} },
		build: func(c *flaggerv1.Canary, s Split) (client.Object, error) { return GRPCRoute(c, s) },
		spec:  func(o client.Object) any { return &o.(*gatewayv1.GRPCRoute).Spec },
		view:  func(o client.Object) routeView { return grpcView(o.(*gatewayv1.GRPCRoute)) },
	}
)

// kinds returns the route kind the Canary needs, and the other one (which must not be left
// behind when a Canary switches between HTTP and gRPC).
func (r *GatewayAPI) kinds(c *flaggerv1.Canary) (want, other routeKind) {
	http := httpRouteKind
	if r.V1Beta1 {
		http = httpRouteV1Beta1Kind
	}
	if IsGRPC(c) {
		return grpcRouteKind, http
	}
	return http, grpcRouteKind
}

func setSpec(k routeKind, dst, src client.Object) {
	switch d := k.spec(dst).(type) {
	case *gatewayv1.HTTPRouteSpec:
		*d = *k.spec(src).(*gatewayv1.HTTPRouteSpec)
	case *gatewayv1.GRPCRouteSpec:
		*d = *k.spec(src).(*gatewayv1.GRPCRouteSpec)
	}
}

// Reconcile creates or updates the route, keeping the split in place: it is read from the
// route, or from c.status when the route is missing or has no readable split. Anything else
// that differs from the Canary is overwritten. A route of the other kind that this Canary
// created is deleted, and one it adopted put back (a Canary that switched between HTTP and
// gRPC leaves nothing behind).
func (r *GatewayAPI) Reconcile(ctx context.Context, c *flaggerv1.Canary) error {
	want, other := r.kinds(c)
	if err := r.apply(ctx, c, want); err != nil {
		return err
	}
	return r.dropOther(ctx, c, other)
}

func (r *GatewayAPI) apply(ctx context.Context, c *flaggerv1.Canary, k routeKind) error {
	apex, _, _ := c.GetServiceNames()
	key := client.ObjectKey{Namespace: c.Namespace, Name: apex}
	var action string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		action = ""
		have := k.empty()
		err := r.Client.Get(ctx, key, have)
		if apierrors.IsNotFound(err) {
			want, err := k.build(c, StatusSplit(c))
			if err != nil {
				return err
			}
			if _, err := claim(r.Client.Scheme(), c, want, k.gvk, true, nil); err != nil {
				return err
			}
			action = "created"
			return r.Client.Create(ctx, want)
		}
		if err != nil {
			return err
		}
		split := StatusSplit(c)
		if s, err := readRouteSplit(k.view(have), c); err == nil {
			split = s
		} else {
			logger(ctx, c).Info(k.gvk.Kind+" has no readable split; routing the weights of the Canary status",
				"name", apex, "reason", err.Error(), "primaryWeight", split.Primary, "canaryWeight", split.Canary)
		}
		want, err := k.build(c, split)
		if err != nil {
			return err
		}
		claimed, err := claim(r.Client.Scheme(), c, have, k.gvk, false, k.spec(have))
		if err != nil {
			return err
		}
		changed := mergeMetadata(have, want.GetLabels(), want.GetAnnotations())
		if !equality.Semantic.DeepEqual(k.spec(have), k.spec(want)) {
			setSpec(k, have, want)
			changed = true
		}
		if !claimed && !changed {
			// Unchanged: the gateways' verdict on it is current.
			return checkAccepted(k.view(have), have, k.gvk)
		}
		action = "updated"
		return r.Client.Update(ctx, have)
	})
	if err != nil {
		return fmt.Errorf("reconciling %s %s for canary %s: %w", k.gvk.Kind, key, c.Name, notInstalled(k.gvk, err))
	}
	if action != "" {
		logger(ctx, c).Info(k.gvk.Kind+" "+action, "name", apex)
	}
	return nil
}

// dropOther removes the route of kind k that c no longer needs: deleted when c created it,
// put back when c adopted it. A route c neither created nor adopted is not touched.
func (r *GatewayAPI) dropOther(ctx context.Context, c *flaggerv1.Canary, k routeKind) error {
	apex, _, _ := c.GetServiceNames()
	key := client.ObjectKey{Namespace: c.Namespace, Name: apex}
	have := k.empty()
	if err := r.Client.Get(ctx, key, have); err != nil {
		if apierrors.IsNotFound(err) || IsNotInstalled(err) {
			return nil
		}
		return fmt.Errorf("reading %s %s: %w", k.gvk.Kind, key, err)
	}
	if by, adopted := adopt.Adopted(have); adopted && by == c.Name {
		return r.restore(ctx, k, have)
	}
	if owner := metav1.GetControllerOf(have); owner == nil || owner.UID != c.UID {
		return nil
	}
	if err := r.Client.Delete(ctx, have, client.Preconditions{UID: ptrTo(have.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s, which canary %s no longer uses: %w", k.gvk.Kind, key, c.Name, err)
	}
	logger(ctx, c).Info(k.gvk.Kind+" deleted: the service no longer needs this kind of route", "name", apex)
	return nil
}

// restore puts an adopted route back as its owner wrote it (spec, labels, annotations).
func (r *GatewayAPI) restore(ctx context.Context, k routeKind, obj client.Object) error {
	// Decoded into an empty object: decoding into the current spec would keep fields the
	// original leaves out (JSON decoding reuses the elements of existing slices).
	original := k.empty()
	if _, err := adopt.Restore(obj, k.spec(original)); err != nil {
		return err
	}
	setSpec(k, obj, original)
	if err := r.Client.Update(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("putting %s %s/%s back: %w", k.gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	log.FromContext(ctx).Info(k.gvk.Kind+" put back as it was before the Canary", "name", obj.GetName(), "namespace", obj.GetNamespace())
	return nil
}

// Release puts back the HTTPRoutes and GRPCRoutes of namespace that canary adopted, as they
// were before Herald took them over. The caller calls it once the Canary is gone and the
// Services the routes named no longer need to serve. Kinds the cluster does not serve are
// skipped; HTTPRoutes are read through v1beta1 when the cluster does not serve v1.
func (r *GatewayAPI) Release(ctx context.Context, namespace, canary string, keep func(name string) bool) error {
	sel := client.MatchingLabels{contract.LabelAdoptedBy: canary}
	in := client.InNamespace(namespace)
	var http gatewayv1.HTTPRouteList
	var objs []client.Object
	var kinds []routeKind
	err := r.Client.List(ctx, &http, in, sel)
	switch {
	case err == nil:
		for i := range http.Items {
			objs, kinds = append(objs, &http.Items[i]), append(kinds, httpRouteKind)
		}
	case IsNotInstalled(err):
		var old gatewayv1beta1.HTTPRouteList
		if err := r.Client.List(ctx, &old, in, sel); err != nil && !IsNotInstalled(err) {
			return fmt.Errorf("listing adopted HTTPRoutes: %w", err)
		}
		for i := range old.Items {
			objs, kinds = append(objs, &old.Items[i]), append(kinds, httpRouteV1Beta1Kind)
		}
	default:
		return fmt.Errorf("listing adopted HTTPRoutes: %w", err)
	}
	var grpc gatewayv1.GRPCRouteList
	if err := r.Client.List(ctx, &grpc, in, sel); err != nil && !IsNotInstalled(err) {
		return fmt.Errorf("listing adopted GRPCRoutes: %w", err)
	}
	for i := range grpc.Items {
		objs, kinds = append(objs, &grpc.Items[i]), append(kinds, grpcRouteKind)
	}
	for i, obj := range objs {
		if keep != nil && keep(obj.GetName()) {
			continue
		}
		if err := r.restore(ctx, kinds[i], obj); err != nil {
			return err
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// SetRoutes routes primaryWeight and canaryWeight percent and turns the mirroring of the
// traffic to the canary on or off, rewriting the rules of the route (which Reconcile must have
// created). With session affinity it first creates or retires the cookies in c.status; the
// caller writes the status.
func (r *GatewayAPI) SetRoutes(ctx context.Context, c *flaggerv1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	split := Split{Primary: primaryWeight, Canary: canaryWeight, Mirrored: mirrored}
	if err := split.validate(); err != nil {
		return fmt.Errorf("routing canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	updateSessionCookies(c, canaryWeight)
	k, _ := r.kinds(c)
	want, err := k.build(c, split)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(want)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		have := k.empty()
		if err := r.Client.Get(ctx, key, have); err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(k.spec(have), k.spec(want)) {
			return nil
		}
		setSpec(k, have, want)
		return r.Client.Update(ctx, have)
	})
	if err != nil {
		return fmt.Errorf("routing canary %s/%s through %s %s: %w", c.Namespace, c.Name, k.gvk.Kind, key.Name, describeRouteError(k.gvk, err))
	}
	logger(ctx, c).V(1).Info("routes set", "primaryWeight", primaryWeight, "canaryWeight", canaryWeight, "mirrored", mirrored)
	return nil
}

// GetRoutes reads the split of the route. It refuses while a parent that reports on the route
// has not accepted it, or not yet seen its last change: the weights in the spec are then not
// what the gateway routes.
func (r *GatewayAPI) GetRoutes(ctx context.Context, c *flaggerv1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error) {
	k, _ := r.kinds(c)
	apex, _, _ := c.GetServiceNames()
	obj := k.empty()
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: apex}, obj); err != nil {
		return 0, 0, false, fmt.Errorf("reading the routes of canary %s/%s from %s %s: %w", c.Namespace, c.Name, k.gvk.Kind, apex, describeRouteError(k.gvk, err))
	}
	v := k.view(obj)
	if err := checkAccepted(v, obj, k.gvk); err != nil {
		return 0, 0, false, fmt.Errorf("reading the routes of canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	s, err := readRouteSplit(v, c)
	if err != nil {
		return 0, 0, false, fmt.Errorf("reading the routes of canary %s/%s: %w", c.Namespace, c.Name, err)
	}
	return s.Primary, s.Canary, s.Mirrored, nil
}

// describeRouteError explains the two expected failures of reading a route.
func describeRouteError(gvk schema.GroupVersionKind, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the %s does not exist (the router's Reconcile creates it): %w", gvk.Kind, err)
	}
	return notInstalled(gvk, err)
}

// checkAccepted fails when a parent has refused the route as it is now: its Accepted
// condition is not True for the route's current generation. A status written for an older
// generation says nothing about the current one (the gateway has not caught up yet, which
// after every change is normal), and parents that write no status are not waited for: not
// every implementation reports.
func checkAccepted(v routeView, obj client.Object, gvk schema.GroupVersionKind) error {
	for _, ps := range v.status {
		if !parentListed(v.parents, ps.ParentRef, obj.GetNamespace()) {
			continue
		}
		cond := findCondition(ps.Conditions, string(gatewayv1.RouteConditionAccepted))
		if cond == nil || cond.ObservedGeneration < obj.GetGeneration() || cond.Status == metav1.ConditionTrue {
			continue
		}
		return fmt.Errorf("%w: %s %s/%s is not accepted by %s (%s): %s: %s", ErrRouteRefused, gvk.Kind, obj.GetNamespace(), obj.GetName(),
			describeParent(ps.ParentRef, obj.GetNamespace()), ps.ControllerName, cond.Reason, cond.Message)
	}
	return nil
}

// ErrRouteRefused marks a route that a Gateway refuses: no traffic follows its weights until
// the Canary (or the Gateway) changes.
var ErrRouteRefused = errors.New("the route is refused by its gateway")

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// parentKey identifies a parent reference with the API's defaults filled in.
func parentKey(p gatewayv1.ParentReference, routeNamespace string) string {
	group, kind, ns := gatewayv1.GroupName, "Gateway", routeNamespace
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	var section string
	if p.SectionName != nil {
		section = string(*p.SectionName)
	}
	var port int32
	if p.Port != nil {
		port = *p.Port
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s/%d", group, kind, ns, p.Name, section, port)
}

func parentListed(refs []gatewayv1.ParentReference, p gatewayv1.ParentReference, ns string) bool {
	k := parentKey(p, ns)
	for _, r := range refs {
		if parentKey(r, ns) == k {
			return true
		}
	}
	return false
}

func describeParent(p gatewayv1.ParentReference, routeNamespace string) string {
	kind, ns := "Gateway", routeNamespace
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	s := fmt.Sprintf("%s %s/%s", kind, ns, p.Name)
	if p.SectionName != nil {
		s += " listener " + string(*p.SectionName)
	}
	return s
}

// isServiceRef reports whether a backend reference names the Service name in the route's
// namespace.
func isServiceRef(ref gatewayv1.BackendObjectReference, name string, routeNamespace string) bool {
	if string(ref.Name) != name {
		return false
	}
	if ref.Group != nil && *ref.Group != "" {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	return ref.Namespace == nil || string(*ref.Namespace) == routeNamespace
}

// readRouteSplit finds the split in a route: the first rule (the session-affinity rules
// aside, which pin users and do not carry it) with the canary among its backends. Gateway API
// weights are relative, so they are read as shares of the rule's total (an unset weight is 1,
// as the API defines); both at zero is refused, since such a rule answers 500.
func readRouteSplit(v routeView, c *flaggerv1.Canary) (Split, error) {
	_, primaryName, canaryName := c.GetServiceNames()
	ns := c.Namespace
	for _, rule := range v.rules {
		switch rule.name {
		case stickyCanaryRoute, stickyPrimaryRoute, expireCookieRoute:
			continue
		}
		var primary, canary, total int64
		found := false
		for _, b := range rule.backends {
			w := int64(1)
			if b.Weight != nil {
				w = int64(*b.Weight)
			}
			total += w
			switch {
			case isServiceRef(b.BackendObjectReference, canaryName, ns):
				canary += w
				found = true
			case isServiceRef(b.BackendObjectReference, primaryName, ns):
				primary += w
			}
		}
		if !found {
			continue
		}
		if total == 0 {
			return Split{}, fmt.Errorf("the route %s/%s routes nothing: every backend of its canary rule has weight 0", ns, c.Name)
		}
		s := Split{Canary: int((canary*100 + total/2) / total)}
		s.Primary = int((primary*100 + total/2) / total)
		if s.Primary+s.Canary != 100 {
			// Other backends in the rule, or rounding: the primary gets the rest, so the split
			// read is one Herald could have set.
			s.Primary = 100 - s.Canary
		}
		for _, m := range rule.mirrors {
			if isServiceRef(m.BackendRef, canaryName, ns) {
				s.Mirrored = true
			}
		}
		return s, nil
	}
	return Split{}, fmt.Errorf("%w %s", errNoSplit, canaryName)
}

// GatewayAPIGroup is the API group of the Gateway API's routes.
const GatewayAPIGroup = gatewayv1.GroupName

// isGatewayAPIGroup reports whether a group/version belongs to the Gateway API.
func isGatewayAPIGroup(gvk schema.GroupVersionKind) bool {
	return strings.HasSuffix(gvk.Group, gatewayv1.GroupName)
}
