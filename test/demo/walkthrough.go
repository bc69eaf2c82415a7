package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// The five parts of the walkthrough, in order.

// install applies config/samples/<provider> and waits until Herald has initialised the Canary.
func (d *demo) install(ctx context.Context) error {
	if d.gatewayAPI() {
		step("Applying config/samples/gatewayapi: namespace test, Gateway public, Deployment podinfo, Canary podinfo (provider gatewayapi:v1)")
	} else {
		step("Applying config/samples/istio: namespace test, Deployment podinfo, Canary podinfo (provider istio)")
	}
	if err := d.kubectl(ctx, "apply", "-k", filepath.Join(d.root, "config", "samples", d.provider)); err != nil {
		return err
	}
	say("Herald's webhook accepts the Canary with a warning worth knowing: each check's 30 s window also")
	say("covers the two steps before it. A shorter window would hold too few scrapes on a real cluster.")
	if d.gatewayAPI() {
		step("Herald initialises the Canary: podinfo-primary, Services, HTTPRoute (the simulated gateway accepts it)")
	} else {
		step("Herald initialises the Canary: podinfo-primary, Services, DestinationRules, VirtualService")
	}
	if err := d.kubectl(ctx, "-n", namespace, "wait", "canary/"+name, "--for=jsonpath={.status.phase}=Initialized",
		fmt.Sprintf("--timeout=%ds", int(stepTimeout.Seconds()))); err != nil {
		return err
	}
	if d.gatewayAPI() {
		return d.kubectl(ctx, "-n", namespace, "get", "canaries,gateways,httproutes,deployments")
	}
	return d.kubectl(ctx, "-n", namespace, "get", "canaries,virtualservices,destinationrules,deployments")
}

// goodVersion releases 6.0.1, which answers every request in 40 ms, and follows Herald
// shifting the traffic to it 10% at a time until it is promoted.
func (d *demo) goodVersion(ctx context.Context) error {
	step("Release 1: podinfo 6.0.1, a good version (no errors, 40 ms)")
	say("Every 10 s Herald checks the canary's success rate and p99 latency in Prometheus and, if both")
	say("pass, gives it 10%% more traffic, up to 50%%; then it promotes it. About a minute.")
	rel := &release{version: "6.0.1", strategy: "canary, 10% steps", seenWhat: "weights"}
	d.releases = append(d.releases, rel)
	rel.applied = time.Now()
	if err := d.newVersion(ctx, rel.version, 0, "40ms"); err != nil {
		return err
	}
	if err := d.follow(ctx, rel, flaggerv1.CanaryPhaseSucceeded, d.weightedLine); err != nil {
		return err
	}
	rel.result = "promoted"
	say("promoted %.1fs after the patch", rel.took.Seconds())
	if err := d.settled(ctx); err != nil {
		return err
	}
	return d.showDeployments(ctx)
}

// badVersion releases 6.0.2, which fails 30% of its requests, and follows Herald rolling it
// back after two failed checks.
func (d *demo) badVersion(ctx context.Context) error {
	step("Release 2: podinfo 6.0.2, a bad version (30%% of its requests fail)")
	say("Its success rate is far below 99%%: each check fails, and the second failure rolls it back.")
	say("(The first numbers still include 6.0.1's requests: they are in the 30 s window.)")
	rel := &release{version: "6.0.2", strategy: "canary, 10% steps", seenWhat: "weights"}
	d.releases = append(d.releases, rel)
	rel.applied = time.Now()
	if err := d.newVersion(ctx, rel.version, 0.3, "40ms"); err != nil {
		return err
	}
	if err := d.follow(ctx, rel, flaggerv1.CanaryPhaseFailed, d.weightedLine); err != nil {
		return err
	}
	rel.result = "rolled back"
	say("rolled back %.1fs after the patch; Herald's warnings say why:", rel.took.Seconds())
	if err := d.kubectlTail(ctx, 5, "-n", namespace, "events", "--for", "canary/"+name, "--types=Warning"); err != nil {
		return err
	}
	if err := d.settled(ctx); err != nil {
		return err
	}
	return d.showDeployments(ctx)
}

