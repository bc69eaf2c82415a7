package faults

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/traffic"
)

// release is one new version of one Canary's target, from the apply to the end of its run.
type release struct {
	canary   string
	version  version
	applied  time.Time
	prevRev  string
	rev      string
	detected time.Time // when Herald's status first showed the revision
	ended    time.Time // zero: never ended
	phase    flaggerv1.CanaryPhase
	judged   bool
	skip     bool
}

func (r *release) duration() time.Duration {
	if r.ended.IsZero() {
		return 0
	}
	return r.ended.Sub(r.applied)
}

// faultRun is a fault as it happened.
type faultRun struct {
	plannedFault
	start, end time.Time
	note       string
}

// stream runs the releases of the stream's Canaries and injects the planned faults.
type stream struct {
	plan     *plan
	canaries []streamCanary

	mu        sync.Mutex
	releases  []*release
	faults    []*faultRun
	outages   []outage               // times no Herald replica could act
	holds     map[string]*sync.Mutex // a fault holds a Canary between two releases
	stopping  bool
	unhealthy []unhealthyPrimary
}

func newStream(p *plan, canaries []streamCanary) *stream {
	s := &stream{plan: p, canaries: canaries, holds: map[string]*sync.Mutex{}}
	for _, c := range canaries {
		s.holds[c.name] = &sync.Mutex{}
	}
	return s
}

// setUp creates the namespace, the traffic simulator, the shared ConfigMap, the apps, the
// user-owned apex Services and the Canaries, and waits until every Canary is initialised.
func (s *stream) setUp(ctx context.Context) error {
	if err := namespace(ctx, streamNS); err != nil {
		return err
	}
	sim := &traffic.Simulator{Client: k8s, Namespaces: []string{streamNS}, RPS: 20, Tick: 500 * time.Millisecond}
	simURL, err := sim.Start(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := env.SetPrometheusTargets(simURL[len("http://"):]); err != nil {
		return err
	}
	if err := create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: sharedConfigName, Namespace: streamNS}, Data: map[string]string{"GREETING": "hello"}}); err != nil {
		return err
	}
	for _, c := range s.canaries {
		objs := []client.Object{app(streamNS, c.name, c.sharedConfig)}
		if c.userApex {
			objs = append(objs, userService(streamNS, c.name))
		}
		if err := create(ctx, objs...); err != nil {
			return err
		}
	}
	// Each apex is watched from the moment the user's app serves, before its Canary exists.
	for _, c := range s.canaries {
		if err := waitReady(ctx, streamNS, c.name, 2, 60*time.Second); err != nil {
			return err
		}
		watch.watchApex(apex{namespace: streamNS, name: c.name, virtualService: c.opts.provider == flaggerv1.ProviderIstio})
		if err := create(ctx, canaryFor(streamNS, c.name, c.opts)); err != nil {
			return err
		}
	}
	for _, c := range s.canaries {
		if err := waitPhase(ctx, streamNS, c.name, 90*time.Second, flaggerv1.CanaryPhaseInitialized); err != nil {
			return err
		}
	}
	log.add("stream: %d Canaries initialised", len(s.canaries))
	return nil
}

// waitPhase waits until the sampler saw a Canary in one of the phases.
func waitPhase(ctx context.Context, ns, name string, timeout time.Duration, phases ...flaggerv1.CanaryPhase) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, ok := watch.status(ns, name); ok {
			for _, p := range phases {
				if st.phase == p {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	st, _ := watch.status(ns, name)
	return fmt.Errorf("canary %s/%s not %v within %s: last seen %s", ns, name, phases, timeout, st.phase)
}

func terminal(p flaggerv1.CanaryPhase) bool {
	return p == flaggerv1.CanaryPhaseSucceeded || p == flaggerv1.CanaryPhaseFailed
}

// run releases versions of every Canary until the faults are done, then lets the last
// releases end.
func (s *stream) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.canaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.releaseLoop(ctx, c)
		}()
	}
	s.injectFaults(ctx)
	// The releases that start while the last fault recovers run too.
	select {
	case <-ctx.Done():
	case <-time.After(interval):
	}
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	log.add("stream: no more releases; waiting for the last ones to end")
	wg.Wait()
	log.add("stream: done")
}

