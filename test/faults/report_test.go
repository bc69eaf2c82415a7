package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
)

// stepMessages are Herald's events that announce a step of a revision's run: each may be
// published at most once per Canary and revision.
var stepMessages = []*regexp.Regexp{
	regexp.MustCompile(`^Initialization done`),
	regexp.MustCompile(`^New revision detected`),
	regexp.MustCompile(`^Starting canary analysis`),
	regexp.MustCompile(`^Advance \S+ canary weight \d+$`),
	regexp.MustCompile(`^Advance \S+ canary iteration \d+/\d+$`),
	regexp.MustCompile(`^Advance \S+ primary weight \d+$`),
	regexp.MustCompile(`^Routing all traffic to canary`),
	regexp.MustCompile(`^Copying \S+ template spec`),
	regexp.MustCompile(`^Promotion completed`),
	regexp.MustCompile(`^Canary failed`),
	regexp.MustCompile(`^Canary promotion failed`),
}

func isStep(message string) bool {
	for _, re := range stepMessages {
		if re.MatchString(message) {
			return true
		}
	}
	return false
}

// checkSteps counts, per Canary and revision, the step events Herald published (through the
// event hooks, which carry the revision) and the successful pre- and post-rollout hook calls,
// and reports every step that happened twice; rollout hooks answered twice within half an
// interval for one revision are one step done twice.
func checkSteps(calls []hookCall) []violation {
	type key struct{ canary, checksum, message string }
	seen := map[key][]time.Time{}
	var order []key
	var lastRollout = map[string]hookCall{}
	var out []violation
	for _, c := range calls {
		subject := c.namespace + "/" + c.canary
		switch {
		case c.path == hookEvent && isStep(c.message):
			k := key{subject, c.checksum, c.message}
			if len(seen[k]) == 0 {
				order = append(order, k)
			}
			seen[k] = append(seen[k], c.at)
		case (c.path == hookPre || c.path == hookPost) && c.code >= 200 && c.code < 300:
			k := key{subject, c.checksum, c.path + "-rollout hook answered 200"}
			if len(seen[k]) == 0 {
				order = append(order, k)
			}
			seen[k] = append(seen[k], c.at)
		case (c.path == hookRollout || c.path == hookJudge) && c.code >= 200 && c.code < 300:
			k := subject + "/" + c.checksum
			if prev, ok := lastRollout[k]; ok && c.at.Sub(prev.at) < interval/2 {
				out = append(out, violation{at: c.at, kind: violationTwice, subject: subject,
					detail: fmt.Sprintf("rollout hook of revision %.8s answered 200 twice %s apart (%s and %s)", c.checksum,
						c.at.Sub(prev.at).Round(10*time.Millisecond), log.at(prev.at), log.at(c.at))})
			}
			lastRollout[k] = c
		}
	}
	for _, k := range order {
		if times := seen[k]; len(times) > 1 {
			var at []string
			for _, t := range times {
				at = append(at, strings.TrimSpace(log.at(t)))
			}
			out = append(out, violation{at: times[1], kind: violationTwice, subject: k.canary,
				detail: fmt.Sprintf("%q %d times for revision %.8s (at %s)", k.message, len(times), k.checksum, strings.Join(at, ", "))})
		}
	}
	return out
}

