package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/test/traffic"
)

// stepTimeout bounds every wait of the walkthrough: a release takes about a minute, so three
// minutes means something is wrong.
const stepTimeout = 3 * time.Minute

// release is one new version of podinfo, as the summary reports it.
type release struct {
	version  string
	strategy string
	result   string        // "promoted" or "rolled back"
	applied  time.Time     // when the patch was sent
	took     time.Duration // from the patch to the final phase
	seenWhat string        // "weights" or "iterations"
	seen     []int         // the canary weights or iterations, in order
}

// newVersion patches podinfo's image and the simulator's behaviour annotations in one change,
// so that Herald sees exactly one new revision.
func (d *demo) newVersion(ctx context.Context, version string, errorRate float64, latency string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:"%g",%q:%q}},"spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:%s"}]}}}}`,
		traffic.ErrorRateAnnotation, errorRate, traffic.LatencyAnnotation, latency, version)
	return d.kubectl(ctx, "-n", namespace, "patch", "deployment", name, "-p", patch)
}

// observation is what the demo reads of a running release on each poll.
type observation struct {
	canary  flaggerv1.Canary
	primary int32 // the VirtualService's (or HTTPRoute's) weights on its canary route
	canaryW int32
}

// key is what a printed line stands for: a new line whenever Herald moves the run on.
func (o *observation) key() string {
	s := o.canary.Status
	return fmt.Sprintf("%s/%d/%d/%d", s.Phase, s.CanaryWeight, s.Iterations, s.FailedChecks)
}

func (d *demo) observe(ctx context.Context) (*observation, error) {
	o := &observation{}
	if err := d.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &o.canary); err != nil {
		return nil, fmt.Errorf("reading canary %s/%s: %w", namespace, name, err)
	}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	var err error
	if d.gatewayAPI() {
		var rt gatewayv1.HTTPRoute
		if err = d.k8s.Get(ctx, key, &rt); err == nil {
			o.primary, o.canaryW = httpRouteSplit(&rt)
		}
	} else {
		var vs istionetworking.VirtualService
		if err = d.k8s.Get(ctx, key, &vs); err == nil {
			o.primary, o.canaryW = splitOf(&vs)
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading %s %s: %w", d.routeKind(), key, err)
	}
	return o, nil
}

// httpRouteSplit returns the weights of the first rule of the HTTPRoute that names the
// canary: the only rule of a weighted canary, the matched rule of an A/B test.
func httpRouteSplit(rt *gatewayv1.HTTPRoute) (primary, canary int32) {
	for _, r := range rt.Spec.Rules {
		found := false
		var p, c int32
		for _, b := range r.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			switch string(b.Name) {
			case name + "-primary":
				p = w
			case name + "-canary":
				c, found = w, true
			}
		}
		if found {
			return p, c
		}
	}
	return 0, 0
}

// splitOf returns the weights of the first route of the VirtualService that names the
// canary: the only route of a weighted canary, the matched route of an A/B test.
func splitOf(vs *istionetworking.VirtualService) (primary, canary int32) {
	for _, r := range vs.Spec.GetHttp() {
		found := false
		var p, c int32
		for _, dst := range r.GetRoute() {
			switch dst.GetDestination().GetHost() {
			case name + "-primary":
				p = dst.GetWeight()
			case name + "-canary":
				c, found = dst.GetWeight(), true
			}
		}
		if found {
			return p, c
		}
	}
	return 0, 0
}

// finished reports whether a phase ends a run.
func finished(p flaggerv1.CanaryPhase) bool {
	return p == flaggerv1.CanaryPhaseSucceeded || p == flaggerv1.CanaryPhaseFailed || p == flaggerv1.CanaryPhaseInitialized || p == ""
}

// follow polls the Canary until the run that the last patch started ends in want, printing
// a line (made by describe) whenever Herald moves the run on, and records the weights or
// iterations seen in rel. A run that ends otherwise, or takes longer than stepTimeout, is an
// error.
func (d *demo) follow(ctx context.Context, rel *release, want flaggerv1.CanaryPhase, describe func(context.Context, *observation) string) error {
	deadline := time.NewTimer(stepTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// Until Herald notices the new revision, the Canary still shows the previous run's end.
	started := false
	last := ""
	for {
		o, err := d.observe(ctx)
		if err != nil {
			return err
		}
		phase := o.canary.Status.Phase
		started = started || !finished(phase)
		if started && o.key() != last {
			last = o.key()
			rel.record(o)
			progress("%-12s %s", phase, describe(ctx, o))
		}
		if started && finished(phase) {
			rel.took = time.Since(rel.applied)
			if phase != want {
				return fmt.Errorf("the release of %s ended %s, not %s", rel.version, phase, want)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("the release of %s did not reach %s within %s (phase %q)", rel.version, want, stepTimeout, phase)
		case <-tick.C:
		}
	}
}

// record keeps the canary weights or iterations as they change.
func (r *release) record(o *observation) {
	v := o.canary.Status.CanaryWeight
	if r.seenWhat == "iterations" {
		v = o.canary.Status.Iterations
	}
	if v > 0 && (len(r.seen) == 0 || r.seen[len(r.seen)-1] != v) {
		r.seen = append(r.seen, v)
	}
}

// weightedLine describes a weighted run: where the traffic goes and what Prometheus says.
func (d *demo) weightedLine(ctx context.Context, o *observation) string {
	return fmt.Sprintf("weight %-3d primary %3d%% / canary %3d%%  %s  failed checks %d",
		o.canary.Status.CanaryWeight, o.primary, o.canaryW, d.metricsText(ctx, &o.canary), o.canary.Status.FailedChecks)
}

// metricsText is the canary's success rate and p99 latency, asked of Prometheus with the same
// builtin queries Herald runs.
func (d *demo) metricsText(ctx context.Context, c *flaggerv1.Canary) string {
	success := d.builtin(ctx, c, metricchecks.RequestSuccessRate)
	p99 := d.builtin(ctx, c, metricchecks.RequestDuration)
	text := func(v float64, format string) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	return fmt.Sprintf("success %6s  p99 %5s", text(success, "%.1f%%"), text(p99, "%.0fms"))
}

// builtin runs the Canary's builtin metric check query on Prometheus; NaN when the metric is
// not in the Canary, the query fails or there is no traffic to measure.
func (d *demo) builtin(ctx context.Context, c *flaggerv1.Canary, metric string) float64 {
	a := c.GetAnalysis()
	if a == nil {
		return math.NaN()
	}
	for _, m := range a.Metrics {
		if m.Name != metric {
			continue
		}
		q, err := metricchecks.BuiltinQuery(c.GetProvider(flaggerv1.ProviderIstio), metric)
		if err != nil {
			return math.NaN()
		}
		if q, err = metricchecks.Render(q, metricchecks.ModelFor(c, m)); err != nil {
			return math.NaN()
		}
		v, err := d.query(ctx, q)
		if err != nil {
			return math.NaN()
		}
		if metric == metricchecks.RequestDuration && c.GetProvider(flaggerv1.ProviderIstio) != flaggerv1.ProviderIstio {
			v *= 1000 // the application's histogram is in seconds
		}
		return v
	}
	return math.NaN()
}

// query returns the first value of an instant PromQL query, NaN when there is none.
func (d *demo) query(ctx context.Context, q string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, _, _, err := d.prom.Query(ctx, q, time.Now())
	if err != nil {
		return math.NaN(), fmt.Errorf("prometheus query %q: %w", q, err)
	}
	vec, ok := res.(model.Vector)
	if !ok {
		return math.NaN(), fmt.Errorf("prometheus query %q: a %s, not a vector", q, res.Type())
	}
	if len(vec) == 0 {
		return math.NaN(), nil
	}
	return float64(vec[0].Value), nil
}

// history returns the distinct successive values a query's series took between from and
// to: every sample Prometheus scraped, read through a range selector.
func (d *demo) history(ctx context.Context, q string, from, to time.Time) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ranged := fmt.Sprintf("%s[%dms]", q, to.Sub(from).Milliseconds())
	res, _, _, err := d.prom.Query(ctx, ranged, to)
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", ranged, err)
	}
	matrix, ok := res.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus query %q: a %s, not a matrix", ranged, res.Type())
	}
	var values []float64
	for _, series := range matrix {
		for _, p := range series.Values {
			if v := float64(p.Value); len(values) == 0 || values[len(values)-1] != v {
				values = append(values, v)
			}
		}
	}
	return values, nil
}

// settled waits until the VirtualService sends everything to the primary and the canary
// Deployment is scaled to zero: what a finished run leaves behind.
func (d *demo) settled(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := d.observe(ctx)
		if err != nil {
			return err
		}
		var dep appsv1.Deployment
		if err := d.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &dep); err != nil {
			return fmt.Errorf("reading deployment %s/%s: %w", namespace, name, err)
		}
		replicas := int32(-1)
		if dep.Spec.Replicas != nil {
			replicas = *dep.Spec.Replicas
		}
		if o.primary == 100 && o.canaryW == 0 && replicas == 0 {
			say("%s %s: primary 100%% / canary 0%%; Deployment %s scaled to 0", d.routeKind(), name, name)
			return d.scrapedIdle(ctx)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the run the %s sends %d%% to the primary and %d%% to the canary, and %s has %d replicas; want 100/0 and 0",
				d.routeKind(), o.primary, o.canaryW, name, replicas)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// scrapedIdle waits until Prometheus has scraped Herald's canary weight back at 0, so that
// the record of the next release starts from the end of this one.
func (d *demo) scrapedIdle(ctx context.Context) error {
	q := fmt.Sprintf(`flagger_canary_weight{workload=%q,namespace=%q}`, name, namespace)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := d.query(ctx, q)
		if err != nil {
			return err
		}
		if v == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus still has %s at %v: is it scraping Herald's metrics?", q, v)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// windowClear waits until Prometheus's 30 s window no longer holds requests the canary
// answered: the next version must be judged on its own requests, not on a bad
// predecessor's.
func (d *demo) windowClear(ctx context.Context) error {
	q := fmt.Sprintf(`sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace=%q,destination_workload=%q}[30s]))`, namespace, name)
	deadline := time.Now().Add(stepTimeout)
	for {
		v, err := d.query(ctx, q)
		if err != nil {
			return err
		}
		if math.IsNaN(v) || v == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the canary's requests never left Prometheus's 30 s window")
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// seenText is the weights or iterations of a release, for the summary.
func (r *release) seenText() string {
	if len(r.seen) == 0 {
		return r.seenWhat + " -"
	}
	parts := make([]string, len(r.seen))
	for i, v := range r.seen {
		parts[i] = fmt.Sprint(v)
	}
	return r.seenWhat + " " + strings.Join(parts, " ")
}
