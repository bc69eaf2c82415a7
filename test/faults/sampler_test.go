package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// Kinds of invariant violations.
const (
	violationTraffic  = "traffic to unready pods"
	violationIdle     = "idle target runs pods"
	violationStuck    = "release stuck"
	violationTwice    = "step twice"
	violationStatus   = "status lost"
	violationRestore  = "deletion did not restore"
	violationBlocked  = "deletion blocked"
	violationPromoted = "bad version promoted"
	violationHalt     = "advanced while the primary was not ready"
)

// violation is one breach of an invariant, with what the run was doing at the time.
type violation struct {
	at      time.Time
	kind    string
	subject string // namespace/name
	detail  string
}

func (v violation) String() string {
	return fmt.Sprintf("%s  %s  %s: %s", log.at(v.at), v.kind, v.subject, v.detail)
}

// apex is an object that sends users' traffic somewhere: the apex Service of a kubernetes
// Canary, or the VirtualService of an istio one. It is sampled from the moment the test
// registers it, whether or not a Canary exists (a user-owned apex must keep serving after its
// Canary is deleted).
type apex struct {
	namespace, name string
	virtualService  bool
}

func (a apex) String() string { return a.namespace + "/" + a.name }

// trafficSample is one 200 ms look at one apex.
type trafficSample struct {
	at      time.Time
	apex    apex
	unready bool
}

// observed is a Canary's status as one sample saw it.
type observed struct {
	at           time.Time
	phase        flaggerv1.CanaryPhase
	revision     string
	weight       int
	iterations   int
	failedChecks int
	since        time.Time // when this status (all of the above) was first seen
}

// same reports whether two looks saw the same status.
func (o observed) same(p observed) bool {
	return o.phase == p.phase && o.revision == p.revision && o.weight == p.weight && o.iterations == p.iterations && o.failedChecks == p.failedChecks
}

type canaryTrack struct {
	uid      string
	last     observed
	seen     bool
	left     map[string]bool      // revisions the status has moved on from
	firstRev map[string]time.Time // when each revision was first seen in the status
}

type idleEpisode struct {
	since    time.Time
	pods     int
	reported bool
}

type trafficEpisode struct {
	since   time.Time
	samples int
	why     string
}

// sampler checks the invariants every period, for the whole run, by reading the API server
// directly (linearizable lists, no cache): routing, then pods, then routing again; a sample
// counts only when the routing did not change around the pod read, so that what it reports
// held at one instant.
type sampler struct {
	c      client.Client
	period time.Duration

	mu         sync.Mutex
	namespaces map[string]bool
	apexes     map[apex]bool
	samples    []trafficSample
	unsettled  int // looks whose routing kept changing under the reads
	failed     int // looks that could not read (the API server down)
	canaries   map[string]*canaryTrack
	idle       map[string]*idleEpisode
	traffic    map[apex]*trafficEpisode
	violations []violation

	stopCh chan struct{}
	done   chan struct{}
}

func startSampler(c client.Client, period time.Duration) *sampler {
	s := &sampler{
		c: c, period: period,
		namespaces: map[string]bool{}, apexes: map[apex]bool{},
		canaries: map[string]*canaryTrack{}, idle: map[string]*idleEpisode{}, traffic: map[apex]*trafficEpisode{},
		stopCh: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run()
	return s
}

func (s *sampler) stop() {
	select {
	case <-s.stopCh:
	default:
		close(s.stopCh)
	}
	<-s.done
}

// forgetNamespace stops looking at a namespace (it is being deleted on purpose).
func (s *sampler) forgetNamespace(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.namespaces, ns)
	for a := range s.apexes {
		if a.namespace == ns {
			delete(s.apexes, a)
		}
	}
}

// watchApex starts sampling where an apex sends traffic.
func (s *sampler) watchApex(a apex) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces[a.namespace] = true
	s.apexes[a] = true
}

func (s *sampler) violate(v violation) {
	s.mu.Lock()
	s.violations = append(s.violations, v)
	s.mu.Unlock()
	log.addAt(v.at, "VIOLATION %s %s: %s", v.kind, v.subject, v.detail)
}

// violationsIn returns the violations about subjects in a namespace ("" for all).
func (s *sampler) violationsIn(ns string) []violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []violation
	for _, v := range s.violations {
		if ns == "" || strings.HasPrefix(v.subject, ns+"/") {
			out = append(out, v)
		}
	}
	return out
}

// status returns the last status seen of a Canary.
func (s *sampler) status(ns, name string) (observed, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.canaries[ns+"/"+name]
	if t == nil || !t.seen {
		return observed{}, false
	}
	return t.last, true
}

