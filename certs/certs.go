// Package certs provides the webhook server's TLS certificate.
//
// github.com/open-policy-agent/cert-controller generates the CA and the serving certificate into
// a Secret and rotates them. Herald does the rest itself, because cert-controller's own CA
// injection replaces caBundle with the new CA at once: from then until the server reloads its
// certificate, the API server trusts only the new CA while the server still presents the old
// leaf, and admission requests fail (fatal for failurePolicy: Fail). Here, instead:
//
//  1. the new CA is added to the caBundle of every Herald webhook configuration next to the
//     previous one (a trust bundle of the current and the previous CA: every older CA, even
//     one still valid, is dropped, so a CA key that leaked is trusted for one rotation at
//     most);
//  2. only once every configuration trusts the new CA, and after SwitchDelay (time for the API
//     server's informers to see the new bundle), the server starts presenting the new leaf;
//  3. CAs that have expired drop out of the bundle on the next pass.
//
// The manager is ready only when a certificate is being served and trusted.
package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Options configure Setup.
type Options struct {
	// Secret holds ca.crt, ca.key, tls.crt and tls.key; cert-controller creates and rotates it.
	Secret types.NamespacedName
	// DNSName is the name the API server dials: <service>.<namespace>.svc in a cluster,
	// "localhost" for local runs.
	DNSName string
	// CertDir receives tls.crt and tls.key of the certificate being served (cert-controller
	// waits for them there before it reports ready).
	CertDir string
	// MutatingWebhooks and ValidatingWebhooks are the names of the configurations whose
	// caBundle Herald keeps.
	MutatingWebhooks, ValidatingWebhooks []string
	// CAValidity and CertValidity default to cert-controller's (10 years, 1 year); tests
	// shorten them to exercise rotation.
	CAValidity, CertValidity time.Duration
	// Lookahead is how long before expiry a certificate is renewed (default 90 days).
	Lookahead time.Duration
	// CheckEvery is how often cert-controller checks for expiry (default 12 hours).
	CheckEvery time.Duration
	// SwitchDelay is how long a new CA must have been trusted before its leaf is served
	// (default 2 s).
	SwitchDelay time.Duration
	// RequireLeaderElection makes cert-controller rotate only on the leader; all replicas
	// still serve and inject.
	RequireLeaderElection bool
}

// Manager serves the current certificate and tells when it is ready.
type Manager struct {
	opts   Options
	log    logr.Logger
	active atomic.Pointer[tls.Certificate]
	ready  chan struct{}
	once   sync.Once

	mu sync.Mutex
	// pendingLeaf is the leaf waiting to be served, and pendingSince when every bundle was
	// first seen to trust its CA.
	pendingLeaf  string
	pendingSince time.Time
}

// Setup adds cert-controller's rotator and Herald's injector to mgr.
func Setup(mgr ctrl.Manager, opts Options) (*Manager, error) {
	if opts.Secret.Name == "" || opts.Secret.Namespace == "" || opts.DNSName == "" || opts.CertDir == "" {
		return nil, errors.New("certs: Secret, DNSName and CertDir are required")
	}
	if opts.SwitchDelay == 0 {
		opts.SwitchDelay = 2 * time.Second
	}
	if err := os.MkdirAll(opts.CertDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating cert dir: %w", err)
	}
	m := &Manager{opts: opts, log: mgr.GetLogger().WithName("certs"), ready: make(chan struct{})}

	// cert-controller only generates and rotates; Webhooks is empty so that it never writes
	// a caBundle (see the package comment).
	if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:              opts.Secret,
		CertDir:                opts.CertDir,
		CAName:                 "herald-ca",
		CAOrganization:         "herald",
		DNSName:                opts.DNSName,
		IsReady:                make(chan struct{}),
		RequireLeaderElection:  opts.RequireLeaderElection,
		CaCertDuration:         opts.CAValidity,
		ServerCertDuration:     opts.CertValidity,
		LookaheadInterval:      opts.Lookahead,
		RotationCheckFrequency: opts.CheckEvery,
		ControllerName:         "herald-cert-rotator",
	}); err != nil {
		return nil, fmt.Errorf("adding cert rotator: %w", err)
	}

	isOurs := func(names []string) predicate.Funcs {
		return predicate.NewPredicateFuncs(func(o client.Object) bool { return slices.Contains(names, o.GetName()) })
	}
	toSecret := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: opts.Secret}}
	})
	err := ctrl.NewControllerManagedBy(mgr).
		Named("herald-ca-injector").
		For(&corev1.Secret{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == opts.Secret.Namespace && o.GetName() == opts.Secret.Name
		}))).
		Watches(&admissionregistrationv1.MutatingWebhookConfiguration{}, toSecret, builder.WithPredicates(isOurs(opts.MutatingWebhooks))).
		Watches(&admissionregistrationv1.ValidatingWebhookConfiguration{}, toSecret, builder.WithPredicates(isOurs(opts.ValidatingWebhooks))).
		// Every replica serves, so every replica must inject and switch, not only the leader.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(reconcile.Func(func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
			return m.reconcile(ctx, mgr.GetClient())
		}))
	if err != nil {
		return nil, fmt.Errorf("adding CA injector: %w", err)
	}
	return m, nil
}

