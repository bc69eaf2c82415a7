// Command herald is Herald's manager: it serves the flagger.app/v1beta1 API's controllers
// (and, as they are added, its admission webhooks), /metrics, and health probes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/certs"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/canary"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/internal/logging"
	canaryhook "github.com/herald-rollouts/herald/webhooks/canary"
)

type options struct {
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	logLevel                string
	logEncoding             string
	selectorLabels          string
	meshProvider            string
	metricsServer           string
	namespace               string
	enableConfigTracking    bool
	installCRDs             bool

	pprofAddr          string
	enableWebhooks     bool
	webhookHost        string
	webhookPort        int
	webhookURL         string
	webhookService     string
	webhookSecret      string
	certDir            string
	podNamespace       string
	controllerUsername string

	// globalAlerts are Flagger's -slack-* and -msteams-* flags.
	globalAlerts alerts.GlobalFlags
}

func (o *options) bind(fs *flag.FlagSet) {
	// -kubeconfig is registered by controller-runtime's config package on flag.CommandLine.
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the /metrics endpoint; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the namespace Herald runs in).")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&o.logEncoding, "log-encoding", "json", "Log encoding: json or console.")
	fs.StringVar(&o.selectorLabels, "selector-labels", strings.Join(canaryhook.DefaultSelectorLabels, ","), "Comma-separated pod labels that identify a workload, as Flagger's -selector-labels.")
	fs.StringVar(&o.meshProvider, "mesh-provider", flaggerv1.ProviderIstio, "Default provider for Canaries without spec.provider ("+strings.Join(flaggerv1.SupportedProviders, ", ")+").")
	fs.StringVar(&o.metricsServer, "metrics-server", "http://prometheus:9090", "Default Prometheus URL for builtin metrics, as Flagger's -metrics-server.")
	fs.StringVar(&o.namespace, "namespace", "", "Watch only this namespace (default: all).")
	fs.BoolVar(&o.enableConfigTracking, "enable-config-tracking", true, "Track ConfigMaps and Secrets referenced by targets.")
	fs.BoolVar(&o.installCRDs, "install-crds", false, "Create or update Herald's CRDs at start-up (local runs; a cluster install ships them).")

	podNamespace := os.Getenv("POD_NAMESPACE")
	if podNamespace == "" {
		podNamespace = "herald-system"
	}
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of a net/http/pprof endpoint for profiling (default: off).")
	fs.BoolVar(&o.enableWebhooks, "enable-webhooks", true, "Serve the admission webhooks.")
	fs.StringVar(&o.webhookHost, "webhook-host", "", "Address the webhook server listens on (default: all).")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	fs.StringVar(&o.webhookURL, "webhook-url", "", "Local runs: register the webhook configurations with this base URL (e.g. https://localhost:9443) instead of relying on installed ones.")
	fs.StringVar(&o.webhookService, "webhook-service", "herald-webhook", "Name of the webhook Service (the serving certificate's DNS name is <service>.<namespace>.svc).")
	fs.StringVar(&o.webhookSecret, "webhook-secret", "herald-webhook-cert", "Secret in Herald's namespace that holds the webhook CA and serving certificate.")
	fs.StringVar(&o.certDir, "cert-dir", filepath.Join(os.TempDir(), "herald-webhook-certs"), "Directory for the serving certificate files.")
	fs.StringVar(&o.podNamespace, "pod-namespace", podNamespace, "Herald's own namespace (env POD_NAMESPACE).")
	fs.StringVar(&o.controllerUsername, "controller-username", "", "User name of Herald's own writes, let through to idle targets (default system:serviceaccount:<pod-namespace>:herald).")
	o.globalAlerts.Bind(fs)
}

