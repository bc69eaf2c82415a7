// Command herald is Herald's manager: it serves the flagger.app/v1beta1 API's controllers
// (and, as they are added, its admission webhooks), /metrics, and health probes.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	// Mozilla's CA roots, used when the image has none (it is a static binary on an empty
	// base), so that HTTPS alerts and metric servers verify.
	_ "golang.org/x/crypto/x509roots/fallback"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/certs"
	"github.com/herald-rollouts/herald/controllers/alerts"
	"github.com/herald-rollouts/herald/controllers/canary"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/internal/egress"
	"github.com/herald-rollouts/herald/internal/logging"
	"github.com/herald-rollouts/herald/internal/metricsauth"
	"github.com/herald-rollouts/herald/internal/version"
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
	watchLabelSelector      string
	enableConfigTracking    bool
	installCRDs             bool

	version bool

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

	metricsSecure        optionalBool
	noCrossNamespaceRefs bool
	egressAllowLoopback  bool
	hookWorkers          int
	eventHookWorkers     int
	initializationRate   float64
	initializationBurst  int

	// flagger are Flagger's other flags (flagger.go).
	flagger flaggerFlags

	// shard is the parsed -watch-label-selector (shard.go); nil for every Canary.
	shard labels.Selector
}

// The pace of new Canaries' initialisation (controllers/canary/pace.go): the controller-manager's
// deployment and replicaset controllers, at their default 20 requests a second each, roll out a
// few Deployments a second, so Herald starts new primaries at about that rate after a burst.
const (
	defaultInitializationRate  = 5
	defaultInitializationBurst = 20
	// minInitializationRate is one new Canary a minute past the burst.
	minInitializationRate = 1.0 / 60
)

func (o *options) bind(fs *flag.FlagSet) {
	// -kubeconfig is registered by controller-runtime's config package on flag.CommandLine.
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the /metrics endpoint; 0 disables it.")
	fs.Var(&o.metricsSecure, "metrics-secure", "Serve /metrics over HTTPS to callers the API server authenticates and authorizes "+
		"(get on the non-resource URL /metrics, see the ClusterRole herald-metrics-reader); Herald's chart and kustomize install set it. "+
		"false serves plain HTTP, only on a loopback -metrics-bind-address (local runs and tests). Unset, Herald serves what Flagger "+
		"serves on its port, so that Flagger's manifests run it unchanged: plain /metrics and /healthz, with a warning.")
	fs.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", false, "Refuse templateRef and providerRef namespaces other than "+
		"the Canary's, as Flagger's -no-cross-namespace-refs: the Canary webhook refuses them and the controller does not follow them.")
	fs.BoolVar(&o.egressAllowLoopback, "egress-allow-loopback", true, "Let metric queries, hooks and alerts call loopback addresses "+
		"(127.0.0.0/8, ::1). Link-local and cloud metadata addresses are always refused.")
	fs.IntVar(&o.hookWorkers, "hook-workers", hooks.DefaultRunnerWorkers, "Analysis hook calls made at once, off the reconcile workers.")
	fs.IntVar(&o.eventHookWorkers, "event-hook-workers", hooks.DefaultEventWorkers, "Event hook posts made at once; beyond a bounded queue they are dropped and counted.")
	fs.Float64Var(&o.initializationRate, "initialization-rate", defaultInitializationRate, "New Canaries that may start initialising each second "+
		"(creating their primary and Services, rolling the target down), beyond -initialization-burst at once; the others wait, with no "+
		"phase yet (condition Reconciling, reason WaitingForTurn), for their turn, which goes round the namespaces. 0 starts every one at once; otherwise at least 1/60 (one a minute). Paced, a burst of new Canaries loads the API server less while the apply that brings them runs. Per instance: each shard paces its own.")
	fs.IntVar(&o.initializationBurst, "initialization-burst", defaultInitializationBurst, "New Canaries that may start initialising at once (see -initialization-rate); at least 1 unless the rate is 0.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the namespace Herald runs in).")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&o.logEncoding, "log-encoding", "json", "Log encoding: json or console.")
	fs.StringVar(&o.selectorLabels, "selector-labels", strings.Join(contract.DefaultSelectorLabels, ","), "Comma-separated pod labels that identify a workload, as Flagger's -selector-labels.")
	fs.StringVar(&o.meshProvider, "mesh-provider", flaggerv1.ProviderIstio, "Default provider for Canaries without spec.provider ("+strings.Join(flaggerv1.SupportedProviders, ", ")+").")
	fs.StringVar(&o.metricsServer, "metrics-server", "http://prometheus:9090", "Default Prometheus URL for builtin metrics, as Flagger's -metrics-server.")
	fs.StringVar(&o.namespace, "namespace", "", "Watch only this namespace (default: all).")
	fs.StringVar(&o.watchLabelSelector, "watch-label-selector", "", "Sharding: reconcile only the Canaries whose labels match this selector, "+
		"e.g. sharding.herald.dev/key=shard1 (default: all). Each shard elects its own leader; webhooks serve every object on every shard.")
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
	o.bindFlagger(fs)
}

