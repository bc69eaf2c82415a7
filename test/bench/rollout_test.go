package bench

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// BenchmarkBlueGreenRollout measures, for a blue/green Canary with interval 10s and
// iterations 3, the time from the apply of a new image to Progressing (detection) and to
// Succeeded, over 5 rollouts. Goals: detection p99 under 1 s; apply-to-Succeeded within
// iterations × interval + 5 s = 35 s.
func BenchmarkBlueGreenRollout(b *testing.B) {
	const rollouts = 5
	c, _ := startHerald(b)
	_ = flaggerv1.AddToScheme(c.Scheme())
	ctx := context.Background()
	d := rolloutTarget("bg")
	if err := c.Create(ctx, d); err != nil {
		b.Fatal(err)
	}
	canary := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "bg", Namespace: namespace},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "bg"},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, Iterations: 3},
		},
	}
	if err := c.Create(ctx, canary); err != nil {
		b.Fatal(err)
	}
	waitFor := phaseWaiter(ctx, c, "bg")
	if err := waitFor(flaggerv1.CanaryPhaseInitialized, 60*time.Second); err != nil {
		b.Fatal(err)
	}
	var detection, total []time.Duration
	for i := 0; i < rollouts*b.N; i++ {
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"ghcr.io/stefanprodan/podinfo:6.0.%d"}]}}}}`, i+1)
		start := time.Now()
		if err := c.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
			b.Fatal(err)
		}
		if err := waitFor(flaggerv1.CanaryPhaseProgressing, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		detection = append(detection, time.Since(start))
		if err := waitFor(flaggerv1.CanaryPhaseSucceeded, 2*time.Minute); err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(start))
	}
	sort.Slice(detection, func(i, j int) bool { return detection[i] < detection[j] })
	sort.Slice(total, func(i, j int) bool { return total[i] < total[j] })
	b.ReportMetric(float64(quantile(detection, 0.5).Milliseconds()), "detect-p50-ms")
	b.ReportMetric(float64(detection[len(detection)-1].Milliseconds()), "detect-max-ms")
	b.ReportMetric(quantile(total, 0.5).Seconds(), "to-succeeded-p50-s")
	b.ReportMetric(total[len(total)-1].Seconds(), "to-succeeded-max-s")
	b.ReportMetric(float64(len(total)), "rollouts")
}

// phaseWaiter returns a function that waits until the Canary name reaches a phase.
func phaseWaiter(ctx context.Context, c client.Client, name string) func(flaggerv1.CanaryPhase, time.Duration) error {
	phase := func() flaggerv1.CanaryPhase {
		var got flaggerv1.Canary
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &got); err != nil {
			return ""
		}
		return got.Status.Phase
	}
	return func(want flaggerv1.CanaryPhase, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if phase() == want {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("canary not %s after %s (phase %q)", want, timeout, phase())
	}
}

// rolloutTarget is a two-replica Deployment that Canaries in the benchmarks roll out.
func rolloutTarget(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/stefanprodan/podinfo:6.0.0"}}},
			},
		},
	}
}
