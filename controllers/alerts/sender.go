package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/backoff"
	"github.com/herald-rollouts/herald/internal/egress"
)

// Defaults of AlertProviders, Flagger's: Slack and Rocket.Chat post to #general as "flagger"
// unless the provider says otherwise.
const (
	DefaultChannel  = "general"
	DefaultUsername = "flagger"
)

// Keys of an AlertProvider's Secret.
const (
	SecretAddressKey = "address"
	SecretTokenKey   = "token"
)

// Delivery defaults: a few quick tries, so a chat service that hiccups still gets the alert
// but a dead one costs a worker only seconds.
const (
	DefaultAttempts = 3
	DefaultBackoff  = 500 * time.Millisecond
	DefaultTimeout  = 5 * time.Second
)

// Destination is a resolved provider: where and how to post. Address and Token are
// credentials (a chat webhook URL is one): they are never logged nor put into errors; String
// names the provider only.
type Destination struct {
	// Type is the provider type (slack, msteams, discord, rocket, gchat, webhook).
	Type string
	// Name identifies the provider in logs: "<namespace>/<name>" of an AlertProvider, or
	// "global" for the flag-configured one.
	Name     string
	Address  string
	Token    string
	Proxy    string
	Channel  string
	Username string
}

func (d Destination) String() string { return d.Type + " provider " + d.Name }

// Sender resolves AlertProviders and posts messages to them.
type Sender struct {
	// Reader reads AlertProviders and their Secrets. Give it an uncached reader (the
	// manager's APIReader): Herald's cache holds no Secrets, and alerts are rare.
	Reader client.Reader
	// Global receives every alert of Canaries without analysis.alerts (Flagger's -slack-url
	// and -msteams-url).
	Global []Destination
	// Attempts, Backoff (doubled after each try) and Timeout (of one POST); zero means the
	// default.
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	// NoCrossNamespaceRefs refuses a providerRef to another namespace than the Canary's
	// (Flagger's -no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
	// Egress decides which addresses alerts may be posted to (see package egress).
	Egress egress.Policy

	// One client for every destination: a provider's proxy is chosen per request (see
	// proxyFor), so there is no client per proxy URL to keep, and the transport's idle
	// connections are bounded.
	once       sync.Once
	httpClient *http.Client
}

