package router

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"time"

	istio "istio.io/api/networking/v1alpha3"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Session affinity keeps a user on the version that first served them during a canary run.
// While the canary receives traffic, its responses on the weighted route set a cookie
// (status.sessionAffinityCookie, "<cookieName>=<random value>"), and a route in front of the
// weighted one sends every request that carries the cookie to the canary. With
// primaryCookieName, the primary's responses set a second cookie, valid for one analysis
// interval, that pins its holders to the primary until the next weight step. When the run
// ends (canary weight back to 0), the cookie moves to status.previousSessionAffinityCookie and
// a route answers its holders with the same cookie expired, so browsers drop it.

const (
	cookieHeader    = "cookie" // Istio refuses upper-case header names in matches.
	setCookieHeader = "Set-Cookie"
)

// parseCookie splits a "name=value" status cookie.
func parseCookie(s string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(s, "=")
	return name, value, ok && name != "" && value != ""
}

// newCookieValue returns a random cookie value: 26 characters of A-Z and 2-7, valid in a
// cookie and literal in a regular expression.
var newCookieValue = rand.Text

// updateSessionCookies moves the cookies of c.status for a split with canaryWeight: it
// creates the cookies when the canary starts receiving traffic, renews one whose name no
// longer matches the spec, and retires them when the weight is back to 0. The caller writes
// the status.
func updateSessionCookies(c *flaggerv1.Canary, canaryWeight int) {
	a := c.GetAnalysis()
	if a == nil || a.SessionAffinity == nil || len(a.Match) > 0 || isTCP(c) {
		return
	}
	sa, st := a.SessionAffinity, &c.Status
	if canaryWeight > 0 {
		if name, _, ok := parseCookie(st.SessionAffinityCookie); !ok || name != sa.CookieName {
			st.SessionAffinityCookie = sa.CookieName + "=" + newCookieValue()
		}
		if sa.PrimaryCookieName == "" {
			st.PrimarySessionAffinityCookie = ""
		} else if name, _, ok := parseCookie(st.PrimarySessionAffinityCookie); !ok || name != sa.PrimaryCookieName {
			st.PrimarySessionAffinityCookie = sa.PrimaryCookieName + "=" + newCookieValue()
		}
		return
	}
	if st.SessionAffinityCookie != "" {
		st.PreviousSessionAffinityCookie = st.SessionAffinityCookie
		st.SessionAffinityCookie = ""
	}
	// The primary cookie expires by itself after one interval; the next run makes a new one.
	st.PrimarySessionAffinityCookie = ""
}

// cookieMatch matches requests whose Cookie header holds name=value. Unlike Flagger's
// ".*name.*value.*", the pattern is anchored to cookie boundaries, so another cookie whose
// name or value merely contains these strings does not match.
func cookieMatch(name, value string) *istio.HTTPMatchRequest {
	return &istio.HTTPMatchRequest{Headers: map[string]*istio.StringMatch{
		cookieHeader: {MatchType: &istio.StringMatch_Regex{Regex: cookiePattern(name, value)}},
	}}
}

// cookiePattern is the regular expression that matches a Cookie header holding name=value,
// anchored to cookie boundaries.
func cookiePattern(name, value string) string {
	return `^(.*;\s*)?` + regexp.QuoteMeta(name) + "=" + regexp.QuoteMeta(value) + `(;.*)?$`
}

// setCookie returns the Set-Cookie value for a "name=value" cookie with sa's attributes.
// The attributes are repeated when the cookie is expired: a browser deletes a cookie only
// when domain and path match the ones it was set with (Flagger's expiry left them out).
func setCookie(sa *flaggerv1.SessionAffinity, cookie string, maxAge int) string {
	parts := []string{cookie, fmt.Sprintf("Max-Age=%d", maxAge)}
	if sa.Domain != "" {
		parts = append(parts, "Domain="+sa.Domain)
	}
	if sa.Path != "" {
		parts = append(parts, "Path="+sa.Path)
	}
	if sa.SameSite != "" {
		parts = append(parts, "SameSite="+sa.SameSite)
	}
	if sa.Secure {
		parts = append(parts, "Secure")
	}
	if sa.HTTPOnly {
		parts = append(parts, "HttpOnly")
	}
	if sa.Partitioned {
		parts = append(parts, "Partitioned")
	}
	return strings.Join(parts, "; ")
}

// addResponseHeader appends a response header to the operations *h, creating them if needed.
func addResponseHeader(h **istio.Headers, name, value string) {
	if *h == nil {
		*h = &istio.Headers{}
	}
	if (*h).Response == nil {
		(*h).Response = &istio.Headers_HeaderOperations{}
	}
	if (*h).Response.Add == nil {
		(*h).Response.Add = map[string]string{}
	}
	(*h).Response.Add[name] = value
}

// sessionRoutes returns the routes that go before weighted (the route carrying s) and adds
// the cookie headers to weighted's destinations. The cookies come from c.status, as
// updateSessionCookies left them; a missing cookie gives no route.
func (b *vsBuilder) sessionRoutes(sa *flaggerv1.SessionAffinity, weighted *istio.HTTPRoute, s Split) []*istio.HTTPRoute {
	st := &b.c.Status
	var routes []*istio.HTTPRoute
	if s.Canary == 0 {
		if name, value, ok := parseCookie(st.PreviousSessionAffinityCookie); ok {
			r := b.weighted(b.mergeMatches([]*istio.HTTPMatchRequest{cookieMatch(name, value)}), s)
			r.Name = expireCookieRoute
			addResponseHeader(&r.Headers, setCookieHeader, setCookie(sa, st.PreviousSessionAffinityCookie, -1))
			routes = append(routes, r)
		}
		return routes
	}
	// weighted.Route is [primary, canary], as weighted() builds it.
	if name, value, ok := parseCookie(st.SessionAffinityCookie); ok && name == sa.CookieName {
		addResponseHeader(&weighted.Route[1].Headers, setCookieHeader, setCookie(sa, st.SessionAffinityCookie, sa.GetMaxAge()))
		r := b.route(b.mergeMatches([]*istio.HTTPMatchRequest{cookieMatch(name, value)}), b.httpDestination(b.canaryHost, 100))
		r.Name = stickyCanaryRoute
		routes = append(routes, r)
	}
	if name, value, ok := parseCookie(st.PrimarySessionAffinityCookie); ok && sa.PrimaryCookieName != "" && name == sa.PrimaryCookieName {
		// One interval: the holder is re-dealt at the next weight step, so the primary's
		// share of users shrinks as the canary's weight grows.
		maxAge := int(b.c.GetAnalysisInterval() / time.Second)
		addResponseHeader(&weighted.Route[0].Headers, setCookieHeader, setCookie(sa, st.PrimarySessionAffinityCookie, maxAge))
		r := b.route(b.mergeMatches([]*istio.HTTPMatchRequest{cookieMatch(name, value)}), b.httpDestination(b.primaryHost, 100))
		r.Name = stickyPrimaryRoute
		b.mirror(r, s)
		routes = append(routes, r)
	}
	return routes
}
