package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// chatReceiver stands in for every chat service on loopback: it answers 200 and keeps each
// POST by path.
type chatReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string][]chatPost
}

type chatPost struct {
	authorization string
	body          map[string]any
}

func newChatReceiver() *chatReceiver {
	r := &chatReceiver{posts: map[string][]chatPost{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.posts[req.URL.Path] = append(r.posts[req.URL.Path], chatPost{req.Header.Get("Authorization"), body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	DeferCleanup(r.Close)
	return r
}

func (r *chatReceiver) at(path string) []chatPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chatPost(nil), r.posts[path]...)
}

// dig follows object keys and array indexes into decoded JSON; nil when the path is absent.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// textOf reads the alert's message from a post in the shape of provider type typ, and fails
// when the post does not have that shape.
func textOf(g Gomega, typ string, p chatPost) string {
	b := p.body
	var text any
	switch typ {
	case "slack":
		g.Expect(dig(b, "attachments", 0, "author_name")).To(HavePrefix("alerted"))
		g.Expect(dig(b, "attachments", 0, "color")).To(BeElementOf("good", "warning", "danger"))
		text = dig(b, "attachments", 0, "text")
	case "msteams":
		g.Expect(dig(b, "type")).To(Equal("message"))
		g.Expect(dig(b, "attachments", 0, "contentType")).To(Equal("application/vnd.microsoft.card.adaptive"))
		g.Expect(dig(b, "attachments", 0, "content", "type")).To(Equal("AdaptiveCard"))
		text = dig(b, "attachments", 0, "content", "body", 1, "text")
	case "discord":
		g.Expect(dig(b, "embeds", 0, "color")).To(BeNumerically(">", 0))
		text = dig(b, "embeds", 0, "description")
	case "rocket":
		g.Expect(dig(b, "alias")).To(Equal("flagger"))
		text = dig(b, "attachments", 0, "text")
	case "gchat":
		g.Expect(dig(b, "cardsV2", 0, "card", "header", "title")).To(HavePrefix("alerted"))
		text = dig(b, "cardsV2", 0, "card", "sections", 0, "widgets", 0, "textParagraph", "text")
	case "webhook":
		g.Expect(dig(b, "namespace")).To(Equal(ctrlNS))
		g.Expect(dig(b, "severity")).To(BeElementOf("info", "warn", "error"))
		text = dig(b, "message")
	}
	s, ok := text.(string)
	g.Expect(ok).To(BeTrue(), "%s post without a message where %s puts it: %v", typ, typ, b)
	return s
}

// severityOf reads the severity a post in the shape of provider type typ shows, from its
// colour (the generic webhook says it outright): "info", "warn" or "error".
func severityOf(g Gomega, typ string, p chatPost) string {
	b := p.body
	var colour any
	var byColour map[any]string
	switch typ {
	case "slack":
		colour = dig(b, "attachments", 0, "color")
		byColour = map[any]string{"good": "info", "warning": "warn", "danger": "error"}
	case "msteams":
		colour = dig(b, "attachments", 0, "content", "body", 1, "color")
		byColour = map[any]string{"Good": "info", "Warning": "warn", "Attention": "error"}
	case "discord":
		colour = dig(b, "embeds", 0, "color")
		byColour = map[any]string{float64(0x2EB886): "info", float64(0xDAA038): "warn", float64(0xA30200): "error"}
	case "rocket":
		colour = dig(b, "attachments", 0, "color")
		byColour = map[any]string{"#2EB886": "info", "#DAA038": "warn", "#A30200": "error"}
	case "gchat":
		// The colour is in the HTML of the message.
		text, _ := dig(b, "cardsV2", 0, "card", "sections", 0, "widgets", 0, "textParagraph", "text").(string)
		byColour = map[any]string{"#2EB886": "info", "#DAA038": "warn", "#A30200": "error"}
		for hex := range byColour {
			if strings.Contains(text, `color="`+hex.(string)+`"`) {
				colour = hex
			}
		}
	case "webhook":
		return fmt.Sprint(b["severity"])
	}
	sev, ok := byColour[colour]
	g.Expect(ok).To(BeTrue(), "%s post with an unknown colour %v: %v", typ, colour, b)
	return sev
}

func alertProvider(ctx context.Context, name, typ, address string, mutate ...func(*flaggerv1.AlertProviderSpec)) {
	p := &flaggerv1.AlertProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ctrlNS, Name: name},
		Spec:       flaggerv1.AlertProviderSpec{Type: typ, Address: address},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	Expect(k8s.Create(ctx, p)).To(Succeed())
}

func alertTo(provider string, severity flaggerv1.AlertSeverity) flaggerv1.CanaryAlert {
	return flaggerv1.CanaryAlert{Name: provider, Severity: severity, ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: provider}}
}

