// Package traffic simulates the requests a service mesh or gateway would carry, for tests and
// demos that run without a data plane. It reads Istio VirtualServices (or, see gateway.go, the
// Gateway API's HTTPRoutes and GRPCRoutes), routes a steady stream of requests through them
// the way Envoy would (first matching route, weighted destinations, mirroring), lets the
// Deployments behind the destination Services answer according to pod-template annotations
// (error rate, latency), and exposes Istio's standard metrics for a real Prometheus to scrape,
// so that a canary analysis queries real numbers.
//
// Everything is deterministic: weighted splits use smooth weighted round-robin and error
// rates and mirror percentages are spread evenly over the stream, so a 90/10 split or a
// 0.25 error rate is exact over any window of requests, not just on average.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Defaults of the Simulator's optional fields.
const (
	DefaultRPS  = 20.0
	DefaultTick = 250 * time.Millisecond
)

// Class is one kind of request the simulated clients send, for example the users of one
// browser in an A/B test.
type Class struct {
	// Name identifies the class in traffic_simulator_requests_total and ServedClass.
	Name string
	// Share is the class's relative part of the traffic. When every share is zero the
	// classes share equally.
	Share float64
	// Headers are sent with every request of the class; names are case-insensitive, and a
	// "Cookie" header is what cookie matches (headers.cookie.regex) see.
	Headers map[string]string
	// Path is the request path, with an optional query; "/" when empty.
	Path string
	// Method is the HTTP method; GET when empty.
	Method string
	// Cookies makes the class one client that keeps the cookies responses set and sends them
	// back (Gateway API routes only), as a browser does.
	Cookies bool
}

// Simulator generates traffic for the VirtualServices of Namespaces and serves the
// resulting Istio metrics. Set the fields, then call Start once.
type Simulator struct {
	// Client reads VirtualServices (networking.istio.io/v1), Services and Deployments.
	Client client.Client
	// Namespaces to simulate; empty means every namespace.
	Namespaces []string
	// RPS is the request rate per VirtualService; DefaultRPS when zero.
	RPS float64
	// Classes of requests; one class named "default" with path "/" when empty.
	Classes []Class
	// Tick is how often requests are generated and objects re-read; DefaultTick when zero.
	Tick time.Duration
	// Log receives the simulator's reports; optional.
	Log logr.Logger
	// Routing selects the routing objects read: RouteIstio (the default when zero),
	// RouteGatewayAPI, or both. Client's scheme must hold their types.
	Routing Routing

	initOnce sync.Once
	started  bool
	metrics  *metrics
	requests []request
	shares   []float64
	carry    float64 // requests owed from fractions of earlier ticks
	lastErr  string  // the last tick's read error, reported when it changes

	// mu guards the counters read by Served and ServedClass, and the routing state.
	mu        sync.Mutex
	served    map[string]*servedCount
	byClass   map[classKey]int64
	vsStates  map[string]*vsState
	endpoints map[string]*smooth // by Service
	behaviour map[string]*serverState
	regexps   map[string]*regexp.Regexp
	warned    map[string]bool
	// Gateway API state: per-route pickers, cookie jars, pod pickers.
	gwStates   map[string]*gwRouteState
	jars       map[jarKey]map[string]jarCookie
	podPickers map[string]*smooth
}

type servedCount struct{ total, errors int64 }

type classKey struct{ namespace, virtualService, class, workload string }

// vsState is the routing state of one VirtualService, kept across ticks so that a split is
// exact over requests of many ticks.
type vsState struct {
	classes smooth
	routes  map[int]*routeState
}

type routeState struct {
	destinations smooth
	mirrors      []quota
}

// serverState is the per-workload sequence that decides which responses fail and how long
// each takes.
type serverState struct {
	errors quota
	count  int64
}

func (s *Simulator) init() {
	s.initOnce.Do(func() {
		s.metrics = newMetrics()
		classes := s.Classes
		if len(classes) == 0 {
			classes = []Class{{Name: "default", Path: "/"}}
		}
		equal := true
		for _, c := range classes {
			if c.Share > 0 {
				equal = false
			}
		}
		for _, c := range classes {
			s.requests = append(s.requests, newRequest(c))
			share := 1.0
			if !equal {
				// Whole numbers keep the smooth picker's arithmetic exact.
				share = math.Round(math.Max(c.Share, 0) * 1e6)
			}
			s.shares = append(s.shares, share)
		}
		s.served = map[string]*servedCount{}
		s.byClass = map[classKey]int64{}
		s.vsStates = map[string]*vsState{}
		s.endpoints = map[string]*smooth{}
		s.behaviour = map[string]*serverState{}
		s.regexps = map[string]*regexp.Regexp{}
		s.warned = map[string]bool{}
		s.gwStates = map[string]*gwRouteState{}
		s.jars = map[jarKey]map[string]jarCookie{}
		s.podPickers = map[string]*smooth{}
	})
}

