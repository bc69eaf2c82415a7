package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/test/traffic"
)

// The sample the demo applies: config/samples/istio, or config/samples/gatewayapi.
const (
	namespace = "test"
	name      = "podinfo"
)

// demo is everything the walkthrough started, and what it saw.
type demo struct {
	provider  string // "istio" or "gatewayapi": the sample, the routes and the simulator's routing
	root      string // the repository
	logDir    string // bin/demo: logs that outlive the cluster's temporary directory
	env       *cluster.Cluster
	k8s       client.Client
	prom      promv1.API
	herald    *harness.Herald
	sim       *traffic.Simulator
	heraldLog string

	// stops undo what was started, run last first.
	stops []func()

	releases []*release
}

// stop stops everything that was started, last started first. Safe to call more than once.
func (d *demo) stop() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
	d.stops = nil
}

// startAll starts the control plane with Prometheus and Istio's (or the Gateway API's) CRDs, Herald and the traffic
// simulator, and points Prometheus at the simulator and at Herald's metrics. What it started
// is in d.stops even when it fails half-way.
func (d *demo) startAll(ctx context.Context) error {
	var err error
	if d.root, err = cluster.RepoRoot(); err != nil {
		return err
	}
	d.logDir = filepath.Join(d.root, "bin", "demo")
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		return err
	}

	opts := cluster.Options{Out: indent(os.Stdout), WithPrometheus: true, PrometheusScrapeInterval: time.Second}
	if d.gatewayAPI() {
		step("Starting the control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok, Prometheus, the Gateway API's CRDs")
		opts.GatewayAPICRDs = true
	} else {
		step("Starting the control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok, Prometheus, Istio's CRDs")
		opts.IstioCRDs = true
	}
	// Prometheus scrapes every second so that a 10 s analysis interval sees fresh numbers.
	d.env, err = cluster.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	d.stops = append(d.stops, func() {
		step("Stopping the control plane and Prometheus")
		if err := d.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "    stopping the control plane: %v\n", err)
		}
	})
	say("API server %s, Prometheus %s", d.env.APIServerURL, d.env.PrometheusURL)
	if d.k8s, err = newClient(d.env); err != nil {
		return err
	}
	prom, err := promapi.NewClient(promapi.Config{Address: d.env.PrometheusURL})
	if err != nil {
		return fmt.Errorf("a Prometheus client for %s: %w", d.env.PrometheusURL, err)
	}
	d.prom = promv1.NewAPI(prom)

	if err := d.startHerald(ctx); err != nil {
		return err
	}
	return d.startTraffic(ctx)
}

func (d *demo) gatewayAPI() bool { return d.provider == "gatewayapi" }

// routeKind names the object that splits the traffic, for the walkthrough's text.
func (d *demo) routeKind() string {
	if d.gatewayAPI() {
		return "HTTPRoute"
	}
	return "VirtualService"
}

// routeResource is what `kubectl get` lists of the routing objects.
func (d *demo) routeResource() string {
	if d.gatewayAPI() {
		return "httproutes"
	}
	return "virtualservices"
}

func newClient(env *cluster.Cluster) (client.Client, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	utilruntime.Must(router.AddToScheme(scheme)) // Istio's and the Gateway API's kinds
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("a client for %s: %w", env.APIServerURL, err)
	}
	return c, nil
}

// startHerald builds Herald from this checkout and runs it as its own user, with the RBAC
// the chart grants, judging canaries with the demo's Prometheus.
func (d *demo) startHerald(ctx context.Context) error {
	step("Building and starting Herald (it installs its CRDs and webhooks)")
	bin, err := harness.Build(ctx, "./cmd/herald")
	if err != nil {
		return err
	}
	d.heraldLog = filepath.Join(d.logDir, "herald.log")
	logFile, err := os.Create(d.heraldLog)
	if err != nil {
		return err
	}
	d.stops = append(d.stops, func() { logFile.Close() })
	kubeconfig, err := harness.HeraldKubeconfig(ctx, d.env, d.k8s)
	if err != nil {
		return err
	}
	d.herald, err = harness.StartHerald(ctx, bin, kubeconfig, logFile, "--metrics-server="+d.env.PrometheusURL)
	if err != nil {
		return fmt.Errorf("%w\n--- herald log ---\n%s", err, tail(d.heraldLog, 30))
	}
	d.stops = append(d.stops, func() {
		step("Stopping Herald")
		d.herald.Stop()
	})
	say("Herald is ready; metrics at %s, log in %s", d.herald.MetricsURL, d.heraldLog)
	return nil
}

// startTraffic starts the mesh (or gateway) simulator: there is no Envoy here, so it routes
// requests through the VirtualServices (or HTTPRoutes) itself, lets each version answer as
// its pod-template annotations say, and reports Istio's request metrics and the
// application's own for Prometheus to scrape.
func (d *demo) startTraffic(ctx context.Context) error {
	step("Starting the traffic simulator: 20 requests/s to podinfo, 1 in 10 with the header x-canary: insider")
	simLog := filepath.Join(d.logDir, "traffic.log")
	logFile, err := os.Create(simLog)
	if err != nil {
		return err
	}
	d.stops = append(d.stops, func() { logFile.Close() })
	d.sim = &traffic.Simulator{
		Client:     d.k8s,
		Namespaces: []string{namespace},
		RPS:        20,
		Classes: []traffic.Class{
			{Name: "plain", Share: 0.9},
			{Name: "insider", Share: 0.1, Headers: map[string]string{"x-canary": "insider"}},
		},
		Log: funcr.New(func(prefix, args string) { fmt.Fprintln(logFile, time.Now().Format(time.TimeOnly), prefix, args) }, funcr.Options{}),
	}
	if d.gatewayAPI() {
		d.sim.Routing = traffic.RouteGatewayAPI
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	d.stops = append(d.stops, stopSim)
	simURL, err := d.sim.Start(simCtx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	heraldTarget := strings.TrimSuffix(strings.TrimPrefix(d.herald.MetricsURL, "http://"), "/metrics")
	if err := d.env.SetPrometheusTargets(strings.TrimPrefix(simURL, "http://"), heraldTarget); err != nil {
		return fmt.Errorf("pointing Prometheus at the simulator and Herald: %w", err)
	}
	say("Request metrics at %s/metrics; Prometheus scrapes them and Herald's every second", simURL)
	return nil
}
