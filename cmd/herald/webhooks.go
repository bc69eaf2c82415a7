package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/certs"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/webhooks"
	"github.com/herald-rollouts/herald/webhooks/canary"
	"github.com/herald-rollouts/herald/webhooks/configs"
	"github.com/herald-rollouts/herald/webhooks/workload"
)

// webhookDNSName is the name in the serving certificate: the host of --webhook-url for local
// runs, the webhook Service's name in a cluster.
func (o *options) webhookDNSName() (string, error) {
	if o.webhookURL != "" {
		u, err := url.Parse(o.webhookURL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			return "", fmt.Errorf("-webhook-url %q must be an https URL", o.webhookURL)
		}
		return u.Hostname(), nil
	}
	return fmt.Sprintf("%s.%s.svc", o.webhookService, o.podNamespace), nil
}

// cacheOptions narrows the manager's cache: of all Secrets it holds only Herald's own
// certificate Secret, and of the webhook configurations only Herald's own two (its RBAC
// names them: a list or watch of them must select them by name).
func (o *options) cacheOptions() cache.Options {
	byName := func(name string) cache.ByObject {
		return cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", name)}
	}
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{o.podNamespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", o.webhookSecret),
		},
		&admissionregistrationv1.MutatingWebhookConfiguration{}:   byName(webhooks.MutatingName),
		&admissionregistrationv1.ValidatingWebhookConfiguration{}: byName(webhooks.ValidatingName),
	}, DefaultTransform: slimForCache}
	if o.shard != nil {
		// Only this shard's Canaries are cached, watched and counted in /metrics.
		opts.ByObject[&flaggerv1.Canary{}] = cache.ByObject{Label: o.shard}
	}
	if o.namespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{o.namespace: {}}
	}
	return opts
}

// slimForCache drops from every cached object the managed fields, most of a small object's size,
// which nothing Herald does reads. With the list nil, an update from a cached copy leaves the
// field ownership as it is. Workloads other than primaries keep who wrote them when (manager,
// operation, time), not which fields: the detection latency reads the time of the target's last
// write. A shortened list must never be sent back (it would take every other manager's
// ownership away): targets are only ever patched, and the controller's create-or-update clears
// the list before it writes (controllers/canary/sync.go).
func slimForCache(in any) (any, error) {
	obj, ok := in.(client.Object)
	if !ok || obj.GetManagedFields() == nil {
		return in, nil
	}
	switch in.(type) {
	case *appsv1.Deployment, *appsv1.DaemonSet, *appsv1.StatefulSet:
		if _, primary := obj.GetLabels()[contract.LabelPrimaryOf]; !primary {
			fields := obj.GetManagedFields()
			for i := range fields {
				fields[i].FieldsV1 = nil
			}
			return in, nil
		}
	}
	obj.SetManagedFields(nil)
	return in, nil
}

// newMetadataCache is the admission handlers' cache: only the metadata (labels, annotations)
// of tracked ConfigMaps and Secrets and of managed Deployments, so that Secret data is never
// loaded and memory stays small in large clusters. It is a cache of its own because
// controller-runtime keys cache options by GVK, and a metadata-only Secret or Deployment
// entry in the manager's cache would also narrow the typed informers other parts read.
func newMetadataCache(mgr ctrl.Manager, o *options) (cache.Cache, error) {
	partial := func(apiVersion, kind string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}}
	}
	exists := func(label string) labels.Selector {
		req, _ := labels.NewRequirement(label, selection.Exists, nil)
		return labels.NewSelector().Add(*req)
	}
	opts := cache.Options{
		Scheme: mgr.GetScheme(),
		Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{
			partial("v1", "Secret"):           {Label: exists(contract.LabelTracked)},
			partial("v1", "ConfigMap"):        {Label: exists(contract.LabelTracked)},
			partial("apps/v1", "Deployment"):  {Label: exists(contract.LabelCanary)},
			partial("apps/v1", "StatefulSet"): {Label: exists(contract.LabelCanary)},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if o.namespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{o.namespace: {}}
	}
	c, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, fmt.Errorf("creating metadata cache: %w", err)
	}
	// Start the three informers with the cache rather than on the first admission request.
	for obj := range opts.ByObject {
		if _, err := c.GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("watching %s metadata: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
		}
	}
	if err := mgr.Add(everyReplica{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// everyReplica runs a cache on every replica, as the webhooks that read it serve on every
// replica. A cache with options per object is a delegating cache that does not say whether it
// needs leader election, and the manager then starts it on the leader alone: a standby's
// admission reads failed (the cache was never started) and its readiness, which waits for the
// cache, never came.
type everyReplica struct{ cache.Cache }

func (everyReplica) NeedLeaderElection() bool { return false }

// ensureCertSecret creates the (empty) certificate Secret when it is missing: cert-controller
// fills a Secret but does not create one, and an install that forgot it must not leave Herald
// unable to serve.
func ensureCertSecret(ctx context.Context, cfg *rest.Config, o *options) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.podNamespace, Name: o.webhookSecret,
		Labels: map[string]string{"app.kubernetes.io/name": "herald"}}}
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating certificate secret %s/%s: %w", o.podNamespace, o.webhookSecret, err)
	}
	return nil
}