// revisionSeen returns when a revision first appeared in a Canary's status.
func (s *sampler) revisionSeen(ns, name, rev string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.canaries[ns+"/"+name]
	if t == nil {
		return time.Time{}, false
	}
	at, ok := t.firstRev[rev]
	return at, ok
}

// trafficSamples returns the samples of [from, to].
func (s *sampler) trafficSamples(from, to time.Time) (total, unready int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.samples {
		if !x.at.Before(from) && !x.at.After(to) {
			total++
			if x.unready {
				unready++
			}
		}
	}
	return total, unready
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-s.stopCh:
			s.closeEpisodes(time.Now())
			return
		case <-t.C:
		}
		s.mu.Lock()
		var namespaces []string
		for ns := range s.namespaces {
			namespaces = append(namespaces, ns)
		}
		s.mu.Unlock()
		sort.Strings(namespaces)
		for _, ns := range namespaces {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.sample(ctx, ns)
			cancel()
		}
	}
}

// routing is what sends traffic in a namespace: its VirtualServices and Services.
type routing struct {
	vs       map[string]*istionetworking.VirtualService
	services map[string]*corev1.Service
}

func (s *sampler) readRouting(ctx context.Context, ns string) (*routing, error) {
	var vss istionetworking.VirtualServiceList
	if err := s.c.List(ctx, &vss, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var svcs corev1.ServiceList
	if err := s.c.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	r := &routing{vs: map[string]*istionetworking.VirtualService{}, services: map[string]*corev1.Service{}}
	for _, vs := range vss.Items {
		r.vs[vs.Name] = vs
	}
	for i := range svcs.Items {
		r.services[svcs.Items[i].Name] = &svcs.Items[i]
	}
	return r, nil
}

// sample takes one look at a namespace.
func (s *sampler) sample(ctx context.Context, ns string) {
	s.mu.Lock()
	var apexes []apex
	for a := range s.apexes {
		if a.namespace == ns {
			apexes = append(apexes, a)
		}
	}
	s.mu.Unlock()
	sort.Slice(apexes, func(i, j int) bool { return apexes[i].name < apexes[j].name })

	pending := apexes
	var pods corev1.PodList
	var deps appsv1.DeploymentList
	var canaries flaggerv1.CanaryList
	var at time.Time
	for attempt := 0; attempt < 3 && (len(pending) > 0 || attempt == 0); attempt++ {
		before, err := s.readRouting(ctx, ns)
		if err == nil {
			at = time.Now()
			err = s.c.List(ctx, &pods, client.InNamespace(ns))
		}
		if err == nil && attempt == 0 {
			if err = s.c.List(ctx, &deps, client.InNamespace(ns)); err == nil {
				err = s.c.List(ctx, &canaries, client.InNamespace(ns))
			}
		}
		var after *routing
		if err == nil {
			after, err = s.readRouting(ctx, ns)
		}
		if err != nil {
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
			return
		}
		if attempt == 0 {
			s.checkCanaries(at, canaries.Items)
			s.checkIdle(at, deps.Items, pods.Items, canaries.Items)
		}
		var unsettled []apex
		for _, a := range pending {
			if !stable(a, before, after) {
				unsettled = append(unsettled, a)
				continue
			}
			why := unreadyTraffic(a, before, pods.Items)
			s.recordTraffic(at, a, why)
		}
		pending = unsettled
	}
	if len(pending) > 0 {
		s.mu.Lock()
		s.unsettled += len(pending)
		s.mu.Unlock()
	}
}

// stable reports whether the objects an apex routes through are the same in both reads.
func stable(a apex, before, after *routing) bool {
	version := func(r *routing) string {
		var b strings.Builder
		if a.virtualService {
			vs := r.vs[a.name]
			if vs == nil {
				return "-"
			}
			b.WriteString(vs.ResourceVersion)
			for _, host := range destinations(vs) {
				if svc := r.services[host.service]; svc != nil {
					b.WriteString("," + svc.ResourceVersion)
				}
			}
			return b.String()
		}
		if svc := r.services[a.name]; svc != nil {
			return svc.ResourceVersion
		}
		return "-"
	}
	return version(before) == version(after)
}

// destination is where a weighted route sends traffic.
type destination struct {
	route   int
	service string
	weight  int32
}

// destinations returns the destinations of a VirtualService's http routes that get traffic:
// a positive weight, or the only destination of a route (Istio sends it everything).
func destinations(vs *istionetworking.VirtualService) []destination {
	var out []destination
	for i, r := range vs.Spec.GetHttp() {
		if r.GetRedirect() != nil || r.GetDirectResponse() != nil {
			continue
		}
		routes := r.GetRoute()
		for _, d := range routes {
			w := d.GetWeight()
			if len(routes) == 1 {
				w = 100
			}
			if w <= 0 {
				continue
			}
			host := d.GetDestination().GetHost()
			name := strings.TrimSuffix(host, ".svc.cluster.local")
			name, _, _ = strings.Cut(name, ".")
			out = append(out, destination{route: i, service: name, weight: w})
		}
	}
	return out
}

// readyPods counts the ready, not terminating pods a selector picks.
func readyPods(selector map[string]string, pods []corev1.Pod) (matching, ready int) {
	if len(selector) == 0 {
		return 0, 0
	}
	sel := labels.SelectorFromSet(selector)
	for i := range pods {
		p := &pods[i]
		if !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		matching++
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return matching, ready
}

// unreadyTraffic says why an apex sends traffic to pods that are not ready, "" when it does
// not. An apex that does not exist sends nothing.
func unreadyTraffic(a apex, r *routing, pods []corev1.Pod) string {
	if !a.virtualService {
		svc := r.services[a.name]
		if svc == nil || len(svc.Spec.Selector) == 0 {
			return ""
		}
		if matching, ready := readyPods(svc.Spec.Selector, pods); ready == 0 {
			return fmt.Sprintf("Service selector %v picks %d pods, none ready", svc.Spec.Selector, matching)
		}
		return ""
	}
	vs := r.vs[a.name]
	if vs == nil {
		return ""
	}
	var why []string
	for _, d := range destinations(vs) {
		svc := r.services[d.service]
		if svc == nil {
			why = append(why, fmt.Sprintf("route %d sends %d%% to %s, which does not exist", d.route, d.weight, d.service))
			continue
		}
		if matching, ready := readyPods(svc.Spec.Selector, pods); ready == 0 {
			why = append(why, fmt.Sprintf("route %d sends %d%% to %s (selector %v: %d pods, none ready)", d.route, d.weight, d.service, svc.Spec.Selector, matching))
		}
	}
	return strings.Join(why, "; ")
}

// recordTraffic keeps a sample and turns runs of bad samples into one violation each.
func (s *sampler) recordTraffic(at time.Time, a apex, why string) {
	s.mu.Lock()
	s.samples = append(s.samples, trafficSample{at: at, apex: a, unready: why != ""})
	ep := s.traffic[a]
	switch {
	case why != "" && ep == nil:
		s.traffic[a] = &trafficEpisode{since: at, samples: 1, why: why}
		s.mu.Unlock()
		log.addAt(at, "traffic to unready pods starts at %s: %s", a, why)
		return
	case why != "":
		ep.samples++
	case ep != nil:
		delete(s.traffic, a)
		s.mu.Unlock()
		s.violate(violation{at: ep.since, kind: violationTraffic, subject: a.String(),
			detail: fmt.Sprintf("%d samples over %s: %s", ep.samples, at.Sub(ep.since).Round(100*time.Millisecond), ep.why)})
		return
	}
	s.mu.Unlock()
}

// closeEpisodes reports the episodes still open when sampling stops.
func (s *sampler) closeEpisodes(now time.Time) {
	s.mu.Lock()
	eps := s.traffic
	s.traffic = map[apex]*trafficEpisode{}
	s.mu.Unlock()
	for a, ep := range eps {
		s.violate(violation{at: ep.since, kind: violationTraffic, subject: a.String(),
			detail: fmt.Sprintf("%d samples over %s, still at the end: %s", ep.samples, now.Sub(ep.since).Round(100*time.Millisecond), ep.why)})
	}
}

// phaseRank orders the phases of one revision's run.
func phaseRank(p flaggerv1.CanaryPhase) int {
	switch p {
	case "", flaggerv1.CanaryPhaseInitializing:
		return 0
	case flaggerv1.CanaryPhaseInitialized:
		return 1
	case flaggerv1.CanaryPhaseWaiting:
		return 2
	case flaggerv1.CanaryPhaseProgressing:
		return 3
	case flaggerv1.CanaryPhaseWaitingPromotion:
		return 4
	case flaggerv1.CanaryPhasePromoting:
		return 5
	case flaggerv1.CanaryPhaseFinalising:
		return 6
	}
	return 7 // Succeeded, Failed
}

// checkCanaries follows each Canary's status: within a revision the phase never goes back,
// nor the weight or iterations while Progressing, and a revision the status left never
// comes back.
func (s *sampler) checkCanaries(at time.Time, canaries []flaggerv1.Canary) {
	for i := range canaries {
		c := &canaries[i]
		cur := observed{at: at, since: at, phase: c.Status.Phase, revision: c.Status.LastAppliedSpec, weight: c.Status.CanaryWeight,
			iterations: c.Status.Iterations, failedChecks: c.Status.FailedChecks}
		key := c.Namespace + "/" + c.Name
		s.mu.Lock()
		t := s.canaries[key]
		if t == nil || t.uid != string(c.UID) { // new, or deleted and created again
			t = &canaryTrack{uid: string(c.UID), left: map[string]bool{}, firstRev: map[string]time.Time{}}
			s.canaries[key] = t
		}
		prev, had := t.last, t.seen
		if had && prev.same(cur) {
			cur.since = prev.since
		}
		t.last, t.seen = cur, true
		if _, ok := t.firstRev[cur.revision]; !ok && cur.revision != "" {
			t.firstRev[cur.revision] = at
		}
		var problems []string
		if had && prev.revision == cur.revision {
			if phaseRank(cur.phase) < phaseRank(prev.phase) || (prev.phase == flaggerv1.CanaryPhaseSucceeded && cur.phase == flaggerv1.CanaryPhaseFailed) ||
				(prev.phase == flaggerv1.CanaryPhaseFailed && cur.phase == flaggerv1.CanaryPhaseSucceeded) {
				problems = append(problems, fmt.Sprintf("phase went back from %s to %s within revision %.12s", prev.phase, cur.phase, cur.revision))
			}
			if prev.phase == flaggerv1.CanaryPhaseProgressing && cur.phase == flaggerv1.CanaryPhaseProgressing {
				if cur.weight < prev.weight {
					problems = append(problems, fmt.Sprintf("canary weight went back from %d to %d while Progressing", prev.weight, cur.weight))
				}
				if cur.iterations < prev.iterations {
					problems = append(problems, fmt.Sprintf("iterations went back from %d to %d while Progressing", prev.iterations, cur.iterations))
				}
			}
		}
		if had && prev.revision != cur.revision {
			if t.left[cur.revision] {
				problems = append(problems, fmt.Sprintf("the status went back to revision %.12s (from %.12s)", cur.revision, prev.revision))
			}
			t.left[prev.revision] = true
		}
		s.mu.Unlock()
		if had && !prev.same(cur) {
			log.addAt(at, "%s: %s rev %.8s weight %d iterations %d failed checks %d", key, cur.phase, cur.revision, cur.weight, cur.iterations, cur.failedChecks)
		}
		for _, p := range problems {
			s.violate(violation{at: at, kind: violationStatus, subject: key, detail: p})
		}
	}
}

// checkIdle finds idle targets (Herald's idle annotation) that run pods, and reports each
// that does so for longer than its Canary's analysis interval.
func (s *sampler) checkIdle(at time.Time, deps []appsv1.Deployment, pods []corev1.Pod, canaries []flaggerv1.Canary) {
	intervals := map[string]time.Duration{}
	for i := range canaries {
		intervals[canaries[i].Spec.TargetRef.Name] = canaries[i].GetAnalysisInterval()
	}
	for i := range deps {
		d := &deps[i]
		key := d.Namespace + "/" + d.Name
		_, idle := d.Annotations[contract.AnnotationIdle]
		running := 0
		if idle && d.Spec.Selector != nil {
			sel, err := metaSelector(d)
			if err == nil {
				for j := range pods {
					p := &pods[j]
					if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && sel.Matches(labels.Set(p.Labels)) {
						running++
					}
				}
			}
		}
		interval, ok := intervals[d.Name]
		if !ok {
			interval = flaggerv1.MinAnalysisInterval
		}
		s.mu.Lock()
		ep := s.idle[key]
		switch {
		case running > 0 && ep == nil:
			s.idle[key] = &idleEpisode{since: at, pods: running}
			s.mu.Unlock()
			continue
		case running > 0:
			ep.pods = max(ep.pods, running)
			over := at.Sub(ep.since) > interval && !ep.reported
			if over {
				ep.reported = true
			}
			s.mu.Unlock()
			if over {
				s.violate(violation{at: ep.since, kind: violationIdle, subject: key,
					detail: fmt.Sprintf("idle (annotation %s) with %d pods for more than its interval %s", contract.AnnotationIdle, ep.pods, interval)})
			}
			continue
		case ep != nil:
			delete(s.idle, key)
			s.mu.Unlock()
			if d := at.Sub(ep.since); d > time.Second {
				log.addAt(at, "idle target %s ran %d pods for %s", key, ep.pods, d.Round(100*time.Millisecond))
			}
			continue
		}
		s.mu.Unlock()
	}
}

func metaSelector(d *appsv1.Deployment) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
}

// counts returns the sampler's bookkeeping: traffic samples, looks whose routing kept
// changing, and looks that could not read.
func (s *sampler) counts() (samples, unsettled, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples), s.unsettled, s.failed
}