func (s *stream) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *stream) releaseLoop(ctx context.Context, c streamCanary) {
	kinds, pauses := s.plan.versions[c.name], s.plan.pauses[c.name]
	for i := 0; ctx.Err() == nil && !s.stopped() && i < len(kinds); i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pauses[i]):
		}
		hold := s.holds[c.name]
		hold.Lock()
		if s.stopped() {
			hold.Unlock()
			return
		}
		r := s.release(ctx, c, version{n: nextVersion(), kind: kinds[i]})
		hold.Unlock()
		if r == nil {
			return
		}
	}
}

var versionCounter struct {
	sync.Mutex
	n int
}

func nextVersion() int {
	versionCounter.Lock()
	defer versionCounter.Unlock()
	versionCounter.n++
	return versionCounter.n
}

// release applies one version and follows it to its end.
func (s *stream) release(ctx context.Context, c streamCanary, v version) *release {
	st, _ := watch.status(streamNS, c.name)
	r := &release{canary: c.name, version: v, prevRev: st.revision, judged: c.judged, skip: c.opts.skipAnalysis}
	hooks.judge(streamNS, c.name, v.kind == bad)
	if err := applyVersion(ctx, streamNS, c.name, v); err != nil {
		log.add("%s: could not apply version %d: %v", c.name, v.n, err)
		return nil
	}
	r.applied = time.Now()
	s.mu.Lock()
	s.releases = append(s.releases, r)
	s.mu.Unlock()
	log.add("%s: applied version %d (%s)", c.name, v.n, v.kind)

	deadline := c.opts.deadlineSeconds()
	limit := time.Duration(deadline)*time.Second + interval
	reportedStuck := false
	for ctx.Err() == nil {
		st, ok := watch.status(streamNS, c.name)
		if ok && r.rev == "" && st.revision != "" && st.revision != r.prevRev {
			r.rev = st.revision
			r.detected, _ = watch.revisionSeen(streamNS, c.name, st.revision)
		}
		if ok && r.rev != "" && st.revision == r.rev && terminal(st.phase) {
			r.ended, r.phase = st.at, st.phase
			break
		}
		// A release is stuck when its status makes no progress (phase, weight, iterations,
		// failed checks) for longer than its progress deadline plus one interval: the
		// progress deadline bounds the time without progress, as Flagger's does, and a
		// run of many steps may well last longer than it. The sampler sees a status at most
		// two periods late. Herald's clock cannot run while no replica leads or the API
		// server is down: that time is added, and reported.
		began, from := r.applied, "its apply"
		if ok && st.since.After(began) {
			began, from = st.since, fmt.Sprintf("its status became %s weight %d iterations %d failed checks %d", st.phase, st.weight, st.iterations, st.failedChecks)
		}
		since, down := time.Since(began), s.outageWithin(began, time.Now())
		if since > limit+down+2*watch.period && !reportedStuck {
			reportedStuck = true
			watch.violate(violation{at: time.Now(), kind: violationStuck, subject: streamNS + "/" + c.name,
				detail: fmt.Sprintf("version %d (%s) made no progress for %s since %s (progress deadline %ds + interval %s + %s without a leader or API server); rev %.8s",
					v.n, v.kind, since.Round(100*time.Millisecond), from, deadline, interval, down.Round(100*time.Millisecond), st.revision)})
		}
		if total := time.Since(r.applied); total > 5*time.Minute+s.outageWithin(r.applied, time.Now()) {
			watch.violate(violation{at: time.Now(), kind: violationStuck, subject: streamNS + "/" + c.name,
				detail: fmt.Sprintf("version %d (%s) not Succeeded or Failed %s after its apply; status %s rev %.8s", v.n, v.kind, total.Round(time.Second), st.phase, st.revision)})
			log.add("%s: gave up on version %d", c.name, v.n)
			return nil // the Canary is stuck; its loop ends
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.add("%s: version %d (%s) %s after %s (detected after %s)", c.name, v.n, v.kind, r.phase,
		r.duration().Round(100*time.Millisecond), r.detected.Sub(r.applied).Round(100*time.Millisecond))
	// skipAnalysis promotes a bad version by design; a broken one it must not.
	skipped := c.opts.skipAnalysis && v.kind == bad
	if r.phase == flaggerv1.CanaryPhaseSucceeded && v.kind != good && !skipped {
		watch.violate(violation{at: r.ended, kind: violationPromoted, subject: streamNS + "/" + c.name,
			detail: fmt.Sprintf("version %d (%s) was promoted", v.n, v.kind)})
	}
	return r
}

// outage is a time no Herald replica could act: no leader, or no API server.
type outage struct{ from, to time.Time } // to is zero while it lasts

func (s *stream) outageStart(at time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outages = append(s.outages, outage{from: at})
	return len(s.outages) - 1
}

func (s *stream) outageEnd(i int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outages[i].to = at
}

// outageWithin is how much of [from, to] fell in outages.
func (s *stream) outageWithin(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, o := range s.outages {
		end := o.to
		if end.IsZero() {
			end = time.Now()
		}
		a, b := maxTime(from, o.from), minTime(to, end)
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// injectFaults runs the planned faults one after the other.
func (s *stream) injectFaults(ctx context.Context) {
	for _, f := range s.plan.faults {
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.gap):
		}
		run := &faultRun{plannedFault: f}
		s.inject(ctx, run)
		s.mu.Lock()
		s.faults = append(s.faults, run)
		s.mu.Unlock()
		log.add("FAULT END %s: %s", run.plannedFault, run.note)
	}
}

func (s *stream) inject(ctx context.Context, run *faultRun) {
	switch run.kind {
	case faultKillLeader:
		s.killLeader(ctx, run)
	case faultAPIServer:
		run.start = time.Now()
		o := s.outageStart(run.start)
		log.add("FAULT %s", run.plannedFault)
		down, err := env.RestartComponent(ctx, cluster.KubeAPIServer, 2*time.Second)
		run.end = time.Now()
		run.note = fmt.Sprintf("kube-apiserver not ready for %s", down.Round(100*time.Millisecond))
		if err != nil {
			run.note += fmt.Sprintf("; restart failed: %v", err)
		}
		if m := heralds.waitLeader(ctx, 60*time.Second); m != nil {
			run.note += fmt.Sprintf("; %s leads %s after", m.name, time.Since(run.end).Round(100*time.Millisecond))
		}
		s.outageEnd(o, time.Now())
	case faultWebhooks:
		run.start = time.Now()
		log.add("FAULT %s", run.plannedFault)
		heralds.proxy.Cut(run.mode)
		scaled := s.scaleIdle(ctx, run.canary, k8s, 30*time.Second-2*time.Second)
		if remaining := 30*time.Second - time.Since(run.start); remaining > 0 {
			time.Sleep(remaining)
		}
		heralds.proxy.Restore()
		run.end = time.Now()
		applies := 0
		for _, r := range s.snapshot() {
			if r.applied.After(run.start) && r.applied.Before(run.end) {
				applies++
			}
		}
		run.note = fmt.Sprintf("%d releases applied while cut; %s", applies, scaled)
	case faultPrometheus:
		run.start = time.Now()
		log.add("FAULT %s", run.plannedFault)
		err := env.StopComponent(cluster.Prometheus)
		time.Sleep(20 * time.Second)
		if err == nil {
			err = env.StartComponent(ctx, cluster.Prometheus)
		}
		run.end = time.Now()
		run.note = fmt.Sprintf("down for %s", run.end.Sub(run.start).Round(100*time.Millisecond))
		if err != nil {
			run.note += fmt.Sprintf("; %v", err)
		}
	case faultHookHang:
		run.start = time.Now()
		log.add("FAULT %s", run.plannedFault)
		hooks.hang(15 * time.Second)
		time.Sleep(15 * time.Second)
		run.end = time.Now()
		hung := 0
		for _, c := range hooks.recorded() {
			if c.code == 0 && c.at.After(run.start) {
				hung++
			}
		}
		run.note = fmt.Sprintf("%d hook calls hung", hung)
	case faultScaleUp:
		run.start = time.Now()
		log.add("FAULT %s", run.plannedFault)
		run.note = s.scaleIdle(ctx, run.canary, asHerald, interval+5*time.Second)
		run.end = time.Now()
	case faultPrimary:
		s.crashPrimaryPod(ctx, run)
	case faultPromotion:
		s.failPromotion(ctx, run)
	}
}

// failPromotion drives the Istio blue/green Canary itself, between two of its stream's
// releases: a version that passes its analysis and then fails as the primary (its primary's
// new pods crash-loop, cluster.SimulatePrimaryAnnotation); once it is promoting, while the
// VirtualService sends the primary nothing, the primary's old pods crash-loop too, so that the
// primary serves nobody. The run must fail within its deadline with traffic kept on the
// canary. Then a bad version: its rollback must not send traffic to the broken primary, nor
// take the canary's pods away while they serve. A later good promotion heals the primary.
func (s *stream) failPromotion(ctx context.Context, run *faultRun) {
	var c streamCanary
	for _, sc := range s.canaries {
		if sc.name == run.canary {
			c = sc
		}
	}
	hold := s.holds[c.name]
	hold.Lock()
	defer hold.Unlock()
	run.start = time.Now()
	log.add("FAULT %s", run.plannedFault)

	done := make(chan *release, 1)
	go func() { done <- s.release(ctx, c, version{n: nextVersion(), kind: failsAsPrimary}) }()
	crashed := map[string]bool{}
	var first *release
	for first == nil && ctx.Err() == nil {
		select {
		case first = <-done:
			continue
		case <-time.After(200 * time.Millisecond):
		}
		if st, ok := watch.status(streamNS, c.name); !ok || st.phase != flaggerv1.CanaryPhasePromoting {
			continue
		}
		if w, err := primaryWeight(ctx, c.name); err != nil || w != 0 {
			continue
		}
		var pods corev1.PodList
		if err := k8s.List(ctx, &pods, client.InNamespace(streamNS), client.MatchingLabels{"app": contract.PrimaryName(c.name)}); err != nil {
			continue
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if crashed[p.Name] || p.DeletionTimestamp != nil || !podReady(p) {
				continue
			}
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, cluster.SimulateAnnotation, cluster.SimulateCrashLoop)
			if err := k8s.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(patch))); err == nil {
				crashed[p.Name] = true
				log.add("%s: the primary's old pod %s crash-loops (the VirtualService sends the primary nothing)", c.name, p.Name)
			}
		}
	}
	run.note = fmt.Sprintf("%s: a version failing as the primary ended %s", c.name, phaseOf(first))
	if len(crashed) > 0 {
		run.note += fmt.Sprintf(" with the primary's %d old pods crash-looping", len(crashed))
	}
	if ctx.Err() == nil {
		second := s.release(ctx, c, version{n: nextVersion(), kind: bad})
		run.note += fmt.Sprintf("; the bad version after it ended %s", phaseOf(second))
	}
	run.end = time.Now()
}

