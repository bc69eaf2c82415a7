package traffic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Pod-template annotations that give a simulated workload its behaviour. They are not under
// herald.dev/ on purpose: Herald's revision hash ignores those, and a test changes behaviour
// precisely to make a new revision.
const (
	// ErrorRateAnnotation is the fraction (0..1) of requests the workload answers with 500.
	ErrorRateAnnotation = "traffic.herald.test/error-rate"
	// LatencyAnnotation is the response time, a Go duration ("150ms") or a range
	// ("150ms-300ms") that the responses spread evenly over.
	LatencyAnnotation = "traffic.herald.test/latency"
)

// DefaultLatency is the response time of a workload without a latency annotation.
const DefaultLatency = 10 * time.Millisecond

// clusterDomain is the suffix of a Service's fully qualified host, as Istio reports it in
// destination_service.
const clusterDomain = "svc.cluster.local"

// snapshot is what one tick read from the API: everything routing needs, indexed.
type snapshot struct {
	virtualServices []*networkingv1.VirtualService
	vsByKey         map[string]*networkingv1.VirtualService
	services        map[string]*corev1.Service
	deployments     map[string][]*appsv1.Deployment // by namespace, sorted by name

	// Gateway API routes (RouteGatewayAPI): all of them sorted by key, by key, by kind, and
	// the objects as read (for their status); the pods, whose names the application's
	// metrics carry.
	gwTargets []*gwTarget
	gwByKey   map[string]*gwTarget
	gwHTTP    []*gwTarget
	gwGRPC    []*gwTarget
	gwObjects []client.Object
	pods      map[string][]corev1.Pod

	// Per-tick memos: a host resolves to the same backend for every request of the tick.
	backends  map[string]*backend
	workloads map[string]*workload
}

func key(namespace, name string) string { return namespace + "/" + name }