// abTest turns the Canary into an A/B test and releases 6.0.3: only requests with the header
// x-canary: insider reach it, for three checks, before it is promoted.
func (d *demo) abTest(ctx context.Context) error {
	step("Release 3: an A/B test. The Canary now sends requests with x-canary: insider to the new version")
	if err := d.kubectl(ctx, "apply", "-f", filepath.Join(d.root, "config", "samples", d.provider, "podinfo-abtest.yaml")); err != nil {
		return err
	}
	say("Waiting for the failed requests of 6.0.2 to leave Prometheus's 30 s window, so that they do")
	say("not count against 6.0.3 (a rolled-back canary gets no more traffic, but its past stays in the window)...")
	if err := d.windowClear(ctx); err != nil {
		return err
	}
	say("clear at %s", stamp())
	say("Then podinfo 6.0.3, a good version; three checks 10 s apart, then promotion.")
	rel := &release{version: "6.0.3", strategy: "A/B, x-canary: insider", seenWhat: "iterations"}
	d.releases = append(d.releases, rel)
	ab := newABCounts(d)
	rel.applied = time.Now()
	if err := d.newVersion(ctx, rel.version, 0, "40ms"); err != nil {
		return err
	}
	if err := d.follow(ctx, rel, flaggerv1.CanaryPhaseSucceeded, ab.line); err != nil {
		return err
	}
	rel.result = "promoted"
	say("promoted %.1fs after the patch", rel.took.Seconds())
	insider, plain, primary := ab.counts()
	say("during the test the canary answered %d insider requests and %d plain ones; the primary answered %d plain ones", insider, plain, primary)
	if plain != 0 {
		return fmt.Errorf("%d requests without the header x-canary: insider reached the canary during the A/B test", plain)
	}
	if insider == 0 {
		return fmt.Errorf("no insider request reached the canary during the A/B test")
	}
	if err := d.settled(ctx); err != nil {
		return err
	}
	return d.showDeployments(ctx)
}

// abCounts reads the simulator's per-class counters relative to the start of the A/B test:
// the weighted releases before it sent plain requests to the canary too.
type abCounts struct {
	d                               *demo
	insider0, plain0, plainPrimary0 int64
}

func newABCounts(d *demo) *abCounts {
	a := &abCounts{d: d}
	a.insider0, a.plain0, a.plainPrimary0 = a.raw()
	return a
}

func (a *abCounts) raw() (insiderToCanary, plainToCanary, plainToPrimary int64) {
	s := a.d.sim
	return s.ServedClass(namespace, name, "insider", name),
		s.ServedClass(namespace, name, "plain", name),
		s.ServedClass(namespace, name, "plain", name+"-primary")
}

func (a *abCounts) counts() (insiderToCanary, plainToCanary, plainToPrimary int64) {
	i, p, pp := a.raw()
	return i - a.insider0, p - a.plain0, pp - a.plainPrimary0
}

// line describes an A/B run: iterations, who reached the canary, and what Prometheus says.
func (a *abCounts) line(ctx context.Context, o *observation) string {
	insider, plain, primary := a.counts()
	return fmt.Sprintf("iteration %d/3  insider route: canary %3d%%  to canary: %3d insider, %d plain  to primary: %4d plain  %s  failed checks %d",
		o.canary.Status.Iterations, o.canaryW, insider, plain, primary, a.d.metricsText(ctx, &o.canary), o.canary.Status.FailedChecks)
}

func (d *demo) showDeployments(ctx context.Context) error {
	return d.kubectl(ctx, "-n", namespace, "get", "deployments", "-o",
		"custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,READY:.status.readyReplicas,IMAGE:.spec.template.spec.containers[0].image")
}

// summary prints the releases, Herald's Flagger-compatible metrics and where the logs are.
func (d *demo) summary(ctx context.Context) error {
	step("Summary")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "    version\tstrategy\tresult\tpatch→result\tseen")
	for _, r := range d.releases {
		fmt.Fprintf(w, "    %s\t%s\t%s\t%.1fs\t%s\n", r.version, r.strategy, r.result, r.took.Seconds(), r.seenText())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	say("")
	say("Herald's metrics (Flagger's names, so Flagger's dashboards work), from %s:", d.herald.MetricsURL)
	if err := showMetrics(d.herald.MetricsURL); err != nil {
		return err
	}
	if err := d.weightHistory(ctx); err != nil {
		return err
	}
	say("Herald's log: %s; the simulator's: %s", d.heraldLog, filepath.Join(d.logDir, "traffic.log"))
	say("Total: %.0fs", time.Since(start).Seconds())
	return nil
}

// weightHistory shows that Prometheus scraped Herald too: its record of flagger_canary_weight
// during each release retraces the steps.
func (d *demo) weightHistory(ctx context.Context) error {
	say("")
	say("flagger_canary_weight of podinfo during each release, as Prometheus recorded it from Herald:")
	q := fmt.Sprintf(`flagger_canary_weight{workload=%q,namespace=%q}`, name, namespace)
	for i, r := range d.releases {
		// Each release ended with Prometheus scraping the weight back at 0 (see scrapedIdle)
		// before the next one began.
		end := time.Now()
		if i+1 < len(d.releases) {
			end = d.releases[i+1].applied
		}
		values, err := d.history(ctx, q, r.applied, end)
		if err != nil {
			return err
		}
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = fmt.Sprintf("%.0f", v)
		}
		say("  %s: %s", r.version, strings.Join(parts, " → "))
	}
	return nil
}

// showMetrics prints Herald's flagger_* series, without histogram buckets.
func showMetrics(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "flagger_") && !strings.Contains(l, "_bucket{") {
			say("  %s", l)
		}
	}
	return sc.Err()
}

// indentText indents every line of s like command output.
func indentText(s string) string {
	return "      " + strings.ReplaceAll(s, "\n", "\n      ")
}
