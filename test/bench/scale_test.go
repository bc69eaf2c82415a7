package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

// BenchmarkScale runs N Deployments with blue/green Canaries (provider kubernetes) on a fresh
// local control plane, once under Herald and once under Flagger 1.44, and reports side by
// side: the bulk apply of the N Deployments and Canaries (with Herald running; and with no
// controller, before Flagger starts), the time to all Initialized, reconciles and API server
// requests per Canary, RSS and idle CPU, then 20 releases at once: detection (apply →
// Progressing) and apply → Succeeded against the ideal (iterations × interval). Herald's
// releases run a second time with extraIterations more analysis steps, for the reconciles per
// analysis step while only steps run.
//
// `make bench` runs the short form (N=20, 10 s idle); `make bench-scale` the long one
// (HERALD_SCALE_N="100 300 1000"). HERALD_SCALE_CONTROLLERS runs one side only ("herald" or
// "flagger"); HERALD_SCALE_FLAGS adds flags to Herald's command line. Before them, at each N, the
// bulk apply with and without Herald is sampled on fresh control planes (applyratio_test.go;
// HERALD_SCALE_APPLY_SAMPLES, default 3, 0 to skip). The tables and a plot of Initialized over
// time are written to bin/bench/scale/.
func BenchmarkScale(b *testing.B) {
	cfg := scaleConfigFromEnv(b)
	ctx := context.Background()
	var flaggerBin, flaggerCRDs string
	if slices.Contains(cfg.controllers, "flagger") {
		var err error
		if flaggerBin, flaggerCRDs, err = cluster.BuildFlagger(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(root, "bin", "bench", "scale")
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	var results []scaleResult
	var ratios []applyRatio
	for _, n := range cfg.sizes {
		if k := applySamples(b); k > 0 && slices.Contains(cfg.controllers, "herald") {
			b.Run(fmt.Sprintf("apply/N=%d", n), func(b *testing.B) {
				r := measureApplyRatio(b, n, k)
				r.report(b)
				ratios = append(ratios, r)
			})
		}
		for _, ctl := range cfg.controllers {
			b.Run(fmt.Sprintf("%s/N=%d", ctl, n), func(b *testing.B) {
				var r scaleResult
				if ctl == "herald" {
					r = runHeraldScale(b, cfg, n)
				} else {
					r = runFlaggerScale(b, cfg, n, flaggerBin, flaggerCRDs)
				}
				r.report(b)
				results = append(results, r)
			})
		}
	}
	if len(results) == 0 && len(ratios) == 0 {
		return // filtered out: keep the last run's figures
	}
	table := applyTable(ratios)
	if len(results) > 0 {
		table = scaleTable(cfg, results) + table
		if err := os.WriteFile(filepath.Join(out, "initialized.svg"), []byte(initializedPlot(results)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(table), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("figures: %s", filepath.Join(out, "results.md"))
}

type scaleConfig struct {
	sizes       []int
	controllers []string // HERALD_SCALE_CONTROLLERS, default "herald flagger"
	interval    time.Duration
	idle        time.Duration
	releases    int
}

func scaleConfigFromEnv(b *testing.B) scaleConfig {
	cfg := scaleConfig{sizes: []int{20}, controllers: []string{"herald", "flagger"}, interval: 10 * time.Second, idle: 10 * time.Second, releases: 20}
	if v := os.Getenv("HERALD_SCALE_CONTROLLERS"); v != "" {
		cfg.controllers = strings.Fields(v)
		for _, c := range cfg.controllers {
			if c != "herald" && c != "flagger" {
				b.Fatalf("HERALD_SCALE_CONTROLLERS: %q is neither herald nor flagger", c)
			}
		}
	}
	if v := os.Getenv("HERALD_SCALE_N"); v != "" {
		cfg.sizes = nil
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("HERALD_SCALE_N: %q is not a count", f)
			}
			cfg.sizes = append(cfg.sizes, n)
		}
	}
	for env, d := range map[string]*time.Duration{"HERALD_SCALE_INTERVAL": &cfg.interval, "HERALD_SCALE_IDLE": &cfg.idle} {
		if v := os.Getenv(env); v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				b.Fatalf("%s: %v", env, err)
			}
			*d = parsed
		}
	}
	return cfg
}

// scaleResult is one controller's run at one N.
type scaleResult struct {
	controller string
	n          int
	// apply is the bulk apply of the N Deployments and Canaries; applyAlone the same with no
	// controller running (measured on Flagger's cluster, before Flagger starts).
	apply, applyAlone time.Duration
	// initialized is the time to all Initialized: from the start of the apply for Herald,
	// from Flagger's start for Flagger (its objects were applied before it ran).
	initialized time.Duration
	// curve is the number of Initialized Canaries over time since the same start.
	curve []point
	// requests is the API server requests per Canary (all clients, counted by the API
	// server) until all were Initialized.
	requests float64
	// init is Herald's work until all were Initialized, per Canary: reconciles of the canary
	// controller, and what woke them (herald_canary_wakeups_total, counted as queued: the queue
	// merges a request for a Canary already waiting, so reconciles can be fewer). release is
	// the same per release of the releases at once, from just before the patches to the last
	// Succeeded; longer per release of the second round, with extraIterations more analysis
	// steps. None of it for Flagger, which walks every Canary each control loop.
	init, release, longer heraldCounts
	// stepReconciles is the reconciles per analysis step: in the second round, over the span
	// in which every canary ran and none was promoting yet, divided by the steps the k
	// Canaries took in it (k × span ÷ interval); NaN when no such span came.
	stepReconciles float64
	rssMB, anonMB  float64
	// floorMB and floorAnonMB are the RSS of floorctl over the same objects (floorRSS).
	floorMB, floorAnonMB float64
	idleCPU              float64 // share of a core over the idle window
	detection, succeeded []time.Duration
	ideal                time.Duration
	// rollouts is, per release, the control plane's own share: the canary's and the
	// primary's rollouts, from when the controller asked for each (see releases).
	rollouts []time.Duration
}

type point struct {
	t time.Duration
	n int
}

func (r scaleResult) report(b *testing.B) {
	b.ReportMetric(r.initialized.Seconds(), "to-all-initialized-s")
	b.ReportMetric(r.apply.Seconds(), "bulk-apply-s")
	b.ReportMetric(r.requests, "api-requests/canary")
	if r.controller == "herald" {
		b.ReportMetric(r.init.reconciles, "reconciles/canary")
		b.ReportMetric(r.release.reconciles, "reconciles/release")
		if !math.IsNaN(r.stepReconciles) {
			b.ReportMetric(r.stepReconciles, "reconciles/analysis-step")
		}
	}
	b.ReportMetric(r.rssMB, "rss-MB")
	if r.floorMB > 0 {
		b.ReportMetric(r.floorMB, "floor-rss-MB")
		b.ReportMetric(r.floorAnonMB, "floor-rss-anon-MB")
	}
	b.ReportMetric(r.anonMB, "rss-anon-MB")
	b.ReportMetric(100*r.idleCPU, "idle-cpu-%")
	if len(r.detection) > 0 {
		b.ReportMetric(quantile(r.detection, 0.5).Seconds(), "detect-p50-s")
		b.ReportMetric(quantile(r.detection, 0.99).Seconds(), "detect-p99-s")
		b.ReportMetric(quantile(r.succeeded, 0.5).Seconds(), "to-succeeded-p50-s")
		b.ReportMetric(r.succeeded[len(r.succeeded)-1].Seconds(), "to-succeeded-max-s")
		b.ReportMetric(quantile(r.rollouts, 0.5).Seconds(), "rollouts-p50-s")
	}
}

// scaleIterations is the analysis steps of each Canary: a release takes scaleIterations
// intervals at best.
const scaleIterations = 2

func scaleCanary(name string, interval time.Duration) *flaggerv1.Canary {
	return &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: interval.String(), Threshold: 2, Iterations: scaleIterations},
		},
	}
}