// Destinations returns where a message of severity sev from a Canary in namespace goes: the
// alerts that want it (see Wants), or the global providers when the Canary has no alerts.
// Alerts whose provider cannot be resolved are skipped and reported in the joined error, one
// per alert with its field path; the others are still returned.
func (s *Sender) Destinations(ctx context.Context, namespace string, alerts []flaggerv1.CanaryAlert, sev Severity) ([]Destination, error) {
	if len(alerts) == 0 {
		return s.Global, nil
	}
	var out []Destination
	var errs []error
	for i, a := range alerts {
		if !Wants(a.Severity, sev) {
			continue
		}
		ns := a.ProviderRef.Namespace
		if ns == "" {
			ns = namespace
		}
		if s.NoCrossNamespaceRefs && ns != namespace {
			errs = append(errs, fmt.Errorf("spec.analysis.alerts[%d].providerRef.namespace: %q is not the Canary's namespace %q, and Herald runs with -no-cross-namespace-refs", i, ns, namespace))
			continue
		}
		d, err := s.Resolve(ctx, ns, a.ProviderRef.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.analysis.alerts[%d].providerRef: %w", i, err))
			continue
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// Resolve reads the AlertProvider namespace/name, and its Secret when it has a secretRef,
// into a Destination with Flagger's defaults.
func (s *Sender) Resolve(ctx context.Context, namespace, name string) (Destination, error) {
	var p flaggerv1.AlertProvider
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
		return Destination{}, fmt.Errorf("reading AlertProvider %s/%s: %w", namespace, name, err)
	}
	d := Destination{
		Type:     p.Spec.Type,
		Name:     namespace + "/" + name,
		Address:  p.Spec.Address,
		Proxy:    p.Spec.Proxy,
		Channel:  p.Spec.Channel,
		Username: p.Spec.Username,
	}
	if d.Channel == "" {
		d.Channel = DefaultChannel
	}
	if d.Username == "" {
		d.Username = DefaultUsername
	}
	if ref := p.Spec.SecretRef; ref != nil && ref.Name != "" {
		var secret corev1.Secret
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
			return Destination{}, fmt.Errorf("AlertProvider %s/%s: reading spec.secretRef %s: %w", namespace, name, ref.Name, err)
		}
		if a := strings.TrimSpace(string(secret.Data[SecretAddressKey])); a != "" {
			d.Address = a
		}
		d.Token = strings.TrimSpace(string(secret.Data[SecretTokenKey]))
		if d.Address == "" {
			return Destination{}, fmt.Errorf("AlertProvider %s/%s: Secret %s has no key %q and spec.address is empty", namespace, name, ref.Name, SecretAddressKey)
		}
	}
	if err := d.validate(); err != nil {
		return Destination{}, fmt.Errorf("AlertProvider %s/%s: %w", namespace, name, err)
	}
	if d.Type == flaggerv1.AlertProviderDiscord {
		d.Address = discordAddress(d.Address)
	}
	return d, nil
}

// validate checks what posting needs, without echoing the (secret) address.
func (d Destination) validate() error {
	if _, ok := encoders[d.Type]; !ok {
		return fmt.Errorf("spec.type %q is not supported", d.Type)
	}
	if d.Address == "" {
		return errors.New("spec.address: an absolute http or https URL is required")
	}
	if !httpURL(d.Address) {
		return errors.New("address: must be an absolute http or https URL")
	}
	if d.Proxy != "" && !httpURL(d.Proxy) {
		return errors.New("spec.proxy: must be an absolute http or https URL")
	}
	return nil
}

func httpURL(raw string) bool {
	u, err := url.ParseRequestURI(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// permanentError is a failure no retry can fix (a 4xx other than 408 and 429, a bad body).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Send posts m to d, retrying transient failures (network errors, timeouts, 408, 429, 5xx)
// up to Attempts times with a doubling backoff. It returns the last error.
func (s *Sender) Send(ctx context.Context, d Destination, m Message) error {
	encode, ok := encoders[d.Type]
	if !ok {
		return fmt.Errorf("%s: type %q is not supported", d, d.Type)
	}
	body, err := encode(m, d)
	if err != nil {
		return fmt.Errorf("%s: encoding the alert: %w", d, err)
	}
	attempts, first := s.Attempts, s.Backoff
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if first <= 0 {
		first = DefaultBackoff
	}
	var last error
	err = backoff.Do(ctx, backoff.Policy{Attempts: attempts, First: first}, func(ctx context.Context, _ int) (bool, error) {
		last = s.post(ctx, d, body)
		var permanent *permanentError
		return !errors.As(last, &permanent), last
	})
	switch {
	case err == nil:
		return nil
	case last != nil && !errors.Is(err, last):
		return fmt.Errorf("%s: %w (giving up: %w)", d, last, err)
	}
	return fmt.Errorf("%s: %w", d, err)
}

// post makes one attempt. Any 2xx is success: Discord answers 204, the others 200.
func (s *Sender) post(ctx context.Context, d Destination, body []byte) error {
	if err := s.Egress.CheckURL(d.Address); err != nil {
		return &permanentError{err}
	}
	var proxy *url.URL
	if d.Proxy != "" {
		u, err := url.Parse(d.Proxy)
		if err != nil || !httpURL(d.Proxy) {
			return &permanentError{errors.New("proxy: must be an absolute http or https URL")}
		}
		if err := s.Egress.CheckHost(u.Hostname()); err != nil {
			return &permanentError{fmt.Errorf("proxy: %w", err)}
		}
		proxy = u
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if proxy != nil {
		ctx = context.WithValue(ctx, proxyKey{}, proxy)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Address, bytes.NewReader(body))
	if err != nil {
		return &permanentError{errors.New("building the request failed (check the address)")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald")
	if d.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.Token)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		// A *url.Error carries the address, which is a credential: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, egress.ErrRefused) {
			return &permanentError{fmt.Errorf("POST refused: %w", err)}
		}
		return fmt.Errorf("POST failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return nil
	}
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err = fmt.Errorf("POST answered %s: %s", resp.Status, strings.TrimSpace(string(detail)))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return err
	}
	return &permanentError{err}
}

// proxyKey carries a destination's proxy in its request's context.
type proxyKey struct{}

// proxyFor is the transport's Proxy function: the destination's own proxy, else the
// environment's.
func proxyFor(req *http.Request) (*url.URL, error) {
	if u, ok := req.Context().Value(proxyKey{}).(*url.URL); ok {
		return u, nil
	}
	return http.ProxyFromEnvironment(req)
}

// client is the Sender's one HTTP client: it dials through the egress policy, picks each
// destination's proxy per request and follows redirects only to the same host, without
// the token.
func (s *Sender) client() *http.Client {
	s.once.Do(func() {
		t := s.Egress.Transport()
		t.Proxy = proxyFor
		s.httpClient = &http.Client{Transport: &egress.Guard{Policy: s.Egress, Next: t}, CheckRedirect: s.Egress.CheckRedirect}
	})
	return s.httpClient
}