// alertedCanary is a blue/green Canary on the kubernetes provider with alerts.
func alertedCanary(ctx context.Context, name string, threshold int, alerts []flaggerv1.CanaryAlert, hooks ...flaggerv1.CanaryWebhook) {
	Expect(k8s.Create(ctx, &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis: &flaggerv1.CanaryAnalysis{
				Interval: "10s", Threshold: threshold, Iterations: 1, Alerts: alerts, Webhooks: hooks,
			},
		},
	})).To(Succeed())
}

var _ = Describe("The Canary controller's alerts", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("reach every provider type in its JSON shape when a revision is promoted", func(ctx SpecContext) {
		chat := newChatReceiver()
		alertProvider(ctx, "alerts-slack", "slack", chat.URL+"/slack", func(s *flaggerv1.AlertProviderSpec) { s.Channel = "deploys" })
		alertProvider(ctx, "alerts-msteams", "msteams", chat.URL+"/msteams")
		// A Flagger-style Discord address: Herald posts natively, without the /slack suffix.
		alertProvider(ctx, "alerts-discord", "discord", chat.URL+"/discord/slack")
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ctrlNS, Name: "alerts-rocket"},
			StringData: map[string]string{"address": chat.URL + "/rocket", "token": "rocket-token"},
		})).To(Succeed())
		alertProvider(ctx, "alerts-rocket", "rocket", "", func(s *flaggerv1.AlertProviderSpec) {
			s.SecretRef = &corev1.LocalObjectReference{Name: "alerts-rocket"}
		})
		alertProvider(ctx, "alerts-gchat", "gchat", chat.URL+"/gchat")
		alertProvider(ctx, "alerts-webhook", "webhook", chat.URL+"/webhook")
		alertProvider(ctx, "alerts-errors", "webhook", chat.URL+"/errors")

		app(ctx, "alerted")
		alertedCanary(ctx, "alerted", 2, []flaggerv1.CanaryAlert{
			alertTo("alerts-slack", flaggerv1.SeverityInfo),
			alertTo("alerts-msteams", flaggerv1.SeverityInfo),
			alertTo("alerts-discord", ""), // unset means info: Flagger would send it nothing
			alertTo("alerts-rocket", flaggerv1.SeverityInfo),
			alertTo("alerts-gchat", flaggerv1.SeverityInfo),
			alertTo("alerts-webhook", flaggerv1.SeverityWarn), // warn and error only
			alertTo("alerts-errors", flaggerv1.SeverityError),
		})
		initialized(ctx, "alerted")
		setImage(ctx, "alerted", image2)
		Eventually(phaseOf(ctx, "alerted")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))

		const (
			initDone = "New Deployment detected, initialization completed."
			started  = "New revision detected, progressing canary analysis."
			promoted = "Canary analysis completed successfully, promotion finished."
		)
		types := map[string]string{"/slack": "slack", "/msteams": "msteams", "/discord": "discord", "/rocket": "rocket", "/gchat": "gchat"}
		Eventually(func(g Gomega) {
			for path, typ := range types {
				var texts []string
				for _, p := range chat.at(path) {
					texts = append(texts, textOf(g, typ, p))
				}
				// Each chat service gets the three info alerts, in order (Google Chat's
				// text is HTML around the message).
				g.Expect(texts).To(HaveExactElements(ContainSubstring(initDone), ContainSubstring(started), ContainSubstring(promoted)), path)
			}
		}).WithTimeout(15 * time.Second).Should(Succeed())

		slack := chat.at("/slack")[1].body
		Expect(dig(slack, "channel")).To(Equal("deploys"))
		Expect(dig(slack, "username")).To(Equal("flagger"))
		Expect(dig(slack, "attachments", 0, "color")).To(Equal("good"))
		Expect(dig(slack, "attachments", 0, "fields")).To(ContainElement(HaveKeyWithValue("value", "Deployment/alerted."+ctrlNS)))
		Expect(chat.at("/rocket")[0].authorization).To(Equal("Bearer rocket-token"), "the Secret's token")
		Expect(chat.at("/discord/slack")).To(BeEmpty())
		Expect(chat.at("/webhook")).To(BeEmpty(), "a warn subscription gets no info alerts")
		Expect(chat.at("/errors")).To(BeEmpty(), "an error subscription gets no info alerts")
		Expect(scrape(herald.MetricsURL)).To(MatchRegexp(`herald_alerts_total\{provider="gchat",result="sent"\} [1-9]`))
	})

	It("send the rollback with severity error and its reason to every provider type, in its shape", func(ctx SpecContext) {
		chat := newChatReceiver()
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}))
		DeferCleanup(failing.Close)
		alertProvider(ctx, "alerts-fail-slack", "slack", chat.URL+"/slack")
		alertProvider(ctx, "alerts-fail-msteams", "msteams", chat.URL+"/msteams")
		alertProvider(ctx, "alerts-fail-discord", "discord", chat.URL+"/discord")
		alertProvider(ctx, "alerts-fail-rocket", "rocket", chat.URL+"/rocket")
		alertProvider(ctx, "alerts-fail-gchat", "gchat", chat.URL+"/gchat")
		alertProvider(ctx, "alerts-fail-errors", "webhook", chat.URL+"/errors")

		app(ctx, "alerted-fail")
		alertedCanary(ctx, "alerted-fail", 1,
			[]flaggerv1.CanaryAlert{
				alertTo("alerts-fail-slack", ""), // everything, the rollback last
				alertTo("alerts-fail-msteams", flaggerv1.SeverityError),
				alertTo("alerts-fail-discord", flaggerv1.SeverityError),
				alertTo("alerts-fail-rocket", flaggerv1.SeverityWarn), // warn and error: a run without gates has only the error
				alertTo("alerts-fail-gchat", flaggerv1.SeverityError),
				alertTo("alerts-fail-errors", flaggerv1.SeverityError),
			},
			hook("acceptance", flaggerv1.RolloutHook, failing.URL))
		initialized(ctx, "alerted-fail")
		setImage(ctx, "alerted-fail", image2)
		Eventually(phaseOf(ctx, "alerted-fail")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))

		Eventually(func(g Gomega) {
			posts := chat.at("/errors")
			g.Expect(posts).To(HaveLen(1), "only the rollback is an error")
			b := posts[0].body
			g.Expect(b).To(HaveKeyWithValue("severity", "error"))
			g.Expect(b).To(HaveKeyWithValue("phase", "Failed"))
			g.Expect(b).To(HaveKeyWithValue("canary", "alerted-fail"))
			g.Expect(b["message"]).To(ContainSubstring("failed checks threshold reached 1"))
		}).WithTimeout(15 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			for _, typ := range []string{"msteams", "discord", "rocket", "gchat"} {
				posts := chat.at("/" + typ)
				g.Expect(posts).To(HaveLen(1), "%s: only the rollback", typ)
				g.Expect(textOf(g, typ, posts[0])).To(SatisfyAll(ContainSubstring("Canary analysis failed"), ContainSubstring("failed checks threshold reached 1")), typ)
				g.Expect(severityOf(g, typ, posts[0])).To(Equal("error"), "%s shows the rollback as an error", typ)
			}
			posts := chat.at("/slack")
			g.Expect(posts).To(HaveLen(3), "initialised, started, rolled back")
			g.Expect(textOf(g, "slack", posts[2])).To(ContainSubstring("Canary analysis failed"))
			g.Expect(severityOf(g, "slack", posts[2])).To(Equal("error"))
			g.Expect(severityOf(g, "slack", posts[1])).To(Equal("info"))
		}).WithTimeout(15 * time.Second).Should(Succeed())
	})

	It("warn that a Canary waits for approval, unless the gate that holds it mutes the alert", func(ctx SpecContext) {
		chat := newChatReceiver()
		gate := newGate(false)
		alertProvider(ctx, "alerts-wait-slack", "slack", chat.URL+"/slack")
		alertProvider(ctx, "alerts-wait-warn", "webhook", chat.URL+"/warn")
		alertProvider(ctx, "alerts-wait-errors", "webhook", chat.URL+"/errors")
		alertProvider(ctx, "alerts-wait-muted", "webhook", chat.URL+"/muted")

		app(ctx, "alerted-wait")
		alertedCanary(ctx, "alerted-wait", 2, []flaggerv1.CanaryAlert{
			alertTo("alerts-wait-slack", flaggerv1.SeverityInfo),
			alertTo("alerts-wait-warn", flaggerv1.SeverityWarn),
			alertTo("alerts-wait-errors", flaggerv1.SeverityError),
		}, hook("approve", flaggerv1.ConfirmRolloutHook, gate.URL))
		quiet := hook("approve-quietly", flaggerv1.ConfirmRolloutHook, gate.URL)
		quiet.MuteAlert = true
		app(ctx, "alerted-muted")
		alertedCanary(ctx, "alerted-muted", 2, []flaggerv1.CanaryAlert{alertTo("alerts-wait-muted", flaggerv1.SeverityInfo)}, quiet)
		initialized(ctx, "alerted-wait")
		initialized(ctx, "alerted-muted")
		setImage(ctx, "alerted-wait", image2)
		setImage(ctx, "alerted-muted", image2)
		Eventually(phaseOf(ctx, "alerted-wait")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Eventually(phaseOf(ctx, "alerted-muted")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))

		const waiting = "Canary is waiting for approval."
		Eventually(func(g Gomega) {
			posts := chat.at("/warn")
			g.Expect(posts).To(HaveLen(1), "a warn subscription gets the waiting alert, and it only")
			g.Expect(posts[0].body).To(HaveKeyWithValue("message", waiting))
			g.Expect(posts[0].body).To(HaveKeyWithValue("severity", "warn"))
			g.Expect(posts[0].body).To(HaveKeyWithValue("phase", "Waiting"))
			g.Expect(posts[0].body).To(HaveKeyWithValue("canary", "alerted-wait"))
			slack := chat.at("/slack")
			g.Expect(slack).To(HaveLen(2), "initialised, waiting")
			g.Expect(textOf(g, "slack", slack[1])).To(Equal(waiting))
			g.Expect(severityOf(g, "slack", slack[1])).To(Equal("warn"))
		}).WithTimeout(15 * time.Second).Should(Succeed())
		Consistently(func() int { return len(chat.at("/warn")) }).WithTimeout(3*time.Second).Should(Equal(1), "announced once while the gate stays closed")

		gate.open.Store(true)
		Eventually(phaseOf(ctx, "alerted-wait")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(phaseOf(ctx, "alerted-muted")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Eventually(func(g Gomega) {
			var texts []string
			for _, p := range chat.at("/muted") {
				texts = append(texts, textOf(g, "webhook", p))
			}
			g.Expect(texts).To(HaveExactElements(
				"New Deployment detected, initialization completed.",
				"New revision detected, progressing canary analysis.",
				"Canary analysis completed successfully, promotion finished."), "the muted gate's Canary: no waiting alert")
			texts = nil
			for _, p := range chat.at("/slack") {
				texts = append(texts, textOf(g, "slack", p))
			}
			g.Expect(texts).To(HaveExactElements(
				"New Deployment detected, initialization completed.",
				waiting,
				"New revision detected, progressing canary analysis.",
				"Canary analysis completed successfully, promotion finished."))
		}).WithTimeout(15 * time.Second).Should(Succeed())
		Expect(chat.at("/errors")).To(BeEmpty(), "an error subscription gets no warnings")
	})

	It("are still delivered when Herald stops right after a promotion", func(ctx SpecContext) {
		// A chat service that takes a second to answer: at the stop, alerts are in flight
		// or queued.
		var mu sync.Mutex
		var delivered []string
		aborted := 0
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			var body map[string]any
			_ = json.NewDecoder(req.Body).Decode(&body)
			select {
			case <-time.After(time.Second):
				mu.Lock()
				delivered = append(delivered, fmt.Sprint(body["message"]))
				mu.Unlock()
				w.WriteHeader(http.StatusOK)
			case <-req.Context().Done():
				mu.Lock()
				aborted++
				mu.Unlock()
			}
		}))
		DeferCleanup(slow.Close)
		alertProvider(ctx, "alerts-slow", "webhook", slow.URL)
		app(ctx, "alerted-stop")
		alertedCanary(ctx, "alerted-stop", 2, []flaggerv1.CanaryAlert{alertTo("alerts-slow", flaggerv1.SeverityInfo)})
		initialized(ctx, "alerted-stop")
		setImage(ctx, "alerted-stop", image2)
		Eventually(phaseOf(ctx, "alerted-stop")).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).
			Should(Equal(flaggerv1.CanaryPhaseSucceeded))

		DeferCleanup(func(ctx SpecContext) { startHerald(ctx) }, NodeTimeout(time.Minute))
		herald.Stop() // SIGTERM, as on an upgrade; the process has exited when Stop returns

		mu.Lock()
		defer mu.Unlock()
		Expect(aborted).To(BeZero(), "no POST cut by the shutdown")
		Expect(delivered).To(HaveExactElements(
			"New Deployment detected, initialization completed.",
			"New revision detected, progressing canary analysis.",
			"Canary analysis completed successfully, promotion finished."))
	})
})