// applyAll creates the N Deployments (one replica) and Canaries from 8 clients, as a
// `kubectl apply -f dir/` of many files would.
func applyAll(ctx context.Context, c client.Client, n int, interval time.Duration) (time.Duration, error) {
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			name := fmt.Sprintf("app-%04d", i)
			d := rolloutTarget(name)
			d.Spec.Replicas = ptr.To(int32(1))
			if err := c.Create(gctx, d); err != nil {
				return err
			}
			return c.Create(gctx, scaleCanary(name, interval))
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// phases lists the phase of every Canary of the namespace.
func phases(ctx context.Context, c client.Client) (map[string]flaggerv1.CanaryPhase, error) {
	var list flaggerv1.CanaryList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := make(map[string]flaggerv1.CanaryPhase, len(list.Items))
	for _, x := range list.Items {
		out[x.Name] = x.Status.Phase
	}
	return out, nil
}

// waitInitialized waits until n Canaries are Initialized, recording the curve since start.
func waitInitialized(ctx context.Context, c client.Client, n int, start time.Time, timeout time.Duration) ([]point, time.Duration, error) {
	var curve []point
	deadline := time.Now().Add(timeout)
	for {
		ps, err := phases(ctx, c)
		if err != nil {
			return curve, 0, err
		}
		done := 0
		for _, p := range ps {
			if p == flaggerv1.CanaryPhaseInitialized {
				done++
			}
		}
		curve = append(curve, point{time.Since(start), done})
		if done >= n {
			return curve, time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return curve, 0, fmt.Errorf("%d of %d Canaries Initialized after %s", done, n, timeout)
		}
		time.Sleep(time.Second)
	}
}

// releaseImage is the image the releases roll out; releaseImage2 that of the second round.
const (
	releaseImage  = "ghcr.io/stefanprodan/podinfo:6.0.1"
	releaseImage2 = "ghcr.io/stefanprodan/podinfo:6.0.2"
)

// releaseRun is what releases measured, per release and sorted: detection (apply →
// Progressing), apply → Succeeded, and the control plane's own share: from Progressing until
// the canary ran the new revision on every replica, plus from Promoting until the primary did
// (the same for both controllers; the rest is theirs).
type releaseRun struct {
	detect, done, rollouts []time.Duration
	// analysing is the span in which every release's canary ran the new revision and none was
	// promoting yet, so that only analysis steps ran; reconciles the canary controller's
	// reconciles in it (of all N Canaries, the idle ones included), when a count was given;
	// both 0 when there was no such span.
	analysing  time.Duration
	reconciles float64
}

// releases patches the targets of the first k Canaries to image at once and follows the
// releases until each Succeeded. start runs just before the patches (to take the figures the
// releases are measured from); reconciles, when not nil, is read at every poll (Herald's count
// of reconciles).
func releases(ctx context.Context, c client.Client, k int, timeout time.Duration, image string, start func() error, reconciles func() (float64, error)) (run releaseRun, err error) {
	if err := start(); err != nil {
		return run, err
	}
	// A release is the Canary's run of a revision it had not applied yet: a Canary still
	// Succeeded from an earlier release must not count as this one's.
	applied, before := map[string]time.Time{}, map[string]string{}
	for i := range k {
		var cn flaggerv1.Canary
		name := fmt.Sprintf("app-%04d", i)
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cn); err != nil {
			return run, err
		}
		before[name] = cn.Status.LastAppliedSpec
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i := range k {
		g.Go(func() error {
			name := fmt.Sprintf("app-%04d", i)
			patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + image + `"}]}}}}`
			t := time.Now()
			if err := c.Patch(gctx, rolloutTarget(name), client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
				return err
			}
			mu.Lock()
			applied[name] = t
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return run, err
	}
	// Per release, when each was first seen: Progressing, the canary rolled out, Promoting,
	// the primary rolled out, Succeeded.
	type seen struct{ detected, canaryUp, promoting, primaryUp, succeeded time.Time }
	at := map[string]*seen{}
	for name := range applied {
		at[name] = &seen{}
	}
	type sample struct {
		t time.Time
		n float64
	}
	var samples []sample
	deadline := time.Now().Add(timeout)
	for finished := 0; finished < k; {
		if reconciles != nil {
			n, err := reconciles()
			if err != nil {
				return run, err
			}
			samples = append(samples, sample{time.Now(), n})
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("%d of %d releases Succeeded after %s", finished, k, timeout)
		}
		finished = 0
		// One small read per release, not a list of all N Canaries four times a second, which
		// at N = 1,000 loads the API server the controllers share.
		for name, s := range at {
			if !s.succeeded.IsZero() {
				finished++
				continue
			}
			var cn flaggerv1.Canary
			if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cn); err != nil {
				return run, err
			}
			now := time.Now()
			first := func(t *time.Time) {
				if t.IsZero() {
					*t = now
				}
			}
			switch cn.Status.Phase {
			case flaggerv1.CanaryPhaseProgressing:
				first(&s.detected)
			case flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising:
				first(&s.detected)
				first(&s.promoting)
			case flaggerv1.CanaryPhaseSucceeded:
				if cn.Status.LastAppliedSpec == before[name] {
					break // not this release's yet
				}
				first(&s.detected)
				first(&s.promoting)
				first(&s.succeeded)
			}
			if !s.detected.IsZero() && s.canaryUp.IsZero() {
				if up, err := rolledOut(ctx, c, name, image); err != nil {
					return run, err
				} else if up {
					first(&s.canaryUp)
				}
			}
			if !s.promoting.IsZero() && s.primaryUp.IsZero() {
				if up, err := rolledOut(ctx, c, name+"-primary", image); err != nil {
					return run, err
				} else if up {
					first(&s.primaryUp)
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	var allUp, firstPromoting time.Time
	for _, s := range at {
		if s.canaryUp.After(allUp) {
			allUp = s.canaryUp
		}
		if firstPromoting.IsZero() || s.promoting.Before(firstPromoting) {
			firstPromoting = s.promoting
		}
	}
	if len(samples) > 0 && !allUp.IsZero() && firstPromoting.After(allUp) {
		// The samples inside the span: the first at or after its start, the last before its end.
		i := slices.IndexFunc(samples, func(s sample) bool { return !s.t.Before(allUp) })
		j := slices.IndexFunc(samples, func(s sample) bool { return !s.t.Before(firstPromoting) }) - 1
		if i >= 0 && j > i {
			run.analysing, run.reconciles = samples[j].t.Sub(samples[i].t), samples[j].n-samples[i].n
		}
	}
	var detect, done, rollouts []time.Duration
	for name, s := range at {
		t := applied[name]
		detect, done = append(detect, s.detected.Sub(t)), append(done, s.succeeded.Sub(t))
		share := time.Duration(0)
		if !s.canaryUp.IsZero() {
			share += max(0, s.canaryUp.Sub(s.detected))
		}
		if !s.primaryUp.IsZero() {
			share += max(0, s.primaryUp.Sub(s.promoting))
		}
		rollouts = append(rollouts, share)
	}
	slices.Sort(detect)
	slices.Sort(done)
	slices.Sort(rollouts)
	run.detect, run.done, run.rollouts = detect, done, rollouts
	return run, nil
}

// rolledOut reports whether Deployment name runs image on every replica.
func rolledOut(ctx context.Context, c client.Client, name, image string) (bool, error) {
	d := rolloutTarget(name)
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	st := d.Status
	return len(d.Spec.Template.Spec.Containers) > 0 && d.Spec.Template.Spec.Containers[0].Image == image &&
		d.Spec.Replicas != nil && *d.Spec.Replicas > 0 && st.ObservedGeneration >= d.Generation &&
		st.UpdatedReplicas == *d.Spec.Replicas && st.Replicas == st.UpdatedReplicas && st.AvailableReplicas == st.UpdatedReplicas, nil
}

// apiRequests is the API server's count of the requests it has served (apiserver_request_total).
func apiRequests(ctx context.Context, cfg *rest.Config) (float64, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	fams, err := harness.ParseMetrics(resp.Body)
	if err != nil {
		return 0, err
	}
	if fams["apiserver_request_total"] == nil {
		return 0, fmt.Errorf("the API server's metrics have no apiserver_request_total")
	}
	return fams.SumBy("apiserver_request_total", "", nil)[""], nil
}

// heraldCounts is what Herald's metrics say of the Canary controller's work so far.
type heraldCounts struct {
	reconciles float64
	wakeups    map[string]float64 // herald_canary_wakeups_total by source
}

func scrapeHerald(url string) (heraldCounts, error) {
	fams, err := harness.ScrapeMetrics(url)
	if err != nil {
		return heraldCounts{}, err
	}
	if fams["controller_runtime_reconcile_total"] == nil {
		return heraldCounts{}, fmt.Errorf("%s has no controller_runtime_reconcile_total", url)
	}
	return heraldCounts{
		reconciles: fams.SumBy("controller_runtime_reconcile_total", "", map[string]string{"controller": "canary"})[""],
		wakeups:    fams.SumBy("herald_canary_wakeups_total", "source", nil),
	}, nil
}

// per is what was done between c0 and c, per unit (per Canary, per release).
func (c heraldCounts) per(c0 heraldCounts, units int) heraldCounts {
	out := heraldCounts{reconciles: (c.reconciles - c0.reconciles) / float64(units), wakeups: map[string]float64{}}
	for k, v := range c.wakeups {
		if d := (v - c0.wakeups[k]) / float64(units); d != 0 {
			out.wakeups[k] = d
		}
	}
	return out
}

// idle measures RSS (and its anonymous part: the heap, stacks and runtime, not the mapped
// binary), and CPU as a share of one core over d, of process pid.
func idle(pid int, d time.Duration) (rssMB, anonMB, cpu float64, err error) {
	before, err := harness.ProcCPUTime(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(d)
	after, err := harness.ProcCPUTime(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	st, err := harness.ProcStatus(pid)
	return float64(st.VmRSS) / (1 << 20), float64(st.RssAnon) / (1 << 20), float64(after-before) / float64(d), err
}

func nodesFor(n int) int { return n/400 + 1 }

func runHeraldScale(b *testing.B, cfg scaleConfig, n int) scaleResult {
	ctx := context.Background()
	c, h, env := startHeraldWith(b, cluster.Options{Nodes: nodesFor(n)}, strings.Fields(os.Getenv("HERALD_SCALE_FLAGS"))...)
	_ = flaggerv1.AddToScheme(c.Scheme())
	r := scaleResult{controller: "herald", n: n, ideal: scaleIterations * cfg.interval}
	reqs0, err := apiRequests(ctx, env.Config)
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuByCommand()
	start := time.Now()
	if r.apply, err = applyAll(ctx, c, n, cfg.interval); err != nil {
		b.Fatal(err)
	}
	progress("herald N=%d: bulk apply %.1f s; CPU meanwhile: %s", n, r.apply.Seconds(), cpuSince(cpu0))
	if r.curve, r.initialized, err = waitInitialized(ctx, c, n, start, initTimeout(n)); err != nil {
		b.Fatal(err)
	}
	reqs1, err := apiRequests(ctx, env.Config)
	if err != nil {
		b.Fatal(err)
	}
	r.requests = (reqs1 - reqs0 - float64(2*n)) / float64(n) // less the apply's own creates
	progress("herald N=%d: all Initialized in %.1f s", n, r.initialized.Seconds())
	counts, err := scrapeHerald(h.MetricsURL)
	if err != nil {
		b.Fatal(err)
	}
	r.init = counts.per(heraldCounts{}, n)
	if r.rssMB, r.anonMB, r.idleCPU, err = idle(h.Pid(), cfg.idle); err != nil {
		b.Fatal(err)
	}
	if r.floorMB, r.floorAnonMB, err = floorRSS(ctx, env, cfg.idle); err != nil {
		b.Logf("no floor under the RSS: %v", err) // an auxiliary figure: the run goes on
	} else {
		progress("herald N=%d: RSS %.0f MB (%.0f MB anonymous); a bare controller caching the same Deployments and Services: %.0f MB (%.0f MB)", n, r.rssMB, r.anonMB, r.floorMB, r.floorAnonMB)
	}
	k := min(cfg.releases, n)
	var c0 heraldCounts
	scrape := func() (err error) {
		c0, err = scrapeHerald(h.MetricsURL)
		return err
	}
	first, err := releases(ctx, c, k, releaseTimeout(cfg), releaseImage, scrape, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.detection, r.succeeded, r.rollouts = first.detect, first.done, first.rollouts
	c1, err := scrapeHerald(h.MetricsURL)
	if err != nil {
		b.Fatal(err)
	}
	r.release = c1.per(c0, k)
	progress("herald N=%d: %d releases Succeeded, p50 %.1f s; now again with %d more analysis steps", n, k, quantile(r.succeeded, 0.5).Seconds(), extraIterations)

	// The same releases again with extraIterations more analysis steps each, long enough for a
	// span in which only analysis steps run: its reconciles are the cost of a step.
	longerRuns := fmt.Sprintf(`{"spec":{"analysis":{"iterations":%d}}}`, scaleIterations+extraIterations)
	for i := range k {
		cn := &flaggerv1.Canary{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("app-%04d", i)}}
		if err := c.Patch(ctx, cn, client.RawPatch(types.MergePatchType, []byte(longerRuns))); err != nil {
			b.Fatal(err)
		}
	}
	// The passes the spec changes wake are not the releases': wait until each has had its pass.
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for i := range k {
			var cn flaggerv1.Canary
			if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: fmt.Sprintf("app-%04d", i)}, &cn); err != nil {
				return false, err
			}
			if cn.Status.ObservedGeneration != cn.Generation {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		b.Fatalf("the Canaries did not take their longer analysis: %v", err)
	}
	count := func() (float64, error) {
		counts, err := scrapeHerald(h.MetricsURL)
		return counts.reconciles, err
	}
	longer, err := releases(ctx, c, k, releaseTimeout(cfg)+extraIterations*cfg.interval, releaseImage2, scrape, count)
	if err != nil {
		b.Fatal(err)
	}
	if longer.analysing > 0 {
		r.stepReconciles = longer.reconciles / (float64(k) * longer.analysing.Seconds() / cfg.interval.Seconds())
	} else {
		r.stepReconciles = math.NaN()
	}
	progress("herald N=%d: second round: %.1f s with only analysis steps running, %.0f reconciles in it: %.2f per step", n, longer.analysing.Seconds(), longer.reconciles, r.stepReconciles)
	c2, err := scrapeHerald(h.MetricsURL)
	if err != nil {
		b.Fatal(err)
	}
	r.longer = c2.per(c0, k)
	return r
}

// progress tells the one watching a run of many minutes where it is (a benchmark's own log
// shows only at its end).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" bench-scale: "+format+"\n", args...)
}

// cpuByCommand is the CPU time every process of the machine has used so far, by command name:
// what the control plane, the controller and the benchmark itself spend during the apply.
func cpuByCommand() map[string]float64 {
	out := map[string]float64{}
	procs, err := procfs.AllProcs()
	if err != nil {
		return out
	}
	for _, p := range procs {
		if st, err := p.Stat(); err == nil {
			out[st.Comm] += st.CPUTime()
		}
	}
	return out
}

// cpuSince lists the CPU seconds each command used since before, the busiest first.
func cpuSince(before map[string]float64) string {
	after := cpuByCommand()
	names := slices.Collect(maps.Keys(after))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(after[b]-before[b], after[a]-before[a]) })
	var parts []string
	for _, name := range names {
		if d := after[name] - before[name]; d >= 0.1 {
			parts = append(parts, fmt.Sprintf("%s %.1f s", name, d))
		}
	}
	return strings.Join(parts, ", ")
}

// extraIterations is how many more analysis steps the second round of releases takes: enough
// for a span in which all the canaries run and none is promoting yet, although the control
// plane rolls the canaries out minutes apart at N = 1,000.
const extraIterations = 8

func releaseTimeout(cfg scaleConfig) time.Duration { return 10*time.Minute + 20*cfg.interval }

func runFlaggerScale(b *testing.B, cfg scaleConfig, n int, binary, crds string) scaleResult {
	ctx := context.Background()
	env, err := cluster.Start(ctx, cluster.Options{Nodes: nodesFor(n)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	if out, err := exec.CommandContext(ctx, filepath.Join(env.BinDir, "kubectl"), "--kubeconfig", env.Kubeconfig,
		"apply", "--server-side", "-f", crds).CombinedOutput(); err != nil {
		b.Fatalf("Flagger's CRDs: %v\n%s", err, out)
	}
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	_ = flaggerv1.AddToScheme(c.Scheme())
	cfg2 := *env.Config
	cfg2.QPS, cfg2.Burst = 2000, 2000
	if c, err = client.New(&cfg2, client.Options{Scheme: c.Scheme()}); err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		b.Fatal(err)
	}
	// The CRDs are served once established: until then the kind is unknown.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return c.List(ctx, &flaggerv1.CanaryList{}, client.InNamespace(namespace)) == nil, nil
	}); err != nil {
		b.Fatalf("Flagger's CRDs not served: %v", err)
	}
	r := scaleResult{controller: "flagger", n: n, ideal: scaleIterations * cfg.interval}
	// Flagger has no admission webhook: this is the apply with no controller in the way.
	cpu0 := cpuByCommand()
	if r.applyAlone, err = applyAll(ctx, c, n, cfg.interval); err != nil {
		b.Fatal(err)
	}
	r.apply = r.applyAlone
	progress("flagger N=%d: bulk apply %.1f s (no controller); CPU meanwhile: %s", n, r.apply.Seconds(), cpuSince(cpu0))
	reqs0, err := apiRequests(ctx, env.Config)
	if err != nil {
		b.Fatal(err)
	}
	port, err := freeTCPPort()
	if err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(env.Dir, "flagger.log"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	f, err := harness.StartProcess(ctx, harness.ProcessOptions{
		Name: "flagger", Binary: binary, Out: logFile,
		Args: []string{"-kubeconfig=" + env.Kubeconfig, "-mesh-provider=kubernetes", "-log-level=error",
			"-metrics-server=http://127.0.0.1:1", "-port=" + strconv.Itoa(port)},
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port), StopGrace: 5 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.Stop)
	if r.curve, r.initialized, err = waitInitialized(ctx, c, n, start, initTimeout(n)); err != nil {
		b.Fatal(err)
	}
	progress("flagger N=%d: all Initialized in %.1f s", n, r.initialized.Seconds())
	reqs1, err := apiRequests(ctx, env.Config)
	if err != nil {
		b.Fatal(err)
	}
	r.requests = (reqs1 - reqs0) / float64(n)
	if r.rssMB, r.anonMB, r.idleCPU, err = idle(f.Pid(), cfg.idle); err != nil {
		b.Fatal(err)
	}
	run, err := releases(ctx, c, min(cfg.releases, n), 20*time.Minute+20*cfg.interval, releaseImage, func() error { return nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.detection, r.succeeded, r.rollouts = run.detect, run.done, run.rollouts
	return r
}

// floorRSS runs test/bench/floorctl, a controller-runtime controller that only caches every
// Deployment and Service of the cluster, until its caches are synced and it has idled for d, and
// returns its RSS and anonymous part: the least a controller that reads these objects from a
// cache, as Herald does, holds; against it Herald's own figure is read.
func floorRSS(ctx context.Context, env *cluster.Cluster, d time.Duration) (rssMB, anonMB float64, err error) {
	bin, err := harness.Build(ctx, "./test/bench/floorctl")
	if err != nil {
		return 0, 0, err
	}
	port, err := freeTCPPort()
	if err != nil {
		return 0, 0, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out bytes.Buffer
	p, err := harness.StartProcess(ctx, harness.ProcessOptions{
		Name: "floorctl", Binary: bin, Out: &out,
		Args:     []string{"-kubeconfig-file=" + env.Kubeconfig, "-probe-address=" + addr},
		ReadyURL: "http://" + addr + "/readyz", ReadyTimeout: 5 * time.Minute,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%w\n%s", err, out.String())
	}
	defer p.Stop()
	rssMB, anonMB, _, err = idle(p.Pid(), d)
	return rssMB, anonMB, err
}

func initTimeout(n int) time.Duration { return 5*time.Minute + time.Duration(n)*2*time.Second }

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// scaleTable is the side-by-side table of the note.
func scaleTable(cfg scaleConfig, rs []scaleResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Blue/green Canaries (provider kubernetes, interval %s, iterations %d), one fresh local control plane per run; %s idle window.\n\n", cfg.interval, scaleIterations, cfg.idle)
	sb.WriteString("| N | controller | bulk apply (no controller) | to all Initialized | reconciles / Canary (init) | reconciles / release (÷ iterations) | reconciles / analysis step | API requests / Canary | RSS (anonymous) | idle CPU | releases | detection p50 / p99 | apply → Succeeded p50 / max (ideal: iterations × interval + the control plane's rollouts, p50) |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	for _, r := range rs {
		apply := sec(r.apply)
		if r.applyAlone > 0 {
			apply = "(" + sec(r.applyAlone) + ")"
		}
		rec, relRec, step := "–", "–", "–"
		if r.controller == "herald" {
			rec = fmt.Sprintf("%.1f", r.init.reconciles)
			relRec = fmt.Sprintf("%.1f (%.1f)", r.release.reconciles, r.release.reconciles/scaleIterations)
			step = fmt.Sprintf("%.1f", r.stepReconciles)
			if math.IsNaN(r.stepReconciles) {
				step = "(no span with only analysis steps)"
			}
		}
		det, suc := "–", "–"
		if len(r.detection) > 0 {
			det = sec(quantile(r.detection, 0.5)) + " / " + sec(quantile(r.detection, 0.99))
			suc = sec(quantile(r.succeeded, 0.5)) + " / " + sec(r.succeeded[len(r.succeeded)-1]) + " (" + sec(r.ideal) + " + " + sec(quantile(r.rollouts, 0.5)) + ")"
		}
		fmt.Fprintf(&sb, "| %d | %s | %s | %s | %s | %s | %s | %.1f | %.0f MB (%.0f MB) | %.1f%% | %d | %s | %s |\n",
			r.n, r.controller, apply, sec(r.initialized), rec, relRec, step, r.requests, r.rssMB, r.anonMB, 100*r.idleCPU, len(r.detection), det, suc)
	}
	if slices.ContainsFunc(rs, func(r scaleResult) bool { return r.controller == "herald" }) {
		fmt.Fprintf(&sb, "\nWhat woke Herald's Canaries (herald_canary_wakeups_total, as queued: the queue merges a request for a Canary already waiting; the other reconciles ran on timers or retries). Per Canary until all were Initialized; per release of the first round (%d iterations), and of the second (%d):\n\n", scaleIterations, scaleIterations+extraIterations)
	}
	for _, r := range rs {
		if r.controller != "herald" {
			continue
		}
		fmt.Fprintf(&sb, "- N = %d: initialisation %s; release %s; longer release %s\n", r.n, bySource(r.init.wakeups), bySource(r.release.wakeups), bySource(r.longer.wakeups))
	}
	headed := false
	for _, r := range rs {
		if r.floorMB == 0 {
			continue
		}
		if !headed {
			headed = true
			sb.WriteString("\nThe floor under the RSS: test/bench/floorctl, a controller-runtime controller that only caches every Deployment and Service of the same cluster (typed, without managed fields, as Herald's cache), measured after the same idle window. Flagger caches neither: it reads them from the API server.\n\n")
		}
		fmt.Fprintf(&sb, "- N = %d: %.0f MB (%.0f MB anonymous); Herald %.0f MB (%.0f MB)\n", r.n, r.floorMB, r.floorAnonMB, r.rssMB, r.anonMB)
	}
	return sb.String()
}

// bySource lists wakeups as "source n, ...".
func bySource(w map[string]float64) string {
	keys := slices.Sorted(maps.Keys(w))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, w[k]))
	}
	return strings.Join(parts, ", ")
}

// initializedPlot draws, per run, the share of Canaries Initialized over time as an SVG.
func initializedPlot(rs []scaleResult) string {
	const w, h, pad = 720.0, 400.0, 50.0
	maxT := 1.0
	for _, r := range rs {
		if len(r.curve) > 0 {
			maxT = max(maxT, r.curve[len(r.curve)-1].t.Seconds())
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="20">Canaries Initialized (share of N) over seconds</text>`+"\n", pad)
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n",
		pad, h-pad, w-pad, h-pad, pad, pad, pad, h-pad)
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f">0</text><text x="%.0f" y="%.0f">%.0f s</text><text x="5" y="%.0f">100%%</text>`+"\n",
		pad, h-pad+15, w-pad-30, h-pad+15, maxT, pad+4)
	colors := map[string][]string{"herald": {"#1f77b4", "#6baed6", "#08519c"}, "flagger": {"#d62728", "#fc9272", "#a50f15"}}
	seen := map[string]int{}
	for i, r := range rs {
		col := colors[r.controller][seen[r.controller]%3]
		seen[r.controller]++
		var pts []string
		for _, p := range r.curve {
			x := pad + (w-2*pad)*p.t.Seconds()/maxT
			y := h - pad - (h-2*pad)*float64(p.n)/float64(r.n)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" fill="%s">%s N=%d</text>`+"\n", w-pad-120, pad+15*float64(i+1), col, r.controller, r.n)
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}
