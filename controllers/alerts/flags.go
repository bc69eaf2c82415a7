package alerts

import (
	"errors"
	"flag"
	"strings"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// GlobalFlags are Flagger's flags for the global alert provider, which receives the alerts
// of every Canary without analysis.alerts. As in Flagger, an environment variable that is set
// (SLACK_URL, SLACK_TOKEN, SLACK_PROXY_URL, MSTEAMS_URL, MSTEAMS_PROXY_URL) wins over its
// flag: a Flagger Deployment that sets both keeps posting where it did, and the URLs, which
// are credentials, can come from a Secret whatever the command line says.
type GlobalFlags struct {
	SlackURL        string
	SlackToken      string
	SlackProxyURL   string
	SlackUser       string
	SlackChannel    string
	MSTeamsURL      string
	MSTeamsProxyURL string
}

// Bind registers the flags on fs with Flagger's names and defaults.
func (g *GlobalFlags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&g.SlackURL, "slack-url", "", "Slack incoming-webhook (or chat.postMessage) URL of the global alert provider (env SLACK_URL wins when set).")
	fs.StringVar(&g.SlackToken, "slack-token", "", "Slack token sent as a Bearer token to -slack-url (env SLACK_TOKEN wins when set).")
	fs.StringVar(&g.SlackProxyURL, "slack-proxy-url", "", "HTTP(S) proxy for Slack (env SLACK_PROXY_URL wins when set).")
	fs.StringVar(&g.SlackUser, "slack-user", DefaultUsername, "Username of the global Slack alerts.")
	fs.StringVar(&g.SlackChannel, "slack-channel", "", "Slack channel of the global alerts (default: the webhook's own channel).")
	fs.StringVar(&g.MSTeamsURL, "msteams-url", "", "MS Teams webhook URL of the global alert provider (env MSTEAMS_URL wins when set).")
	fs.StringVar(&g.MSTeamsProxyURL, "msteams-proxy-url", "", "HTTP(S) proxy for MS Teams (env MSTEAMS_PROXY_URL wins when set).")
}

// Destinations returns the global providers that getenv (or, for variables unset, the flags)
// configure: Slack, MS Teams, both, or none. Unlike Flagger, which picks MS Teams when both
// are set, Herald sends to both: whoever configured two wants two. Errors name the flag but
// never echo a URL, since webhook URLs are credentials.
func (g *GlobalFlags) Destinations(getenv func(string) string) ([]Destination, error) {
	pick := func(flagValue, env string) string {
		if v := strings.TrimSpace(getenv(env)); v != "" {
			return v
		}
		return strings.TrimSpace(flagValue)
	}
	slack := Destination{
		Type: flaggerv1.AlertProviderSlack, Name: "global",
		Address:  pick(g.SlackURL, "SLACK_URL"),
		Token:    pick(g.SlackToken, "SLACK_TOKEN"),
		Proxy:    pick(g.SlackProxyURL, "SLACK_PROXY_URL"),
		Username: g.SlackUser,
		Channel:  g.SlackChannel,
	}
	teams := Destination{
		Type: flaggerv1.AlertProviderMSTeams, Name: "global",
		Address: pick(g.MSTeamsURL, "MSTEAMS_URL"),
		Proxy:   pick(g.MSTeamsProxyURL, "MSTEAMS_PROXY_URL"),
	}
	var out []Destination
	var errs []error
	check := func(d Destination, flagName string) {
		switch {
		case d.Address == "":
			return
		case !httpURL(d.Address):
			errs = append(errs, errors.New("-"+flagName+"-url: must be an absolute http or https URL"))
		case d.Proxy != "" && !httpURL(d.Proxy):
			errs = append(errs, errors.New("-"+flagName+"-proxy-url: must be an absolute http or https URL"))
		default:
			out = append(out, d)
		}
	}
	check(slack, "slack")
	check(teams, "msteams")
	if slack.Address == "" && slack.Token != "" {
		errs = append(errs, errors.New("-slack-token needs -slack-url (e.g. https://slack.com/api/chat.postMessage)"))
	}
	return out, errors.Join(errs...)
}
