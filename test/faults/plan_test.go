package faults

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/harness"
)

// The faults the suite injects.
const (
	faultKillLeader = "SIGKILL of the leader"
	faultAPIServer  = "kube-apiserver restart"
	faultWebhooks   = "webhooks unreachable 30s"
	faultPrometheus = "Prometheus down 20s"
	faultHookHang   = "hooks hang past their timeout"
	faultScaleUp    = "idle target scaled up as Herald"
	faultPrimary    = "a primary pod crash-loops 15s"
	faultPromotion  = "the primary fails during a promotion"
)

// Steps at which the leader may be killed: what the chosen Canary's status must show.
const (
	stepWeighted   = "traffic shifted" // Progressing with a weight or an iteration
	stepPromoting  = "Promoting"
	stepFinalising = "Finalising"
	stepAny        = "any moment"
)

// streamCanary is one Canary of the stream and how its releases go.
type streamCanary struct {
	name         string
	opts         canaryOpts
	sharedConfig bool // reads the namespace's shared ConfigMap (as another Canary's target does)
	userApex     bool // the user created its apex Service before the Canary
	judged       bool // the judge hook decides (no mesh metrics on the kubernetes provider)
}

const streamNS = "faults"

// streamCanaries run side by side: Istio weighted canaries judged by Prometheus, one with
// skipAnalysis, and kubernetes blue/green ones judged by a hook, two of them sharing a
// ConfigMap, one with a user-owned apex Service.
func streamCanaries() []streamCanary {
	return []streamCanary{
		{name: "weighted", opts: canaryOpts{provider: flaggerv1.ProviderIstio, stepWeights: []int{30, 60}, metrics: true,
			hooks: []string{hookPre, hookRollout, hookPost, hookEvent}}},
		{name: "stepped", opts: canaryOpts{provider: flaggerv1.ProviderIstio, stepWeight: 25, maxWeight: 50, metrics: true,
			hooks: []string{hookRollout, hookEvent}, hookTimeout: "2s"}},
		{name: "skipper", opts: canaryOpts{provider: flaggerv1.ProviderIstio, skipAnalysis: true, stepWeight: 50, maxWeight: 50,
			hooks: []string{hookPost, hookEvent}}},
		{name: "bluegreen", sharedConfig: true, judged: true, opts: canaryOpts{provider: flaggerv1.ProviderKubernetes, iterations: 3,
			hooks: []string{hookPre, hookJudge, hookPost, hookEvent}}},
		{name: "shared", sharedConfig: true, judged: true, userApex: true, opts: canaryOpts{provider: flaggerv1.ProviderKubernetes, iterations: 2, threshold: 1,
			hooks: []string{hookJudge, hookEvent}}},
		// Blue/green on Istio: all traffic on the canary for its last step and its promotion,
		// so that a primary failing then serves nobody (faultPromotion).
		{name: promotedBlueGreen, judged: true, opts: canaryOpts{provider: flaggerv1.ProviderIstio, iterations: 2, threshold: 1, deadline: 40,
			hooks: []string{hookJudge, hookEvent}}},
	}
}

// promotedBlueGreen is the Canary whose primary faultPromotion breaks.
const promotedBlueGreen = "bgmesh"

// plannedFault is one fault of the schedule.
type plannedFault struct {
	kind   string
	gap    time.Duration   // quiet time before it, after the previous fault recovered
	step   string          // kill: at which step of canary
	canary string          // kill: whose step; scale-up: whose target
	mode   harness.CutMode // webhooks: how the cut fails
}

func (f plannedFault) String() string {
	switch f.kind {
	case faultKillLeader:
		return fmt.Sprintf("%s (%s of %s)", f.kind, f.step, f.canary)
	case faultWebhooks:
		return fmt.Sprintf("%s (%s)", f.kind, f.mode)
	case faultScaleUp, faultPrimary, faultPromotion:
		return fmt.Sprintf("%s (%s)", f.kind, f.canary)
	}
	return f.kind
}

// plan is everything the seed decides: the order, timing and targets of the faults, and
// the sequence of versions each Canary releases with the pauses between them.
type plan struct {
	seed     uint64
	faults   []plannedFault
	versions map[string][]string        // canary -> kinds of its successive versions
	pauses   map[string][]time.Duration // canary -> pause before each release
}

// newPlan draws the schedule of a seed: rounds of every fault (each round in its own random
// order), and for each Canary a sequence of versions (good, bad, broken) with pauses.
func newPlan(seed uint64, rounds int, canaries []streamCanary) *plan {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed_f417))
	p := &plan{seed: seed, versions: map[string][]string{}, pauses: map[string][]time.Duration{}}
	var names, analysed []string
	for _, c := range canaries {
		names = append(names, c.name)
		if !c.opts.skipAnalysis {
			analysed = append(analysed, c.name)
		}
	}
	var kinds []string
	for range max(rounds, 1) {
		round := []string{faultKillLeader, faultAPIServer, faultWebhooks, faultPrometheus, faultHookHang, faultScaleUp, faultPrimary, faultPromotion}
		rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		kinds = append(kinds, round...)
	}
	steps := []string{stepWeighted, stepPromoting, stepFinalising, stepAny}
	for _, k := range kinds {
		f := plannedFault{kind: k, gap: time.Duration(1+rng.IntN(3)) * time.Second}
		switch k {
		case faultKillLeader:
			f.step = steps[rng.IntN(len(steps))]
			f.canary = analysed[rng.IntN(len(analysed))]
		case faultWebhooks:
			f.mode = []harness.CutMode{harness.Refuse, harness.Blackhole}[rng.IntN(2)]
			f.canary = names[rng.IntN(len(names))]
		case faultScaleUp:
			f.canary = names[rng.IntN(len(names))]
		case faultPrimary:
			f.canary = analysed[rng.IntN(len(analysed))]
		case faultPromotion:
			f.canary = promotedBlueGreen
		}
		p.faults = append(p.faults, f)
	}
	for _, c := range canaries {
		for range 100 {
			x := rng.Float64()
			kind := good
			switch {
			case c.opts.skipAnalysis && x < 0.2:
				kind = broken
			case c.opts.skipAnalysis:
			case x < 0.3:
				kind = bad
			case x < 0.4:
				kind = broken
			}
			p.versions[c.name] = append(p.versions[c.name], kind)
			pause := time.Duration(500+rng.IntN(3500)) * time.Millisecond
			if c.opts.skipAnalysis { // its releases take a second: keep its pace near the others'
				pause += 5 * time.Second
			}
			p.pauses[c.name] = append(p.pauses[c.name], pause)
		}
	}
	return p
}

func (p *plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\nfaults:", p.seed)
	for i, f := range p.faults {
		fmt.Fprintf(&b, "\n  %d. after %s: %s", i+1, f.gap, f)
	}
	names := make([]string, 0, len(p.versions))
	for name := range p.versions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "\n%s versions: %s …", name, strings.Join(p.versions[name][:8], " "))
	}
	return b.String()
}