// setupWebhooks adds the certificate manager and every admission handler to mgr.
func setupWebhooks(mgr ctrl.Manager, o *options, metadata cache.Cache) (*certs.Manager, error) {
	dns, err := o.webhookDNSName()
	if err != nil {
		return nil, err
	}
	cm, err := certs.Setup(mgr, certs.Options{
		Secret:                types.NamespacedName{Namespace: o.podNamespace, Name: o.webhookSecret},
		DNSName:               dns,
		CertDir:               o.certDir,
		MutatingWebhooks:      []string{webhooks.MutatingName},
		ValidatingWebhooks:    []string{webhooks.ValidatingName},
		RequireLeaderElection: o.leaderElect,
	})
	if err != nil {
		return nil, err
	}
	controllerOpts := workload.Options{
		ControllerUsername:    o.controllerUsername,
		DisableConfigTracking: !o.enableConfigTracking,
	}
	server := mgr.GetWebhookServer()
	server.Register(webhooks.WorkloadPath, &webhook.Admission{Handler: workload.NewHandler(metadata, controllerOpts)})
	server.Register(webhooks.ScalePath, &webhook.Admission{Handler: workload.NewScaleHandler(metadata, controllerOpts)})
	server.Register(webhooks.ConfigPath, &webhook.Admission{Handler: configs.NewHandler()})
	if err := canary.SetupWithManager(mgr, canary.Options{
		DefaultProvider:      o.meshProvider,
		SelectorLabels:       splitList(o.selectorLabels),
		NoCrossNamespaceRefs: o.noCrossNamespaceRefs,
	}); err != nil {
		return nil, err
	}
	return cm, nil
}

// webhookServer serves the certificate the certificate manager chose.
func webhookServer(o *options, cm func() *certs.Manager) webhook.Server {
	return webhook.NewServer(webhook.Options{
		Host: o.webhookHost,
		Port: o.webhookPort,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if m := cm(); m != nil {
					return m.GetCertificate(hello)
				}
				return nil, errors.New("certificate manager not set up")
			}
		}},
	})
}

// webhooksReady is a readiness check: ready when a trusted certificate is served and the
// webhook server answers TLS.
func webhooksReady(mgr ctrl.Manager, cm *certs.Manager) func(*http.Request) error {
	started := mgr.GetWebhookServer().StartedChecker()
	return func(req *http.Request) error {
		select {
		case <-cm.Ready():
		default:
			return errors.New("webhook certificate not ready")
		}
		return started(req)
	}
}

// registerWebhooks creates or updates the webhook configurations with a URL clientConfig
// (local runs). The caBundle is left to the certificate manager: server-side apply keeps the
// field it owns.
func registerWebhooks(ctx context.Context, cfg *rest.Config, o *options, log logr.Logger) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.podNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", o.podNamespace, err)
	}
	mutating, validating := webhooks.Configurations(webhooks.Endpoint{URL: o.webhookURL}, o.podNamespace)
	for _, obj := range []client.Object{mutating, validating} {
		//nolint:staticcheck // typed server-side apply of a built-in kind
		if err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("herald-install"), client.ForceOwnership); err != nil {
			return fmt.Errorf("registering %s: %w", obj.GetName(), err)
		}
	}
	log.Info("Registered webhook configurations", "url", o.webhookURL)
	return nil
}
