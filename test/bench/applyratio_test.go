package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/webhooks"
)

// applyRatio is the bulk apply of N Deployments and Canaries with Herald running against the
// same apply without it, each on fresh control planes, alternated, as the median of a few
// samples (HERALD_SCALE_APPLY_SAMPLES, default 3). A single apply on this machine varies by
// a factor of two from one cluster to the next (the kernel's own work comes and goes), more
// than the difference measured; the side-by-side table's one apply per controller is kept
// beside it.
type applyRatio struct {
	n                int
	without, with    []time.Duration
	apiserverWithout []float64 // kube-apiserver's CPU seconds during each apply
	apiserverWith    []float64
}

func applySamples(b *testing.B) int {
	k := 3
	if v := os.Getenv("HERALD_SCALE_APPLY_SAMPLES"); v != "" {
		var err error
		if k, err = strconv.Atoi(v); err != nil || k < 0 {
			b.Fatalf("HERALD_SCALE_APPLY_SAMPLES: %q is not a count", v)
		}
	}
	return k
}

func measureApplyRatio(b *testing.B, n, samples int) applyRatio {
	r := applyRatio{n: n}
	for i := range samples {
		// The side that goes first alternates, so that neither always meets the colder machine.
		order := []bool{i%2 == 1, i%2 == 0}
		for _, withHerald := range order {
			d, cpu := sampleApply(b, n, withHerald)
			if withHerald {
				r.with, r.apiserverWith = append(r.with, d), append(r.apiserverWith, cpu)
			} else {
				r.without, r.apiserverWithout = append(r.without, d), append(r.apiserverWithout, cpu)
			}
			progress("apply N=%d sample %d/%d, Herald %v: %.2f s, kube-apiserver CPU %.1f s", n, i+1, samples, withHerald, d.Seconds(), cpu)
		}
	}
	return r
}

// sampleApply is one bulk apply on a fresh control plane set up as for Herald (its CRDs, its
// flags from HERALD_SCALE_FLAGS); without Herald, Herald is stopped and its webhook
// configurations removed before the apply, so that only Herald differs.
func sampleApply(b *testing.B, n int, withHerald bool) (time.Duration, float64) {
	ctx := context.Background()
	c, h, env := startHeraldWith(b, cluster.Options{Nodes: nodesFor(n)}, strings.Fields(os.Getenv("HERALD_SCALE_FLAGS"))...)
	defer func() {
		h.Stop()
		_ = env.Stop()
	}()
	_ = flaggerv1.AddToScheme(c.Scheme())
	if !withHerald {
		h.Stop()
		for _, cfg := range []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhooks.MutatingName}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhooks.ValidatingName}},
		} {
			if err := client.IgnoreNotFound(c.Delete(ctx, cfg)); err != nil {
				b.Fatal(err)
			}
		}
		// The API server drops the webhooks once its own watch brings the deletions: until
		// then a Canary create would call Herald's closed port and be refused.
		probe := scaleCanary("probe", 10*time.Second)
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			return c.Create(ctx, probe.DeepCopy(), client.DryRunAll) == nil, nil
		}); err != nil {
			b.Fatalf("the API server still calls the removed webhooks: %v", err)
		}
	}
	// Both sides start from a control plane (and a Herald) done with starting up.
	time.Sleep(settleBeforeApply)
	cpu0 := cpuByCommand()
	d, err := applyAll(ctx, c, n, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return d, cpuByCommand()["kube-apiserver"] - cpu0["kube-apiserver"]
}

// settleBeforeApply is the pause between a sample's set-up and its apply, on both sides.
const settleBeforeApply = 10 * time.Second

// median is the middle sample (the lower of the two middle ones for an even count).
func median[T time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	return quantile(slices.Sorted(slices.Values(xs)), 0.5)
}

func (r applyRatio) report(b *testing.B) {
	b.ReportMetric(median(r.without).Seconds(), "apply-without-herald-s")
	b.ReportMetric(median(r.with).Seconds(), "apply-with-herald-s")
	b.ReportMetric(median(r.with).Seconds()/median(r.without).Seconds(), "apply-ratio")
}

// applyTable is the note's table of the apply ratios.
func applyTable(rs []applyRatio) string {
	if len(rs) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("\nBulk apply with Herald running against the same apply without it: fresh control planes, alternated, median (samples in brackets); kube-apiserver's CPU during the apply, median.\n\n")
	sb.WriteString("| N | without Herald | with Herald | ratio | kube-apiserver CPU without / with |\n|---|---|---|---|---|\n")
	list := func(ds []time.Duration) string {
		parts := make([]string, len(ds))
		for i, d := range ds {
			parts[i] = fmt.Sprintf("%.1f", d.Seconds())
		}
		return strings.Join(parts, ", ")
	}
	for _, r := range rs {
		fmt.Fprintf(&sb, "| %d | %.1f s (%s) | %.1f s (%s) | %.2f× | %.1f s / %.1f s |\n", r.n,
			median(r.without).Seconds(), list(r.without), median(r.with).Seconds(), list(r.with),
			median(r.with).Seconds()/median(r.without).Seconds(), median(r.apiserverWithout), median(r.apiserverWith))
	}
	return sb.String()
}
