package canary

import (
	"testing"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestNextWeight(t *testing.T) {
	cases := []struct {
		name     string
		a        flaggerv1.CanaryAnalysis
		current  int
		maxW     int
		expected int
	}{
		{"step from zero", flaggerv1.CanaryAnalysis{StepWeight: 10}, 0, 50, 10},
		{"step in the middle", flaggerv1.CanaryAnalysis{StepWeight: 10}, 20, 50, 30},
		{"step capped at max", flaggerv1.CanaryAnalysis{StepWeight: 20}, 40, 50, 50},
		{"no step: the default 10", flaggerv1.CanaryAnalysis{}, 0, 100, 10},
		{"ladder from zero", flaggerv1.CanaryAnalysis{StepWeights: []int{1, 5, 25, 60}}, 0, 60, 1},
		{"ladder next rung", flaggerv1.CanaryAnalysis{StepWeights: []int{1, 5, 25, 60}}, 5, 60, 25},
		{"ladder between rungs", flaggerv1.CanaryAnalysis{StepWeights: []int{1, 5, 25, 60}}, 7, 60, 25},
		// maxWeight is the ladder's top (GetMaxWeight), the step is stepWeight, as Flagger.
		{"stepWeight wins over the ladder", flaggerv1.CanaryAnalysis{StepWeight: 2, StepWeights: []int{1, 5}}, 0, 5, 2},
	}
	for _, tc := range cases {
		if got := nextWeight(&tc.a, tc.current, tc.maxW); got != tc.expected {
			t.Errorf("%s: nextWeight(%d) = %d, want %d", tc.name, tc.current, got, tc.expected)
		}
	}
}

func TestWantedRoutes(t *testing.T) {
	p := func(provider string, a *flaggerv1.CanaryAnalysis, s flaggerv1.CanaryStatus) *pass {
		c := &flaggerv1.Canary{Spec: flaggerv1.CanarySpec{Provider: provider, Analysis: a}, Status: s}
		ps := &pass{c: c, r: &Reconciler{}}
		ps.resolveProvider()
		return ps
	}
	type want struct {
		primary, canary int
		mirrored, ok    bool
	}
	cases := []struct {
		name string
		p    *pass
		want want
	}{
		{"idle", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseSucceeded}), want{100, 0, false, true}},
		{"weighted step", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing, CanaryWeight: 30}), want{70, 30, false, true}},
		{"weight zero may be mirroring", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10, Mirror: true}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing}), want{0, 0, false, false}},
		{"a/b testing", p("istio", &flaggerv1.CanaryAnalysis{Iterations: 3, Match: []flaggerv1.HTTPMatchRequest{{Name: "x"}}}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing, Iterations: 1}), want{0, 100, false, true}},
		{"blue/green mirroring", p("istio", &flaggerv1.CanaryAnalysis{Iterations: 3, Mirror: true}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing, Iterations: 2}), want{100, 0, true, true}},
		{"blue/green switched", p("istio", &flaggerv1.CanaryAnalysis{Iterations: 3}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing, Iterations: 4}), want{0, 100, false, true}},
		{"rolled back", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseFailed}), want{100, 0, false, true}},
		{"failed promotion stays on the canary", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseFailed, CanaryWeight: 100}), want{0, 100, false, true}},
		{"promoting is not judged", p("istio", &flaggerv1.CanaryAnalysis{StepWeight: 10}, flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhasePromoting, CanaryWeight: 50}), want{0, 0, false, false}},
	}
	for _, tc := range cases {
		pw, cw, m, ok := tc.p.wantedRoutes()
		if got := (want{pw, cw, m, ok}); got != tc.want {
			t.Errorf("%s: wantedRoutes() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestKubernetesProviderRunsBlueGreen(t *testing.T) {
	c := &flaggerv1.Canary{Spec: flaggerv1.CanarySpec{Provider: "kubernetes", Analysis: &flaggerv1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50}}}
	ps := &pass{c: c, r: &Reconciler{}}
	ps.resolveProvider()
	if s := ps.strategy(); s != flaggerv1.StrategyBlueGreen {
		t.Errorf("strategy = %s, want blue/green", s)
	}
	if n := ps.iterations(); n != kubernetesIterations {
		t.Errorf("iterations = %d, want %d", n, kubernetesIterations)
	}
}