func phaseOf(r *release) string {
	if r == nil || r.ended.IsZero() {
		return "never"
	}
	return string(r.phase)
}

// primaryWeight is the weight a Canary's VirtualService sends its primary.
func primaryWeight(ctx context.Context, name string) (int32, error) {
	var vs istionetworking.VirtualService
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: streamNS, Name: name}, &vs); err != nil {
		return 0, err
	}
	var w int32
	for _, d := range destinations(&vs) {
		if d.service == contract.PrimaryName(name) {
			w += d.weight
		}
	}
	return w, nil
}

// crashPrimaryPod makes one pod of the primary of a Canary whose run is in progress
// crash-loop for 15 s (the other keeps serving), then deletes it so that its ReplicaSet
// starts a healthy one. Meanwhile the run must not advance: checkHalted reads the events.
func (s *stream) crashPrimaryPod(ctx context.Context, run *faultRun) {
	start := time.Now()
	var pod *corev1.Pod
	for pod == nil && time.Since(start) < 45*time.Second && ctx.Err() == nil {
		order := []string{run.canary}
		for _, c := range s.canaries {
			if c.name != run.canary && !c.opts.skipAnalysis && time.Since(start) > 20*time.Second {
				order = append(order, c.name)
			}
		}
		for _, name := range order {
			if st, ok := watch.status(streamNS, name); !ok || st.phase != flaggerv1.CanaryPhaseProgressing {
				continue
			}
			var pods corev1.PodList
			if err := k8s.List(ctx, &pods, client.InNamespace(streamNS), client.MatchingLabels{"app": contract.PrimaryName(name)}); err != nil {
				continue
			}
			for i := range pods.Items {
				if p := &pods.Items[i]; p.DeletionTimestamp == nil && podReady(p) {
					run.canary, pod = name, p
					break
				}
			}
			if pod != nil {
				break
			}
		}
		if pod == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	run.start = time.Now()
	if pod == nil {
		run.end, run.note = time.Now(), "no run in progress within 45s"
		log.add("FAULT %s: %s", run.plannedFault, run.note)
		return
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, cluster.SimulateAnnotation, cluster.SimulateCrashLoop)
	if err := k8s.Patch(ctx, pod, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		run.end, run.note = time.Now(), fmt.Sprintf("annotating %s: %v", pod.Name, err)
		return
	}
	st, _ := watch.status(streamNS, run.canary)
	log.add("FAULT %s: pod %s crash-loops (%s weight %d iterations %d)", run.plannedFault, pod.Name, st.phase, st.weight, st.iterations)
	time.Sleep(15 * time.Second)
	_ = retry(ctx, 30*time.Second, func() error { return client.IgnoreNotFound(k8s.Delete(ctx, pod)) })
	run.end = time.Now()
	s.mu.Lock()
	s.unhealthy = append(s.unhealthy, unhealthyPrimary{canary: run.canary, from: run.start, to: run.end})
	s.mu.Unlock()
	after, _ := watch.status(streamNS, run.canary)
	run.note = fmt.Sprintf("%s: pod %s crash-looped 15s then deleted; before %s weight %d iterations %d, after %s weight %d iterations %d",
		run.canary, pod.Name, st.phase, st.weight, st.iterations, after.phase, after.weight, after.iterations)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unhealthyPrimary is a time a Canary's primary was not ready on purpose.
type unhealthyPrimary struct {
	canary   string
	from, to time.Time
}

// advancing are the events that move a run on: none may come while the primary is not ready.
var advancing = regexp.MustCompile(`^(Advance \S+ canary (weight|iteration)|Routing all traffic to canary|Copying \S+ template spec|Promotion completed)`)

// checkHalted reports the steps a run took while its primary was not ready, allowing Herald
// notice seconds to see it (the pod's readiness reaches the Deployment's status through the
// ReplicaSet controller first).
func (s *stream) checkHalted(calls []hookCall, notice time.Duration) []violation {
	s.mu.Lock()
	windows := append([]unhealthyPrimary(nil), s.unhealthy...)
	s.mu.Unlock()
	var out []violation
	for _, w := range windows {
		for _, c := range calls {
			if c.path != hookEvent || c.canary != w.canary || c.at.Before(w.from.Add(notice)) || c.at.After(w.to) || !advancing.MatchString(c.message) {
				continue
			}
			out = append(out, violation{at: c.at, kind: violationHalt, subject: streamNS + "/" + w.canary,
				detail: fmt.Sprintf("%q %s after a primary pod started crash-looping (it was deleted at %s)", c.message,
					c.at.Sub(w.from).Round(100*time.Millisecond), strings.TrimSpace(log.at(w.to)))})
		}
	}
	return out
}

func (s *stream) snapshot() []*release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*release(nil), s.releases...)
}