// read lists VirtualServices, Services and Deployments once per namespace. A namespace whose
// lists fail is left out of this tick and reported; the others still get traffic.
func (s *Simulator) read(ctx context.Context) (*snapshot, error) {
	snap := &snapshot{
		vsByKey:     map[string]*networkingv1.VirtualService{},
		services:    map[string]*corev1.Service{},
		deployments: map[string][]*appsv1.Deployment{},
		backends:    map[string]*backend{},
		workloads:   map[string]*workload{},
		gwByKey:     map[string]*gwTarget{},
		pods:        map[string][]corev1.Pod{},
	}
	namespaces := s.namespaces()
	var errs []error
	for _, ns := range namespaces {
		if err := s.readNamespace(ctx, snap, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(namespaces) {
		return nil, errors.Join(errs...)
	}
	for _, err := range errs {
		s.Log.Error(err, "reading a namespace failed; it gets no traffic this tick")
	}
	// A stable order keeps which VirtualService is served first (and so every picker's
	// sequence) independent of the API's list order.
	sort.Slice(snap.virtualServices, func(i, j int) bool {
		a, b := snap.virtualServices[i], snap.virtualServices[j]
		return key(a.Namespace, a.Name) < key(b.Namespace, b.Name)
	})
	sort.Slice(snap.gwTargets, func(i, j int) bool { return snap.gwTargets[i].key < snap.gwTargets[j].key })
	for _, t := range snap.gwTargets {
		if t.kind == "GRPCRoute" {
			snap.gwGRPC = append(snap.gwGRPC, t)
		} else {
			snap.gwHTTP = append(snap.gwHTTP, t)
		}
	}
	return snap, nil
}

func (s *Simulator) readNamespace(ctx context.Context, snap *snapshot, ns string) error {
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	var vss networkingv1.VirtualServiceList
	if s.routing()&RouteIstio != 0 {
		if err := s.Client.List(ctx, &vss, opts...); err != nil {
			return fmt.Errorf("list VirtualServices in namespace %q: %w", ns, err)
		}
	}
	if s.routing()&RouteGatewayAPI != 0 {
		if err := s.readGatewayAPI(ctx, snap, ns, opts); err != nil {
			return err
		}
	}
	var svcs corev1.ServiceList
	if err := s.Client.List(ctx, &svcs, opts...); err != nil {
		return fmt.Errorf("list Services in namespace %q: %w", ns, err)
	}
	var deps appsv1.DeploymentList
	if err := s.Client.List(ctx, &deps, opts...); err != nil {
		return fmt.Errorf("list Deployments in namespace %q: %w", ns, err)
	}
	// StatefulSets serve like Deployments: their pod template and their available pods.
	var sets appsv1.StatefulSetList
	if err := s.Client.List(ctx, &sets, opts...); err != nil {
		return fmt.Errorf("list StatefulSets in namespace %q: %w", ns, err)
	}
	for _, st := range sets.Items {
		deps.Items = append(deps.Items, appsv1.Deployment{
			ObjectMeta: st.ObjectMeta,
			Spec:       appsv1.DeploymentSpec{Replicas: st.Spec.Replicas, Selector: st.Spec.Selector, Template: st.Spec.Template},
			Status:     appsv1.DeploymentStatus{AvailableReplicas: st.Status.AvailableReplicas},
		})
	}
	for _, vs := range vss.Items {
		k := key(vs.Namespace, vs.Name)
		if _, dup := snap.vsByKey[k]; dup {
			continue
		}
		snap.vsByKey[k] = vs
		snap.virtualServices = append(snap.virtualServices, vs)
	}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		snap.services[key(svc.Namespace, svc.Name)] = svc
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		snap.deployments[d.Namespace] = append(snap.deployments[d.Namespace], d)
	}
	for ns := range snap.deployments {
		list := snap.deployments[ns]
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	return nil
}

// readGatewayAPI lists the HTTPRoutes, GRPCRoutes and pods of a namespace.
func (s *Simulator) readGatewayAPI(ctx context.Context, snap *snapshot, ns string, opts []client.ListOption) error {
	var hrs gatewayv1.HTTPRouteList
	if err := s.Client.List(ctx, &hrs, opts...); err != nil {
		return fmt.Errorf("list HTTPRoutes in namespace %q: %w", ns, err)
	}
	var grs gatewayv1.GRPCRouteList
	if err := s.Client.List(ctx, &grs, opts...); err != nil {
		return fmt.Errorf("list GRPCRoutes in namespace %q: %w", ns, err)
	}
	var pods corev1.PodList
	if err := s.Client.List(ctx, &pods, opts...); err != nil {
		return fmt.Errorf("list Pods in namespace %q: %w", ns, err)
	}
	add := func(t gwTarget, obj client.Object) {
		if _, dup := snap.gwByKey[t.key]; dup {
			return
		}
		snap.gwByKey[t.key] = &t
		snap.gwTargets = append(snap.gwTargets, &t)
		snap.gwObjects = append(snap.gwObjects, obj)
	}
	for i := range hrs.Items {
		add(httpTarget(&hrs.Items[i]), &hrs.Items[i])
	}
	for i := range grs.Items {
		add(grpcTarget(&grs.Items[i]), &grs.Items[i])
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			snap.pods[p.Namespace] = append(snap.pods[p.Namespace], p)
		}
	}
	for ns := range snap.pods {
		list := snap.pods[ns]
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	return nil
}

// namespaces returns the configured namespaces without duplicates; none means all
// namespaces (one cluster-wide list per kind).
func (s *Simulator) namespaces() []string {
	if len(s.Namespaces) == 0 {
		return []string{""}
	}
	seen := map[string]bool{}
	var out []string
	for _, ns := range s.Namespaces {
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}

// backend is a destination host as the sidecar sees it: the Service it names and the ready
// workloads behind it, weighted by their available replicas as endpoints would be.
type backend struct {
	host      string // as written in the VirtualService
	service   *corev1.Service
	fqdn      string // <svc>.<ns>.svc.cluster.local, or the host when it names no Service
	name      string
	namespace string
	workloads []*workload
	weights   []float64
	sig       string
}

// resolve finds the Service a destination host names, looked up from a VirtualService in
// vsNamespace, and the workloads that would be its endpoints.
func (snap *snapshot) resolve(host, vsNamespace string) *backend {
	memo := vsNamespace + "|" + host
	if b, ok := snap.backends[memo]; ok {
		return b
	}
	b := &backend{host: host, fqdn: host, name: host, namespace: "unknown"}
	if name, ns, ok := splitServiceHost(host, vsNamespace); ok {
		if svc, found := snap.services[key(ns, name)]; found {
			b.service = svc
			b.name, b.namespace = name, ns
			b.fqdn = name + "." + ns + "." + clusterDomain
			b.workloads, b.weights, b.sig = snap.endpoints(svc)
		}
	}
	snap.backends[memo] = b
	return b
}

// splitServiceHost reads <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local.
// Anything else (an external name, a wildcard) names no Service.
func splitServiceHost(host, vsNamespace string) (name, namespace string, ok bool) {
	h := strings.TrimSuffix(host, "."+clusterDomain)
	h = strings.TrimSuffix(h, ".svc")
	if h == "" || strings.Contains(h, "*") {
		return "", "", false
	}
	parts := strings.Split(h, ".")
	switch len(parts) {
	case 1:
		return parts[0], vsNamespace, true
	case 2:
		return parts[0], parts[1], true
	default:
		return "", "", false
	}
}

// endpoints returns the Deployments a Service would send to: those whose pod template
// labels carry the whole selector and that have available replicas. A Service without a
// selector has no endpoints, as in Kubernetes.
func (snap *snapshot) endpoints(svc *corev1.Service) ([]*workload, []float64, string) {
	sel := svc.Spec.Selector
	if len(sel) == 0 {
		return nil, nil, ""
	}
	var ws []*workload
	var weights []float64
	var sig strings.Builder
	for _, d := range snap.deployments[svc.Namespace] {
		if d.DeletionTimestamp != nil || d.Status.AvailableReplicas <= 0 || !selects(sel, d.Spec.Template.Labels) {
			continue
		}
		ws = append(ws, snap.workload(d))
		weights = append(weights, float64(d.Status.AvailableReplicas))
		sig.WriteString(d.Name)
		sig.WriteByte('=')
		sig.WriteString(strconv.Itoa(int(d.Status.AvailableReplicas)))
		sig.WriteByte(',')
	}
	return ws, weights, sig.String()
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// workload is a Deployment as a metrics reporter and a simulated server see it.
type workload struct {
	key       string
	name      string
	namespace string
	// selector selects the workload's pods.
	selector map[string]string
	// Istio's peer metadata, derived from the pod template the way the sidecar does.
	app, version                        string
	canonicalService, canonicalRevision string
	principal                           string

	errorRate            float64
	latencyLo, latencyHi time.Duration
	// problems found in the annotations, reported once by the simulator
	problems []string
}

func (snap *snapshot) workload(d *appsv1.Deployment) *workload {
	k := key(d.Namespace, d.Name)
	if w, ok := snap.workloads[k]; ok {
		return w
	}
	labels := d.Spec.Template.Labels
	sa := d.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	w := &workload{
		key:               k,
		name:              d.Name,
		namespace:         d.Namespace,
		selector:          d.Spec.Template.Labels,
		app:               orUnknown(labels["app"]),
		version:           orUnknown(labels["version"]),
		canonicalService:  firstOf(labels["service.istio.io/canonical-name"], labels["app.kubernetes.io/name"], labels["app"], d.Name),
		canonicalRevision: firstOf(labels["service.istio.io/canonical-revision"], labels["app.kubernetes.io/version"], labels["version"], "latest"),
		principal:         "spiffe://cluster.local/ns/" + d.Namespace + "/sa/" + sa,
		latencyLo:         DefaultLatency,
		latencyHi:         DefaultLatency,
	}
	ann := d.Spec.Template.Annotations
	if v, ok := ann[ErrorRateAnnotation]; ok {
		rate, err := parseErrorRate(v)
		if err != nil {
			w.problems = append(w.problems, err.Error())
		} else {
			w.errorRate = rate
		}
	}
	if v, ok := ann[LatencyAnnotation]; ok {
		lo, hi, err := parseLatency(v)
		if err != nil {
			w.problems = append(w.problems, err.Error())
		} else {
			w.latencyLo, w.latencyHi = lo, hi
		}
	}
	snap.workloads[k] = w
	return w
}

func parseErrorRate(v string) (float64, error) {
	rate, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("annotation %s=%q is not a number: %w", ErrorRateAnnotation, v, err)
	}
	if rate < 0 || rate > 1 {
		return 0, fmt.Errorf("annotation %s=%q must be between 0 and 1", ErrorRateAnnotation, v)
	}
	return rate, nil
}

func parseLatency(v string) (lo, hi time.Duration, err error) {
	loText, hiText, isRange := strings.Cut(strings.TrimSpace(v), "-")
	lo, err = time.ParseDuration(strings.TrimSpace(loText))
	if err != nil {
		return 0, 0, fmt.Errorf("annotation %s=%q: %w", LatencyAnnotation, v, err)
	}
	hi = lo
	if isRange {
		hi, err = time.ParseDuration(strings.TrimSpace(hiText))
		if err != nil {
			return 0, 0, fmt.Errorf("annotation %s=%q: upper bound: %w", LatencyAnnotation, v, err)
		}
	}
	if lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("annotation %s=%q: want a duration >= 0 or a range low-high with low <= high", LatencyAnnotation, v)
	}
	return lo, hi, nil
}

func orUnknown(v string) string {
	if v == "" {
		return unknown
	}
	return v
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