func (o *options) validate() error {
	var errs []error
	// An unsupported -mesh-provider is accepted, as Flagger's overlays pass their own (see
	// ignored): Canaries relying on it are refused and stalled with its name.
	if strings.TrimSpace(o.meshProvider) == "" {
		errs = append(errs, errors.New("-mesh-provider must not be empty"))
	}
	if err := o.validateFlagger(); err != nil {
		errs = append(errs, err)
	}
	if sel, err := shardSelector(o.watchLabelSelector); err != nil {
		errs = append(errs, err)
	} else {
		o.shard = sel
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
	if o.metricsSecure.set && !o.metricsSecure.value && o.metricsAddr != "0" && !loopbackAddress(o.metricsAddr) {
		errs = append(errs, fmt.Errorf("-metrics-secure=false serves /metrics without authentication: -metrics-bind-address %q must then be a loopback address such as 127.0.0.1:8080", o.metricsAddr))
	}
	if o.metricsSecure.set && o.metricsSecure.value && o.flagger.port != "" {
		errs = append(errs, errors.New("-port serves /metrics as plain HTTP, as Flagger does: it cannot be combined with -metrics-secure (set the port in -metrics-bind-address instead)"))
	}
	if o.hookWorkers < 1 || o.eventHookWorkers < 1 {
		errs = append(errs, errors.New("-hook-workers and -event-hook-workers must be at least 1"))
	}
	switch r := o.initializationRate; {
	case math.IsNaN(r) || math.IsInf(r, 0) || r < 0:
		errs = append(errs, fmt.Errorf("-initialization-rate %g must be a number of Canaries a second, at least 0 (0: no pacing)", r))
	case r > 0 && r < minInitializationRate:
		// Past the burst, one new Canary every 1/r seconds: below this it would look stuck.
		errs = append(errs, fmt.Errorf("-initialization-rate %g would start a new Canary every %.1f s past the burst: use at least 1/60 (one a minute), or 0 for no pacing",
			r, 1/r))
	}
	if o.initializationRate != 0 && o.initializationBurst < 1 {
		errs = append(errs, fmt.Errorf("-initialization-burst %d must be at least 1", o.initializationBurst))
	}
	return errors.Join(errs...)
}

func main() {
	var o options
	o.bind(flag.CommandLine)
	flag.Parse()
	o.flagger.recordSet(flag.CommandLine)
	if o.version {
		fmt.Println(version.String("herald"))
		return
	}
	if err := o.validate(); err != nil { // also fills in defaults derived from other flags
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New(o.logLevel, o.logEncoding)
	o.flagger.replaceGlobals(log)
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
	o.flagger.restConfig(cfg)
	o.logIgnored(log)
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
		Metrics:                 o.metricsOptions(),
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        leaseName(o.shard),
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
	metadata, err := newMetadataCache(mgr, &o)
	if err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", cachesSynced(map[string]cache.Cache{"controllers'": mgr.GetCache(), "webhooks' metadata": metadata})); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
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
	gatewayRoutes, err := servedGatewayRoutes(cfg)
	if err != nil {
		return err
	}
	if len(gatewayRoutes) == 0 {
		log.Info("The cluster does not serve the Gateway API's HTTPRoute: gatewayapi Canaries cannot route traffic until its CRDs are installed (restart Herald then)")
	}
	// Alerts go out from their own workers: a slow chat service never holds a reconcile.
	globalAlerts, _ := o.globalAlerts.Destinations(os.Getenv) // checked in options.validate
	egressPolicy := egress.Policy{DenyLoopback: !o.egressAllowLoopback}
	alertDispatcher := alerts.NewDispatcher(&alerts.Sender{Reader: mgr.GetAPIReader(), Global: globalAlerts,
		NoCrossNamespaceRefs: o.noCrossNamespaceRefs, Egress: egressPolicy}, log.WithName("alerts"), alerts.Options{})
	// Not a manager runnable: the manager stops those before its controllers, and the alerts
	// of the last reconciles would find no one to send them. The dispatcher stops once
	// mgr.Start has returned, and drains its queues within alerts.DefaultDrainTimeout.
	alertsCtx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
	alertsStopped := make(chan struct{})
	go func() { defer close(alertsStopped); _ = alertDispatcher.Start(alertsCtx) }()
	defer func() { stopAlerts(); <-alertsStopped }()
	hookCaller := &hooks.Caller{Egress: egressPolicy}
	// Hook calls and event posts run off the reconcile workers, in bounded pools.
	hookRunner := hooks.NewRunner(hookCaller, log.WithName("hooks"), hooks.RunnerOptions{Workers: o.hookWorkers})
	eventPoster := hooks.NewEventPoster(hookCaller, log.WithName("event-hooks"), hooks.EventPosterOptions{Workers: o.eventHookWorkers})
	for _, r := range []manager.Runnable{hookRunner, eventPoster} {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("adding the hook workers: %w", err)
		}
	}
	events, stopEvents, err := newEventRecorder(cfg, scheme)
	if err != nil {
		return err
	}
	defer stopEvents()
	reconciler := &canary.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Events:     events,
		Metrics:    &metrics.Recorder{},
		Hooks:      hookCaller,
		HookRunner: hookRunner,
		EventHooks: eventPoster,
		Checks: &metricchecks.Checker{
			// Live reads: MetricTemplates change rarely and Secrets must not be cached.
			Reader:               mgr.GetAPIReader(),
			DefaultAddress:       o.metricsServer,
			Provider:             o.meshProvider,
			NoCrossNamespaceRefs: o.noCrossNamespaceRefs,
			Egress:               egressPolicy,
		},
		Alerts: alertDispatcher,
		Options: canary.Options{
			MeshProvider:         o.meshProvider,
			WatchIstio:           istio,
			OwnedRoutes:          gatewayRoutes,
			SelectorLabels:       splitList(o.selectorLabels),
			ConfigTracking:       o.enableConfigTracking,
			Workers:              o.flagger.threadiness,
			IncludeLabelPrefix:   o.flagger.labelPrefixes(),
			EventWebhook:         o.flagger.eventWebhookURL(os.Getenv),
			ClusterName:          o.flagger.clusterName,
			NoCrossNamespaceRefs: o.noCrossNamespaceRefs,
			Shard:                o.shard,
			InitializationRate:   o.initializationRate,
			InitializationBurst:  o.initializationBurst,
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
	if !o.metricsSecure.set && o.metricsAddr != "0" {
		log.Info("Serving /metrics and /healthz over plain HTTP without authentication, as Flagger does on its port: "+
			"set --metrics-secure (Herald's chart and kustomize install do) to require authorization", "address", o.metricsAddr)
	}
	log.Info("Starting Herald", "version", version.Version, "meshProvider", o.meshProvider,
		"selectorLabels", o.selectorLabels, "metricsServer", o.metricsServer, "namespace", o.namespace)
	return mgr.Start(ctx)
}

// metricsOptions serves /metrics behind an authentication and authorization filter (a
// TokenReview and a SubjectAccessReview per new caller, cached; internal/metricsauth), on
// HTTPS with a self-signed certificate; -metrics-secure=false serves plain HTTP on loopback.
func (o *options) metricsOptions() metricsserver.Options {
	if !o.metricsSecure.value || o.flagger.port != "" {
		// Plain HTTP: Flagger's manifests (no -metrics-secure), its -port, or a loopback
		// local run. /healthz beside /metrics, where Flagger's probes look.
		return metricsserver.Options{BindAddress: o.metricsAddr, ExtraHandlers: map[string]http.Handler{"/healthz": healthzHandler()}}
	}
	return metricsserver.Options{
		BindAddress:    o.metricsAddr,
		SecureServing:  true,
		FilterProvider: metricsauth.Filter,
		TLSOpts:        []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
	}
}

// loopbackAddress reports whether a bind address (host:port) listens on loopback only.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ set, value bool }

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.set, b.value = true, v
	return nil
}

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return "unset"
	}
	return strconv.FormatBool(b.value)
}