// killLeader waits for the planned step of the planned Canary (20 s), else of any Canary
// (25 s more), then SIGKILLs the leader; the fault lasts until a replica leads again.
func (s *stream) killLeader(ctx context.Context, run *faultRun) {
	atStep := func(name string) bool {
		st, ok := watch.status(streamNS, name)
		switch run.step {
		case stepAny:
			return true
		case stepWeighted:
			return ok && st.phase == flaggerv1.CanaryPhaseProgressing && (st.weight > 0 || st.iterations > 0)
		case stepPromoting:
			return ok && st.phase == flaggerv1.CanaryPhasePromoting
		case stepFinalising:
			return ok && st.phase == flaggerv1.CanaryPhaseFinalising
		}
		return false
	}
	start := time.Now()
	reached := false
	for !reached && time.Since(start) < 45*time.Second && ctx.Err() == nil {
		if reached = atStep(run.canary); reached {
			break
		}
		if time.Since(start) > 20*time.Second {
			for _, c := range s.canaries {
				if !c.opts.skipAnalysis && atStep(c.name) {
					run.canary, reached = c.name, true
					break
				}
			}
		}
		if !reached {
			time.Sleep(50 * time.Millisecond)
		}
	}
	st, _ := watch.status(streamNS, run.canary)
	run.start = time.Now()
	who, err := heralds.killLeader(ctx)
	if err != nil {
		run.end = time.Now()
		run.note = err.Error()
		return
	}
	o := s.outageStart(run.start)
	defer func() { s.outageEnd(o, run.end) }()
	at := "step not reached in 45s"
	if reached {
		at = "at the step"
	}
	log.add("FAULT %s: killed %s (%s: %s %s weight %d iterations %d)", run.plannedFault, who, at, run.canary, st.phase, st.weight, st.iterations)
	m := heralds.waitLeader(ctx, 90*time.Second)
	run.end = time.Now()
	if m == nil {
		run.note = fmt.Sprintf("killed %s %s; no leader within 90s", who, at)
		return
	}
	run.note = fmt.Sprintf("killed %s %s (%s %s); %s #%d leads after %s", who, at, run.canary, st.phase, m.name, m.incarnation,
		run.end.Sub(run.start).Round(100*time.Millisecond))
}

