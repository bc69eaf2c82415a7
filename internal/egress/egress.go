/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package egress is the one address policy of every request Herald makes on a Canary
// author's behalf: metric queries, analysis and event hooks, and alerts. A Canary, a
// MetricTemplate or an AlertProvider names an address, so anyone who may write one could
// otherwise make Herald call what only Herald can reach: the cloud's instance metadata
// service (credentials of the node), link-local services, and, through a redirect, any of
// those behind an address that looks harmless.
//
// The policy refuses
//
//   - link-local addresses (169.254.0.0/16, fe80::/10), where the metadata services of
//     AWS, GCP, Azure, Oracle and DigitalOcean answer;
//   - the other metadata addresses (Alibaba's 100.100.100.200, AWS's fd00:ec2::254) and
//     metadata host names (metadata.google.internal, ...), by name before resolution;
//   - unspecified addresses (0.0.0.0, ::), which reach the local host;
//   - loopback, only when the policy says so (tests and local control planes use it).
//
// Addresses are checked twice: the URL's host when a request is made (an IP literal or a
// metadata name), and the IP that is actually dialled, in a net.Dialer Control function,
// so that a name which resolves to a refused address (or a DNS answer that changes between
// check and use) is caught. With an HTTP proxy the dial goes to the proxy, which is
// checked, while the target is checked by name only.
//
// Redirects are followed only to the same scheme, host and port, at most MaxRedirects
// times, and never carry credentials: the Authorization header is removed from a
// redirected request (callers that add credentials in a RoundTripper must skip requests
// whose Response is set, see IsRedirect).
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// MaxRedirects is how many same-host redirects one request may follow.
const MaxRedirects = 3

// ErrRefused is matched (errors.Is) by every refusal of the policy.
var ErrRefused = errors.New("address refused by Herald's egress policy")

// RefusedError names the refused address and why.
type RefusedError struct {
	// Address is the host or IP refused (never a URL's userinfo, path or query).
	Address string
	// Reason says which rule refused it.
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %s is %s", ErrRefused.Error(), e.Address, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Policy decides which addresses may be called. The zero value refuses link-local and
// metadata addresses and allows loopback.
type Policy struct {
	// DenyLoopback also refuses 127.0.0.0/8, ::1 and "localhost" (Herald's
	// -egress-allow-loopback=false).
	DenyLoopback bool
}

// metadataHosts are host names of cloud metadata services, refused before any lookup.
var metadataHosts = []string{
	"metadata.google.internal",
	"metadata.goog",
	"metadata",
	"instance-data",
	"instance-data.ec2.internal",
	"metadata.tencentyun.com",
}

// metadataIPs are metadata addresses outside the link-local ranges.
var metadataIPs = []netip.Addr{
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
}

// CheckIP reports whether ip may be dialled.
func (p Policy) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap() // ::ffff:169.254.169.254 is 169.254.169.254
	refuse := func(reason string) error { return &RefusedError{Address: ip.String(), Reason: reason} }
	switch {
	case !ip.IsValid():
		return &RefusedError{Address: "(invalid)", Reason: "not an IP address"}
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return refuse("a link-local address (where cloud metadata services answer)")
	case ip.IsUnspecified():
		return refuse("the unspecified address (it reaches the local host)")
	case p.DenyLoopback && ip.IsLoopback():
		return refuse("a loopback address (-egress-allow-loopback=false)")
	}
	for _, m := range metadataIPs {
		if ip == m {
			return refuse("a cloud metadata service address")
		}
	}
	return nil
}

// CheckHost reports whether a URL's host (a name or an IP literal, without port) may be
// called. Names are checked against the metadata names only; what they resolve to is
// checked when dialling.
func (p Policy) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "" {
		return &RefusedError{Address: "(empty host)", Reason: "not a host"}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return p.CheckIP(ip)
	}
	// Zone-qualified literals (fe80::1%eth0) do not parse above.
	if i := strings.IndexByte(h, '%'); i > 0 {
		if ip, err := netip.ParseAddr(h[:i]); err == nil {
			return p.CheckIP(ip)
		}
	}
	for _, m := range metadataHosts {
		if h == m {
			return &RefusedError{Address: h, Reason: "a cloud metadata service host"}
		}
	}
	if p.DenyLoopback && (h == "localhost" || strings.HasSuffix(h, ".localhost")) {
		return &RefusedError{Address: h, Reason: "a loopback host (-egress-allow-loopback=false)"}
	}
	return nil
}

// CheckURL checks the host of an absolute URL. It does not check the scheme: callers say
// which schemes they take.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	return p.CheckHost(u.Hostname())
}

// Control is a net.Dialer Control function that refuses connections to addresses the
// policy refuses; it sees the resolved IP of every dial.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &RefusedError{Address: host, Reason: "not an IP address at dial time"}
	}
	return p.CheckIP(ip)
}

// Dialer returns a dialer that applies the policy to every connection.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: p.Control}
}

// Transport returns a transport that dials through the policy, with the usual pooling and
// timeouts, the environment's proxy settings, and TLS 1.2 at least. Callers may adjust the
// copy they get (its TLS config, its proxy).
func (p Policy) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           p.Dialer().DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // bounded by each request's context instead
	}
}

// CheckRedirect is an http.Client CheckRedirect function: it follows a redirect only to
// the same scheme, host and port as the first request, at most MaxRedirects times, and
// removes the Authorization header (and cookies) from the redirected request. The error
// names the refused location's host, never its userinfo or query.
func (p Policy) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("%w: stopped after %d redirects", ErrRefused, len(via))
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !sameHost(req.URL, first) {
		return &RefusedError{Address: req.URL.Host, Reason: fmt.Sprintf("a redirect away from %s (redirects are followed only to the same host)", first.Host)}
	}
	if err := p.CheckHost(req.URL.Hostname()); err != nil {
		return err
	}
	req.Header.Del("Authorization")
	req.Header.Del("Proxy-Authorization")
	req.Header.Del("Cookie")
	return nil
}

func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// IsRedirect reports whether req is a redirect the client follows (and so must carry no
// credentials a RoundTripper would add).
func IsRedirect(req *http.Request) bool { return req.Response != nil }

// Client returns an http.Client with the policy's transport (behind a Guard) and redirect
// rule.
func (p Policy) Client() *http.Client {
	return &http.Client{Transport: &Guard{Policy: p, Next: p.Transport()}, CheckRedirect: p.CheckRedirect}
}

// Guard is an http.RoundTripper that checks each request's host against the policy
// before passing it on (the dialer checks the resolved IP). Wrap a transport with it when
// requests may go through a proxy, where the dialer only sees the proxy.
type Guard struct {
	Policy Policy
	Next   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (g *Guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.Policy.CheckHost(req.URL.Hostname()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	next := g.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}