// Handler serves the simulator's metrics on /metrics, in Prometheus' exposition format.
func (s *Simulator) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// Start serves /metrics on addr ("127.0.0.1:0" picks a free port) and generates traffic
// every Tick until ctx is done. It returns the server's base URL, http://host:port.
func (s *Simulator) Start(ctx context.Context, addr string) (string, error) {
	if s.Client == nil {
		return "", errors.New("traffic simulator: Client is required")
	}
	if s.RPS < 0 || s.Tick < 0 {
		return "", fmt.Errorf("traffic simulator: RPS (%v) and Tick (%v) must not be negative", s.RPS, s.Tick)
	}
	s.init()
	s.mu.Lock()
	already := s.started
	s.started = true
	s.mu.Unlock()
	if already {
		return "", errors.New("traffic simulator: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("traffic simulator: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error(err, "metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	go s.run(ctx)
	return "http://" + ln.Addr().String(), nil
}

func (s *Simulator) run(ctx context.Context) {
	tick := s.Tick
	if tick == 0 {
		tick = DefaultTick
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.tick(ctx, now.Sub(last))
			last = now
		}
	}
}

// tick sends the requests that elapsed time owes each VirtualService. The fraction of a
// request left over is carried to the next tick, so the long-run rate is exactly RPS.
func (s *Simulator) tick(ctx context.Context, elapsed time.Duration) {
	rps := s.RPS
	if rps == 0 {
		rps = DefaultRPS
	}
	s.carry += rps * elapsed.Seconds()
	n := int(s.carry)
	s.carry -= float64(n)
	err := s.step(ctx, n)
	// A cluster that stays unreadable (say, without Istio's CRDs) is reported when the
	// problem starts or changes, not four times a second.
	if msg := errorText(err); msg != s.lastErr {
		s.lastErr = msg
		if err != nil {
			s.Log.Error(err, "no traffic until the routing objects can be read")
		} else {
			s.Log.Info("routing objects readable again; traffic resumed")
		}
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// step re-reads the cluster and sends n requests to every VirtualService.
func (s *Simulator) step(ctx context.Context, n int) error {
	s.init()
	snap, err := s.read(ctx)
	if err != nil {
		return fmt.Errorf("read routing objects: %w", err)
	}
	s.generate(snap, n)
	if s.routing()&RouteGatewayAPI != 0 {
		s.acceptRoutes(ctx, snap)
	}
	return nil
}

// generate sends n requests to every VirtualService of the snapshot.
func (s *Simulator) generate(snap *snapshot, n int) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(snap)
	if s.routing()&RouteGatewayAPI != 0 {
		s.generateGateway(snap, n)
	}
	for _, vs := range snap.virtualServices {
		if len(vs.Spec.GetHosts()) == 0 {
			continue // a delegate: it gets traffic only through the VirtualService delegating to it
		}
		if len(vs.Spec.GetHttp()) == 0 {
			s.warnOnce(vs, "VirtualService has no http routes; no traffic simulated for it")
			continue
		}
		st := s.vsState(vs)
		for i := 0; i < n; i++ {
			c := st.classes.pick("classes", s.shares)
			if c < 0 {
				break // every share is negative or zero after rounding: nothing to send
			}
			s.send(snap, vs, &s.requests[c])
		}
	}
}

// forget drops the state of objects that no longer exist, so that a recreated object starts
// afresh and the maps do not grow with churn.
func (s *Simulator) forget(snap *snapshot) {
	for k := range s.vsStates {
		if _, ok := snap.vsByKey[k]; !ok {
			delete(s.vsStates, k)
		}
	}
	for k := range s.endpoints {
		if _, ok := snap.services[k]; !ok {
			delete(s.endpoints, k)
		}
	}
	live := map[string]bool{}
	for _, deps := range snap.deployments {
		for _, d := range deps {
			live[key(d.Namespace, d.Name)] = true
		}
	}
	for k := range s.behaviour {
		if !live[k] {
			delete(s.behaviour, k)
		}
	}
	for k := range s.podPickers {
		if !live[k] {
			delete(s.podPickers, k)
		}
	}
}

func (s *Simulator) vsState(vs *networkingv1.VirtualService) *vsState {
	k := key(vs.Namespace, vs.Name)
	st, ok := s.vsStates[k]
	if !ok {
		st = &vsState{routes: map[int]*routeState{}}
		s.vsStates[k] = st
	}
	return st
}

func (st *vsState) route(i int) *routeState {
	rs, ok := st.routes[i]
	if !ok {
		rs = &routeState{}
		st.routes[i] = rs
	}
	return rs
}

// send routes one request of a class through vs, lets the chosen workload answer, mirrors
// it, and records what each proxy would report.
func (s *Simulator) send(snap *snapshot, vs *networkingv1.VirtualService, req *request) {
	e := entryFor(vs, req)
	x := exchange{sourceNamespace: vs.Namespace}
	t, ok := s.route(snap, vs, req, e, false)
	switch {
	case !ok:
		// No route: Envoy answers 404 itself.
		x.code, x.flags = http.StatusNotFound, flagNoRouteFound
	case t.route.GetDirectResponse() != nil:
		x.code, x.flags = int(t.route.GetDirectResponse().GetStatus()), flagNone
	case t.route.GetRedirect() != nil:
		x.code, x.flags = redirectCode(t.route.GetRedirect()), flagNone
	default:
		rs := s.vsState(t.owner).route(t.index)
		s.forward(snap, t, rs, &x)
		s.mirror(snap, t, rs)
	}
	wl := unknown
	if x.workload != nil {
		wl = x.workload.name
		s.metrics.observe(ptr(x.labels(reporterDestination)), x.latency)
	}
	s.metrics.observe(ptr(x.labels(reporterSource)), x.latency)
	s.metrics.simulated.WithLabelValues(vs.Name, vs.Namespace, req.class, wl).Inc()
	s.byClass[classKey{vs.Namespace, vs.Name, req.class, wl}]++
	if x.workload == nil {
		// Responses no workload gave are counted under "unknown" in the client's namespace.
		s.count(key(vs.Namespace, unknown), x.code)
	}
}

// forward picks the destination by weight and lets its workload answer.
func (s *Simulator) forward(snap *snapshot, t target, rs *routeState, x *exchange) {
	dests := t.route.GetRoute()
	weights := make([]float64, len(dests))
	var sig strings.Builder
	for i, d := range dests {
		w := float64(d.GetWeight())
		if len(dests) == 1 {
			w = 1 // a single destination takes everything whatever its weight
		}
		weights[i] = w
		sig.WriteString(d.GetDestination().GetHost())
		sig.WriteByte('=')
		sig.WriteString(strconv.Itoa(int(d.GetWeight())))
		sig.WriteByte(',')
	}
	i := rs.destinations.pick(sig.String(), weights)
	if i < 0 {
		s.warnOnce(t.owner, "http route has no destination with a positive weight; answering 503", "route", t.index)
		x.code, x.flags = http.StatusServiceUnavailable, flagNoRouteFound
		return
	}
	host := dests[i].GetDestination().GetHost()
	b := snap.resolve(host, t.owner.Namespace)
	x.backend = b
	if b.service == nil {
		s.warnOnce(t.owner, "destination host names no Service in the simulated namespaces; answering 503", "host", host)
		x.code, x.flags = http.StatusServiceUnavailable, flagNoClusterFound
		return
	}
	w := s.endpoint(b)
	if w == nil {
		// No ready endpoint: the client's sidecar answers, as Envoy does with no healthy upstream.
		x.code, x.flags = http.StatusServiceUnavailable, flagNoHealthyUpstream
		return
	}
	x.workload = w
	x.code, x.latency = s.serve(w)
	x.flags = flagNone
}

// mirror sends the shadow copies of a request. Only the receiving sidecar reports them
// (Envoy's shadow requests bypass the client's HTTP filters, Istio's stats among them), and
// their responses are dropped.
func (s *Simulator) mirror(snap *snapshot, t target, rs *routeState) {
	type shadow struct {
		host    string
		percent float64
	}
	var shadows []shadow
	if m := t.route.GetMirror(); m != nil {
		p := 100.0
		if mp := t.route.GetMirrorPercentage(); mp != nil {
			p = mp.GetValue()
		} else if legacy := t.route.GetMirrorPercent(); legacy != nil {
			p = float64(legacy.GetValue())
		}
		shadows = append(shadows, shadow{m.GetHost(), p})
	}
	for _, m := range t.route.GetMirrors() {
		p := 100.0
		if mp := m.GetPercentage(); mp != nil {
			p = mp.GetValue()
		}
		shadows = append(shadows, shadow{m.GetDestination().GetHost(), p})
	}
	if len(rs.mirrors) != len(shadows) {
		rs.mirrors = make([]quota, len(shadows))
	}
	for i, sh := range shadows {
		if !rs.mirrors[i].hit(math.Min(math.Max(sh.percent, 0), 100) / 100) {
			continue
		}
		b := snap.resolve(sh.host, t.owner.Namespace)
		if b.service == nil {
			s.warnOnce(t.owner, "mirror host names no Service in the simulated namespaces; copies dropped", "host", sh.host)
			continue
		}
		w := s.endpoint(b)
		if w == nil {
			continue // nobody to receive the copy, and nobody reports its loss
		}
		mx := exchange{sourceNamespace: t.owner.Namespace, backend: b, workload: w, flags: flagNone}
		mx.code, mx.latency = s.serve(w)
		s.metrics.observe(ptr(mx.labels(reporterDestination)), mx.latency)
	}
}

// endpoint picks the workload behind a Service for one request, in proportion to ready
// replicas, or nil when there is none.
func (s *Simulator) endpoint(b *backend) *workload {
	if len(b.workloads) == 0 {
		return nil
	}
	k := key(b.service.Namespace, b.service.Name)
	p, ok := s.endpoints[k]
	if !ok {
		p = &smooth{}
		s.endpoints[k] = p
	}
	return b.workloads[p.pick(b.sig, b.weights)]
}

// serve is the workload answering one request: its error quota decides the status, its
// latency setting the duration.
func (s *Simulator) serve(w *workload) (code int, latency time.Duration) {
	for _, p := range w.problems {
		s.warnKey("workload/"+w.key+"/"+p, "ignoring a behaviour annotation", "namespace", w.namespace, "workload", w.name, "problem", p)
	}
	st, ok := s.behaviour[w.key]
	if !ok {
		st = &serverState{}
		s.behaviour[w.key] = st
	}
	st.count++
	code = http.StatusOK
	if st.errors.hit(w.errorRate) {
		code = http.StatusInternalServerError
	}
	latency = spread(w.latencyLo, w.latencyHi, st.count)
	s.count(w.key, code)
	return code, latency
}

func (s *Simulator) count(k string, code int) {
	c, ok := s.served[k]
	if !ok {
		c = &servedCount{}
		s.served[k] = c
	}
	c.total++
	if code >= 500 {
		c.errors++
	}
}

// Served returns how many requests the workload (a Deployment name, or "unknown" for
// answers no workload gave) in namespace answered since the start, mirrored copies
// included, and how many of them were 5xx.
func (s *Simulator) Served(namespace, workload string) (total, errors int64) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.served[key(namespace, workload)]; ok {
		return c.total, c.errors
	}
	return 0, 0
}

// ServedClass returns how many requests of class sent to the VirtualService the routes
// delivered to workload since the start (mirrored copies not included).
func (s *Simulator) ServedClass(namespace, virtualService, class, workload string) int64 {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byClass[classKey{namespace, virtualService, class, workload}]
}

func (s *Simulator) warnOnce(vs *networkingv1.VirtualService, msg string, kv ...any) {
	k := "vs/" + key(vs.Namespace, vs.Name) + "/" + msg + fmt.Sprint(kv...)
	s.warnKey(k, msg, append([]any{"namespace", vs.Namespace, "virtualService", vs.Name}, kv...)...)
}

// warnKey logs msg the first time k is seen: odd objects are reported, not repeated every tick.
func (s *Simulator) warnKey(k, msg string, kv ...any) {
	if s.warned[k] {
		return
	}
	s.warned[k] = true
	s.Log.Info(msg, kv...)
}

func redirectCode(r *v1alpha3.HTTPRedirect) int {
	if c := r.GetRedirectCode(); c != 0 {
		return int(c)
	}
	return http.StatusMovedPermanently
}

func ptr[T any](v T) *T { return &v }
