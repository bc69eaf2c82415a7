// Command floorctl is the scale benchmark's yardstick for memory: the least a controller built on
// controller-runtime holds to act on the benchmark's Canaries from a cache rather than read the
// API server on every pass, as Herald does. It caches every Deployment and Service of the
// cluster (typed, as controller-runtime does by default, without their managed fields, as
// Herald's cache) and reconciles each with a no-op; it reads no Canary and serves no webhook.
// Its RSS once idle is the floor under Herald's own figure (see BenchmarkScale). Flagger holds
// less because it caches none of these objects: it reads them from the API server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func main() {
	fs := flag.NewFlagSet("floorctl", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig-file", "", "the cluster's kubeconfig")
	probe := fs.String("probe-address", "127.0.0.1:0", "where /readyz answers once the caches are synced")
	_ = fs.Parse(os.Args[1:])
	if err := run(*kubeconfig, *probe); err != nil {
		fmt.Fprintln(os.Stderr, "floorctl:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, probe string) error {
	ctrl.SetLogger(logr.Discard())
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: probe,
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	noop := reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil })
	if err := ctrl.NewControllerManagedBy(mgr).Named("floor").For(&appsv1.Deployment{}).Owns(&corev1.Service{}).Complete(noop); err != nil {
		return fmt.Errorf("creating the controller: %w", err)
	}
	var synced atomic.Bool
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		// GetInformer waits for the informer's sync; WaitForCacheSync alone would not wait
		// for informers the controller has not asked for yet.
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
			if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
				return fmt.Errorf("watching %T: %w", obj, err)
			}
		}
		synced.Store(true)
		return nil
	})); err != nil {
		return fmt.Errorf("adding the sync check: %w", err)
	}
	if err := mgr.AddReadyzCheck("synced", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
