// Package bench measures Herald on the real local control plane. `make bench` runs it.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

const (
	clients          = 16
	updatesPerClient = 125 // 16 × 125 = 2,000 updates per case
	namespace        = "bench"
)

// startHerald brings up a control plane and Herald with its webhooks registered.
func startHerald(b *testing.B) (client.Client, *harness.Herald) {
	c, h, _ := startHeraldWith(b, cluster.Options{})
	return c, h
}

// startHeraldWith starts the control plane with o, then Herald with extra flags, and returns
// an admin client, Herald and the cluster.
func startHeraldWith(b *testing.B, o cluster.Options, flags ...string) (client.Client, *harness.Herald, *cluster.Cluster) {
	b.Helper()
	// controller-runtime's clients log API warnings through this; the figures are the output.
	ctrllog.SetLogger(logr.Discard())
	ctx := context.Background()
	env, err := cluster.Start(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	cfg := *env.Config
	cfg.QPS, cfg.Burst = 2000, 2000 // the clients' own rate limit must not be what is measured
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	bin, err := harness.Build(ctx, "./cmd/herald")
	if err != nil {
		b.Fatal(err)
	}
	kc, err := harness.HeraldKubeconfig(ctx, env, c)
	if err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(env.Dir, "herald.log"))
	if err != nil {
		b.Fatal(err)
	}
	extra := append([]string{"--log-level=error"}, flags...)
	if addr := os.Getenv("HERALD_PPROF"); addr != "" {
		extra = append(extra, "--pprof-bind-address="+addr) // profile Herald during a run
	}
	h, err := harness.StartHerald(ctx, bin, kc, logFile, extra...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Stop)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		b.Fatal(err)
	}
	return c, h, env
}

// deployment is paused, so template updates create no ReplicaSets: the measurement is the
// API server's write path with and without the admission call, not the rollout.
func deployment(name string, managed bool) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Paused:   true,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/stefanprodan/podinfo:6.0.0"}}},
			},
		},
	}
	if managed {
		d.Labels[contract.LabelCanary] = name
	}
	return d
}

// run sends updates from 16 concurrent clients, each to its own Deployment, and returns the
// sorted latencies.
func run(b *testing.B, c client.Client, prefix string, managed bool) []time.Duration {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < clients; i++ {
		if err := c.Create(ctx, deployment(fmt.Sprintf("%s-%d", prefix, i), managed)); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			obj := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: namespace}}
			local := make([]time.Duration, 0, updatesPerClient)
			for n := 0; n < updatesPerClient; n++ {
				patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench/n":"%d"}}}}}`, n)
				start := time.Now()
				if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
					errs <- err
					return
				}
				local = append(local, time.Since(start))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all
}

// quantile is the nearest-rank (lower) q-quantile of sorted samples.
func quantile[T time.Duration | float64](sorted []T, q float64) T {
	return sorted[int(q*float64(len(sorted)-1))]
}

// BenchmarkAdmissionLatency reports p50/p99 of Deployment updates through the real
// kube-apiserver, for Deployments Herald manages (the workload webhook is called) and for
// ones it does not (the objectSelector keeps the API server from calling it).
func BenchmarkAdmissionLatency(b *testing.B) {
	c, h := startHerald(b)
	round := 0
	for _, tc := range []struct {
		name    string
		managed bool
	}{{"without-webhook", false}, {"with-webhook", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var lat []time.Duration
			cpuBefore, _ := h.CPUTime()
			for i := 0; i < b.N; i++ {
				round++
				lat = run(b, c, fmt.Sprintf("%s-%d", tc.name, round), tc.managed)
			}
			cpuAfter, _ := h.CPUTime()
			b.ReportMetric(float64((cpuAfter-cpuBefore).Microseconds())/float64(b.N*len(lat)), "herald-cpu-µs/update")
			b.ReportMetric(float64(quantile(lat, 0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(quantile(lat, 0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(len(lat)), "updates")
		})
	}
	// The managed Deployments really went through the webhook.
	var d appsv1.Deployment
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: fmt.Sprintf("with-webhook-%d-0", round)}, &d); err != nil {
		b.Fatal(err)
	}
	want, _ := contract.Revision(&d.Spec.Template, nil)
	if got := d.Annotations[contract.AnnotationRevision]; got != want {
		b.Fatalf("managed Deployment has revision %q, want %q: the webhook was not called", got, want)
	}
}