// figures is the per-fault table the issue asks for: how long the worst release was delayed
// and how many samples saw traffic headed for unready pods.
func figures(s *stream) string {
	faults := append([]*faultRun(nil), s.faults...)
	releases := s.snapshot()
	window := func(f *faultRun) (time.Time, time.Time) { return f.start, f.end.Add(interval) }
	overlaps := func(r *release, from, to time.Time) bool {
		end := r.ended
		if end.IsZero() {
			end = time.Now()
		}
		return r.applied.Before(to) && end.After(from)
	}
	// A release's delay is its duration beyond the quickest fault-free release of the same
	// Canary, kind of version and outcome.
	type class struct {
		canary, kind string
		phase        flaggerv1.CanaryPhase
	}
	base := map[class]time.Duration{}
	fallback := map[class]time.Duration{}
	for _, r := range releases {
		if r.ended.IsZero() {
			continue
		}
		k := class{r.canary, r.version.kind, r.phase}
		if d, ok := fallback[k]; !ok || r.duration() < d {
			fallback[k] = r.duration()
		}
		clean := true
		for _, f := range faults {
			if from, to := window(f); overlaps(r, from, to) {
				clean = false
			}
		}
		if d, ok := base[k]; clean && (!ok || r.duration() < d) {
			base[k] = r.duration()
		}
	}
	delay := func(r *release) (time.Duration, bool) {
		if r.ended.IsZero() {
			return time.Since(r.applied), true
		}
		k := class{r.canary, r.version.kind, r.phase}
		b, ok := base[k]
		if !ok {
			b = fallback[k]
		}
		return max(r.duration()-b, 0), false
	}

	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\n\n", s.plan.seed)
	b.WriteString("| fault | at | recovered after | releases during it | worst release delay | samples with traffic to unready pods |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	var windows [][2]time.Time
	for _, f := range faults {
		from, to := window(f)
		windows = append(windows, [2]time.Time{from, to})
		// A release during several faults counts for each, but the worst delay prefers the
		// releases that saw this fault alone.
		n, worst, worstOf, stuck, alone := 0, time.Duration(0), "", false, false
		for _, r := range releases {
			if !overlaps(r, from, to) {
				continue
			}
			n++
			var others []string
			for _, g := range faults {
				if gf, gt := window(g); g != f && overlaps(r, gf, gt) {
					others = append(others, g.kind)
				}
			}
			d, open := delay(r)
			if alone && len(others) > 0 {
				continue
			}
			if d > worst || open || (!alone && len(others) == 0) {
				worst, stuck, alone = d, stuck || open, len(others) == 0
				worstOf = fmt.Sprintf("%s v%d %s→%s", r.canary, r.version.n, r.version.kind, r.phase)
				if len(others) > 0 {
					worstOf += ", also during " + strings.Join(others, ", ")
				}
			}
		}
		total, unready := watch.trafficSamples(from, to)
		worstText := "–"
		if n > 0 {
			worstText = fmt.Sprintf("+%s (%s)", worst.Round(100*time.Millisecond), worstOf)
			if stuck {
				worstText += " never ended"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %d of %d |\n", f.plannedFault, strings.TrimSpace(log.at(f.start)),
			f.end.Sub(f.start).Round(100*time.Millisecond), n, worstText, unready, total)
	}
	total, unready := watch.samplesOutside(windows)
	clean := 0
	for _, r := range releases {
		ok := true
		for _, w := range windows {
			if overlaps(r, w[0], w[1]) {
				ok = false
			}
		}
		if ok {
			clean++
		}
	}
	fmt.Fprintf(&b, "| no fault | | | %d | (baseline) | %d of %d |\n", clean, unready, total)

	b.WriteString("\n| canary | releases | good→Succeeded | bad→Failed | broken or failing as primary→Failed | unexpected outcome | never ended |\n|---|---|---|---|---|---|---|\n")
	per := map[string][6]int{}
	var names []string
	for _, r := range releases {
		v, ok := per[r.canary]
		if !ok {
			names = append(names, r.canary)
		}
		v[0]++
		switch {
		case r.ended.IsZero():
			v[5]++
		case r.version.kind == good && r.phase == flaggerv1.CanaryPhaseSucceeded:
			v[1]++
		case r.version.kind == bad && r.phase == flaggerv1.CanaryPhaseFailed:
			v[2]++
		case (r.version.kind == broken || r.version.kind == failsAsPrimary) && r.phase == flaggerv1.CanaryPhaseFailed:
			v[3]++
		default:
			v[4]++
		}
		per[r.canary] = v
	}
	sort.Strings(names)
	for _, n := range names {
		v := per[n]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d |\n", n, v[0], v[1], v[2], v[3], v[4], v[5])
	}
	samples, unsettled, failed := watch.counts()
	fmt.Fprintf(&b, "\n%d traffic samples; %d looks skipped because the routing changed under them, %d because the API server did not answer; Herald replicas restarted %d times\n",
		samples, unsettled, failed, heralds.restartCount())
	return b.String()
}

// samplesOutside counts the traffic samples outside every window.
func (s *sampler) samplesOutside(windows [][2]time.Time) (total, unready int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.samples {
		inside := false
		for _, w := range windows {
			if !x.at.Before(w[0]) && !x.at.After(w[1]) {
				inside = true
				break
			}
		}
		if !inside {
			total++
			if x.unready {
				unready++
			}
		}
	}
	return total, unready
}

func (rs *replicaSet) restartCount() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.restarts
}

// keepLogs copies the Herald replicas' logs next to the results.
func keepLogs() {
	logs, _ := filepath.Glob(filepath.Join(env.Dir, "herald-*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			keepResults(filepath.Base(l), string(b))
		}
	}
}

// keepResults writes the run's figures, violations and timeline under bin/faults/seed-<n>/,
// which outlives the cluster's temporary directory.
func keepResults(name, content string) string {
	root, err := cluster.RepoRoot()
	if err != nil {
		return ""
	}
	dir := filepath.Join(root, "bin", "faults", fmt.Sprintf("seed-%d", seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	path := filepath.Join(dir, name)
	_ = os.WriteFile(path, []byte(content), 0o644)
	return path
}

// eventsRecorded compares, per Canary, the Kubernetes Events Herald recorded (counting
// repeats the API server folded into one Event) with the events it published to the event
// hooks: what `kubectl describe canary` shows against what Herald announced.
func eventsRecorded(ctx context.Context, ns string, calls []hookCall) string {
	var list corev1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return "Kubernetes Events: " + err.Error()
	}
	recorded, combined := map[string]int{}, map[string]int{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind != "Canary" {
			continue
		}
		n := max(int(e.Count), 1)
		recorded[e.InvolvedObject.Name] += n
		if strings.HasPrefix(e.Message, "(combined from similar events)") {
			combined[e.InvolvedObject.Name] += n
		}
	}
	published := map[string]int{}
	for _, c := range calls {
		if c.path == hookEvent && c.namespace == ns {
			published[c.canary]++
		}
	}
	var names []string
	for n := range published {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Kubernetes Events recorded per Canary (of the events published to its event hook; combined from similar events):")
	for _, n := range names {
		fmt.Fprintf(&b, " %s %d of %d (%d combined);", n, recorded[n], published[n], combined[n])
	}
	return b.String()
}