// scaleIdle scales an idle target to 3 replicas behind Herald's back with the given client,
// between two of its releases, and holds its release loop for the given time so that Herald
// has to notice on its own. It prefers the planned Canary, else the first idle one.
func (s *stream) scaleIdle(ctx context.Context, preferred string, c client.Client, hold time.Duration) string {
	order := []string{preferred}
	for _, sc := range s.canaries {
		if sc.name != preferred {
			order = append(order, sc.name)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, name := range order {
			h := s.holds[name]
			if !h.TryLock() {
				continue // a release is running
			}
			var d appsv1.Deployment
			err := k8s.Get(ctx, types.NamespacedName{Namespace: streamNS, Name: name}, &d)
			_, idle := d.Annotations[contract.AnnotationIdle]
			if err != nil || !idle || d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
				h.Unlock()
				continue
			}
			patch := []byte(`{"spec":{"replicas":3}}`)
			err = c.Patch(ctx, &d, client.RawPatch(types.MergePatchType, patch))
			if err != nil {
				h.Unlock()
				return fmt.Sprintf("scaling %s failed: %v", name, err)
			}
			log.add("scaled idle target %s to 3 replicas behind Herald's back", name)
			time.Sleep(hold)
			var after appsv1.Deployment
			_ = k8s.Get(ctx, types.NamespacedName{Namespace: streamNS, Name: name}, &after)
			h.Unlock()
			return fmt.Sprintf("scaled idle %s to 3; %s later spec.replicas %d, %d pods ready", name, hold, ptrValue(after.Spec.Replicas), after.Status.ReadyReplicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "no idle target to scale within 20s"
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}