// GetCertificate is the webhook server's tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.active.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// Ready is closed once a certificate is served and every webhook configuration trusts it.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// reconcile brings every caBundle to the trust bundle and switches the served leaf when safe.
func (m *Manager) reconcile(ctx context.Context, c client.Client) (reconcile.Result, error) {
	var secret corev1.Secret
	if err := c.Get(ctx, m.opts.Secret, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil // cert-controller creates it; its event brings us back
		}
		return reconcile.Result{}, fmt.Errorf("reading certificate secret: %w", err)
	}
	caPEM, certPEM, keyPEM := secret.Data["ca.crt"], secret.Data["tls.crt"], secret.Data["tls.key"]
	if len(caPEM) == 0 || len(certPEM) == 0 || len(keyPEM) == 0 {
		return reconcile.Result{}, nil // not generated yet
	}
	leaf, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return reconcile.Result{}, reconcile.TerminalError(fmt.Errorf("certificate secret %s holds an invalid key pair: %w", m.opts.Secret, err))
	}

	allTrust, err := m.inject(ctx, c, caPEM)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !allTrust {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}

	current := m.active.Load()
	if current != nil && bytes.Equal(current.Certificate[0], leaf.Certificate[0]) {
		m.markReady()
		return reconcile.Result{}, nil
	}
	// The first certificate is served at once: nothing was served before, so nothing breaks.
	// A replacement waits until its CA has been trusted for SwitchDelay.
	key := string(leaf.Certificate[0])
	m.mu.Lock()
	if m.pendingLeaf != key {
		m.pendingLeaf, m.pendingSince = key, time.Now()
	}
	since := m.pendingSince
	m.mu.Unlock()
	if current != nil {
		if wait := m.opts.SwitchDelay - time.Since(since); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
	}
	if err := writeFileAtomic(filepath.Join(m.opts.CertDir, "tls.crt"), certPEM); err != nil {
		return reconcile.Result{}, err
	}
	if err := writeFileAtomic(filepath.Join(m.opts.CertDir, "tls.key"), keyPEM); err != nil {
		return reconcile.Result{}, err
	}
	m.active.Store(&leaf)
	m.log.Info("Serving webhook certificate", "notAfter", notAfter(certPEM), "rotation", current != nil)
	m.markReady()
	return reconcile.Result{}, nil
}

func (m *Manager) markReady() { m.once.Do(func() { close(m.ready) }) }

// inject writes the trust bundle into every configuration and reports whether all of them
// (that exist) trust caPEM.
func (m *Manager) inject(ctx context.Context, c client.Client, caPEM []byte) (bool, error) {
	all := true
	type target struct {
		name    string
		obj     client.Object
		bundles func() []*[]byte // the caBundle of each webhook in obj
	}
	var targets []target
	for _, name := range m.opts.MutatingWebhooks {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		targets = append(targets, target{name, cfg, func() []*[]byte {
			out := make([]*[]byte, len(cfg.Webhooks))
			for i := range cfg.Webhooks {
				out[i] = &cfg.Webhooks[i].ClientConfig.CABundle
			}
			return out
		}})
	}
	for _, name := range m.opts.ValidatingWebhooks {
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		targets = append(targets, target{name, cfg, func() []*[]byte {
			out := make([]*[]byte, len(cfg.Webhooks))
			for i := range cfg.Webhooks {
				out[i] = &cfg.Webhooks[i].ClientConfig.CABundle
			}
			return out
		}})
	}
	for _, t := range targets {
		if err := c.Get(ctx, client.ObjectKey{Name: t.name}, t.obj); err != nil {
			if apierrors.IsNotFound(err) {
				all = false
				continue
			}
			return false, fmt.Errorf("reading webhook configuration %s: %w", t.name, err)
		}
		patch := client.MergeFrom(t.obj.DeepCopyObject().(client.Object))
		changed := false
		for _, bundle := range t.bundles() {
			if b := TrustBundle(caPEM, *bundle, time.Now()); !bytes.Equal(b, *bundle) {
				*bundle, changed = b, true
			}
		}
		if changed {
			if err := c.Patch(ctx, t.obj, patch); err != nil {
				return false, fmt.Errorf("injecting CA into %s: %w", t.name, err)
			}
		}
	}
	return all, nil
}

// maxBundle bounds the trust bundle: the current CA and the previous one, which the server
// may still present until it switches to the new leaf. cert-controller's CAs are valid for
// ten years; keeping every valid one would trust each CA ever generated for that long.
const maxBundle = 2

// TrustBundle returns the PEM bundle that trusts newCA first, followed by the previous CA (the
// first other CA of existing) while it is valid at now: at most maxBundle certificates. The output is
// deterministic for the same input, so re-running it changes nothing.
func TrustBundle(newCA, existing []byte, now time.Time) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	n := 0
	add := func(der []byte) {
		if seen[string(der)] || n >= maxBundle {
			return
		}
		seen[string(der)] = true
		n++
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	for _, der := range certsOf(newCA) {
		add(der)
	}
	// The bundle is kept newest first, so the previous CA is the first other CA in it; it
	// stays only while valid, and nothing older is looked for.
	for _, der := range certsOf(existing) {
		cert, err := x509.ParseCertificate(der)
		if err != nil || !cert.IsCA || seen[string(der)] {
			continue
		}
		if !now.After(cert.NotAfter) {
			add(der)
		}
		break
	}
	return out.Bytes()
}

func certsOf(bundle []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

func notAfter(certPEM []byte) time.Time {
	ders := certsOf(certPEM)
	if len(ders) == 0 {
		return time.Time{}
	}
	c, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return time.Time{}
	}
	return c.NotAfter
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