func (o *options) validate() error {
	var errs []error
	if !slices.Contains(flaggerv1.SupportedProviders, o.meshProvider) {
		errs = append(errs, fmt.Errorf("-mesh-provider %q is not supported; use one of %s", o.meshProvider, strings.Join(flaggerv1.SupportedProviders, ", ")))
	}
	if len(splitList(o.selectorLabels)) == 0 {
		errs = append(errs, errors.New("-selector-labels must name at least one label"))
	}
	if err := logging.Validate(o.logLevel, o.logEncoding); err != nil {
		errs = append(errs, err)
	}
	if o.enableWebhooks {
		if _, err := o.webhookDNSName(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := o.globalAlerts.Destinations(os.Getenv); err != nil {
		errs = append(errs, err)
	}
	if o.controllerUsername == "" {
		o.controllerUsername = "system:serviceaccount:" + o.podNamespace + ":herald"
	}
	return errors.Join(errs...)
}

func main() {
	var o options
	o.bind(flag.CommandLine)
	flag.Parse()
	if err := o.validate(); err != nil { // also fills in defaults derived from other flags
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New(o.logLevel, o.logEncoding)
	ctrl.SetLogger(log)
	klog.SetLogger(log.WithName("klog"))
	if err := run(ctrl.SetupSignalHandler(), o, log); err != nil {
		log.Error(err, "Herald stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log logr.Logger) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	utilruntime.Must(router.AddToScheme(scheme))

	if o.installCRDs {
		if err := installCRDs(ctx, cfg, log); err != nil {
			return err
		}
	}

	if o.enableWebhooks && o.webhookURL != "" {
		if err := registerWebhooks(ctx, cfg, &o, log); err != nil {
			return err
		}
	}

	if o.enableWebhooks {
		if err := ensureCertSecret(ctx, cfg, &o); err != nil {
			return err
		}
	}

	var certManager *certs.Manager
	mgrOpts := ctrl.Options{
		Scheme:                  scheme,
		Cache:                   o.cacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "herald-leader-election",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// A new leader must not act on a stale view while the old one may still be running.
		LeaderElectionReleaseOnCancel: true,
	}
	if o.enableWebhooks {
		mgrOpts.WebhookServer = webhookServer(&o, func() *certs.Manager { return certManager })
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	metrics.Register(mgr.GetCache(), o.meshProvider)
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	// Ready once the informer caches have synced: before that, nothing Herald serves is current.
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	metadata, err := newMetadataCache(mgr, &o)
	if err != nil {
		return err
	}
	if o.enableWebhooks {
		if certManager, err = setupWebhooks(mgr, &o, metadata); err != nil {
			return fmt.Errorf("setting up webhooks: %w", err)
		}
		if err := mgr.AddReadyzCheck("webhooks", webhooksReady(mgr, certManager)); err != nil {
			return fmt.Errorf("adding webhook readiness check: %w", err)
		}
	}
	// Istio's resources are watched only where the cluster serves them; without them istio
	// Canaries report a clear error and kubernetes ones work as usual.
	istio, err := servesIstio(cfg)
	if err != nil {
		return err
	}
	if !istio {
		log.Info("The cluster does not serve networking.istio.io/v1: istio Canaries cannot route traffic until Istio's CRDs are installed (restart Herald then)")
	}
	// Alerts go out from their own workers: a slow chat service never holds a reconcile.
	globalAlerts, _ := o.globalAlerts.Destinations(os.Getenv) // checked in options.validate
	alertDispatcher := alerts.NewDispatcher(&alerts.Sender{Reader: mgr.GetAPIReader(), Global: globalAlerts}, log.WithName("alerts"), alerts.Options{})
	// Not a manager runnable: the manager stops those before its controllers, and the alerts
	// of the last reconciles would find no one to send them. The dispatcher stops once
	// mgr.Start has returned, and drains its queues within alerts.DefaultDrainTimeout.
	alertsCtx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
	alertsStopped := make(chan struct{})
	go func() { defer close(alertsStopped); _ = alertDispatcher.Start(alertsCtx) }()
	defer func() { stopAlerts(); <-alertsStopped }()
	reconciler := &canary.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Events:    mgr.GetEventRecorderFor("herald"), //nolint:staticcheck // see canary.Reconciler.Events
		Metrics:   &metrics.Recorder{},
		Hooks:     &hooks.Caller{},
		Checks: &metricchecks.Checker{
			// Live reads: MetricTemplates change rarely and Secrets must not be cached.
			Reader:         mgr.GetAPIReader(),
			DefaultAddress: o.metricsServer,
			Provider:       o.meshProvider,
		},
		Alerts: alertDispatcher,
		Options: canary.Options{
			MeshProvider:   o.meshProvider,
			WatchIstio:     istio,
			SelectorLabels: splitList(o.selectorLabels),
			ConfigTracking: o.enableConfigTracking,
		},
	}
	if err := reconciler.SetupWithManager(mgr, metadata); err != nil {
		return fmt.Errorf("setting up the canary controller: %w", err)
	}
	// Start the Canary informer even before a controller asks for it, so that /metrics and
	// readiness reflect the cluster from the start.
	if _, err := mgr.GetCache().GetInformer(ctx, &flaggerv1.Canary{}); err != nil {
		return fmt.Errorf("watching canaries: %w", err)
	}
	log.Info("Starting Herald", "version", metrics.Version, "meshProvider", o.meshProvider,
		"selectorLabels", o.selectorLabels, "metricsServer", o.metricsServer, "namespace", o.namespace)
	return mgr.Start(ctx)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// servesIstio reports whether the cluster serves Istio's VirtualServices.
func servesIstio(cfg *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("creating discovery client: %w", err)
	}
	resources, err := dc.ServerResourcesForGroupVersion("networking.istio.io/v1")
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering networking.istio.io/v1: %w", err)
	}
	for _, r := range resources.APIResources {
		if r.Name == "virtualservices" {
			return true, nil
		}
	}
	return false, nil
}