// IsBoolFlag lets "-metrics-secure" alone mean true.
func (b *optionalBool) IsBoolFlag() bool { return true }

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
	return serves(dc, "networking.istio.io/v1", "virtualservices")
}

// servedGatewayRoutes returns the Gateway API route kinds the cluster serves, for the
// controller to watch: HTTPRoute of v1 (or, on older installations, v1beta1) and GRPCRoute.
func servedGatewayRoutes(cfg *rest.Config) ([]client.Object, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	var out []client.Object
	v1 := gatewayv1.GroupVersion.String()
	switch ok, err := serves(dc, v1, "httproutes"); {
	case err != nil:
		return nil, err
	case ok:
		out = append(out, &gatewayv1.HTTPRoute{})
	default:
		if ok, err := serves(dc, gatewayv1beta1.GroupVersion.String(), "httproutes"); err != nil {
			return nil, err
		} else if ok {
			out = append(out, &gatewayv1beta1.HTTPRoute{})
		}
	}
	if ok, err := serves(dc, v1, "grpcroutes"); err != nil {
		return nil, err
	} else if ok {
		out = append(out, &gatewayv1.GRPCRoute{})
	}
	return out, nil
}

// serves reports whether the cluster serves resource in groupVersion.
func serves(dc discovery.DiscoveryInterface, groupVersion, resource string) (bool, error) {
	resources, err := dc.ServerResourcesForGroupVersion(groupVersion)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", groupVersion, err)
	}
	for _, r := range resources.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}

// cachesSynced is ready once every informer of the caches has synced (the manager's, and the
// admission handlers' metadata cache): before that, nothing Herald serves is current. An
// informer started later (a router's kind whose CRD came after Herald) counts from then on.
// It answers within syncProbeWait: a probe whose client sets no timeout must not hang on a
// cache that never syncs.
func cachesSynced(caches map[string]cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), syncProbeWait)
		defer cancel()
		for name, c := range caches {
			if !c.WaitForCacheSync(ctx) {
				return fmt.Errorf("the %s cache has not synced", name)
			}
		}
		return nil
	}
}

// syncProbeWait bounds how long a readiness probe waits for the caches to sync.
const syncProbeWait = time.Second
