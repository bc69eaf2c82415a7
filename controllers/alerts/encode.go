package alerts

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// encoder turns a message into the JSON body a provider type expects. One per type, in
// encoders; each is a plain function of its inputs so that golden tests pin the shapes.
type encoder func(m Message, d Destination) ([]byte, error)

var encoders = map[string]encoder{
	flaggerv1.AlertProviderSlack:   encodeSlack,
	flaggerv1.AlertProviderMSTeams: encodeMSTeams,
	flaggerv1.AlertProviderDiscord: encodeDiscord,
	flaggerv1.AlertProviderRocket:  encodeRocket,
	flaggerv1.AlertProviderGChat:   encodeGChat,
	flaggerv1.AlertProviderWebhook: encodeWebhook,
}

// One colour per severity across providers: Slack's own "good", "warning" and "danger".
const (
	colorGood    = "2EB886"
	colorWarning = "DAA038"
	colorDanger  = "A30200"
)

func hexColor(s Severity) string {
	switch s {
	case flaggerv1.SeverityWarn:
		return colorWarning
	case flaggerv1.SeverityError:
		return colorDanger
	}
	return colorGood
}

// Slack: an incoming webhook (or chat.postMessage with a token) with one attachment whose
// colour bar shows the severity; the shape Flagger sends, so existing Slack setups see the
// same messages. An empty channel is left out: the webhook's own channel applies.

type slackPayload struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username,omitempty"`
	IconEmoji   string            `json:"icon_emoji,omitempty"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Color      string       `json:"color"`
	Fallback   string       `json:"fallback"`
	AuthorName string       `json:"author_name"`
	Text       string       `json:"text"`
	MrkdwnIn   []string     `json:"mrkdwn_in"`
	Fields     []slackField `json:"fields,omitempty"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

func encodeSlack(m Message, d Destination) ([]byte, error) {
	color := "good"
	switch m.Severity {
	case flaggerv1.SeverityWarn:
		color = "warning"
	case flaggerv1.SeverityError:
		color = "danger"
	}
	fields := make([]slackField, 0, len(m.Fields))
	for _, f := range m.Fields {
		fields = append(fields, slackField{Title: slackEscape(f.Name), Value: slackEscape(f.Value)})
	}
	return json.Marshal(slackPayload{
		Channel:   d.Channel,
		Username:  d.Username,
		IconEmoji: ":rocket:",
		Attachments: []slackAttachment{{
			Color:      color,
			Fallback:   slackEscape(m.Subject() + ": " + m.Text),
			AuthorName: slackEscape(m.Subject()),
			Text:       slackEscape(m.Text),
			MrkdwnIn:   []string{"text"},
			Fields:     fields,
		}},
	})
}

// slackEscape escapes the three characters Slack reserves for links and mentions, so a
// reason like "answered <Internal Server Error>" shows as written.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// MS Teams: Office 365 connector webhooks (outlook.office.com, *.webhook.office.com) take
// the legacy MessageCard that Flagger sends; Workflows webhooks, which replace the retired
// connectors, accept Adaptive Cards only. The address tells which one it is.

type teamsMessageCard struct {
	Type       string         `json:"@type"`
	Context    string         `json:"@context"`
	ThemeColor string         `json:"themeColor"`
	Summary    string         `json:"summary"`
	Sections   []teamsSection `json:"sections"`
}

type teamsSection struct {
	ActivityTitle    string      `json:"activityTitle"`
	ActivitySubtitle string      `json:"activitySubtitle"`
	Facts            []teamsFact `json:"facts,omitempty"`
}

type teamsFact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string       `json:"contentType"`
	Content     adaptiveCard `json:"content"`
}

type adaptiveCard struct {
	Schema  string          `json:"$schema"`
	Type    string          `json:"type"`
	Version string          `json:"version"`
	Body    []adaptiveBlock `json:"body"`
}

// adaptiveBlock is a TextBlock or a FactSet.
type adaptiveBlock struct {
	Type   string         `json:"type"`
	Text   string         `json:"text,omitempty"`
	Weight string         `json:"weight,omitempty"`
	Size   string         `json:"size,omitempty"`
	Color  string         `json:"color,omitempty"`
	Wrap   bool           `json:"wrap,omitempty"`
	Facts  []adaptiveFact `json:"facts,omitempty"`
}

type adaptiveFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// legacyTeamsHost reports whether address is an Office 365 connector webhook.
func legacyTeamsHost(address string) bool {
	u, err := url.Parse(address)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "outlook.office.com" || h == "outlook.office365.com" || strings.HasSuffix(h, ".webhook.office.com")
}

func encodeMSTeams(m Message, d Destination) ([]byte, error) {
	if legacyTeamsHost(d.Address) {
		facts := make([]teamsFact, 0, len(m.Fields))
		for _, f := range m.Fields {
			facts = append(facts, teamsFact(f))
		}
		return json.Marshal(teamsMessageCard{
			Type:       "MessageCard",
			Context:    "http://schema.org/extensions",
			ThemeColor: hexColor(m.Severity),
			Summary:    m.Subject(),
			Sections:   []teamsSection{{ActivityTitle: m.Text, ActivitySubtitle: m.Subject(), Facts: facts}},
		})
	}
	color := "Good"
	switch m.Severity {
	case flaggerv1.SeverityWarn:
		color = "Warning"
	case flaggerv1.SeverityError:
		color = "Attention"
	}
	body := []adaptiveBlock{
		{Type: "TextBlock", Text: m.Subject(), Weight: "Bolder", Size: "Medium", Wrap: true},
		{Type: "TextBlock", Text: m.Text, Color: color, Wrap: true},
	}
	if len(m.Fields) > 0 {
		facts := make([]adaptiveFact, 0, len(m.Fields))
		for _, f := range m.Fields {
			facts = append(facts, adaptiveFact{Title: f.Name, Value: f.Value})
		}
		body = append(body, adaptiveBlock{Type: "FactSet", Facts: facts})
	}
	return json.Marshal(teamsMessage{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: adaptiveCard{
				Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
				Type:    "AdaptiveCard",
				Version: "1.4",
				Body:    body,
			},
		}},
	})
}

// Discord: the native execute-webhook body with one embed. Flagger posts Slack's shape to
// Discord's Slack-compatible endpoint (<address>/slack); Herald uses the native API instead,
// because it is the one Discord specifies (embed colour, fields, documented limits, which are
// enforced with a 400 that no retry fixes), and because channel is meaningless there: a
// Discord webhook belongs to one channel. Addresses written for Flagger, with or without the
// /slack suffix, keep working: the suffix is dropped when the provider is resolved.

type discordPayload struct {
	Username string         `json:"username,omitempty"`
	Embeds   []discordEmbed `json:"embeds"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

// Discord's limits on embeds.
const (
	discordTitleMax       = 256
	discordDescriptionMax = 4096
	discordFieldNameMax   = 256
	discordFieldValueMax  = 1024
	discordFieldsMax      = 25
)

func encodeDiscord(m Message, d Destination) ([]byte, error) {
	color, err := strconv.ParseInt(hexColor(m.Severity), 16, 32) // Discord wants the RGB as a number
	if err != nil {
		return nil, fmt.Errorf("colour of severity %q: %w", m.Severity, err)
	}
	fields := make([]discordField, 0, len(m.Fields))
	for i, f := range m.Fields {
		if i == discordFieldsMax {
			break
		}
		fields = append(fields, discordField{Name: truncate(f.Name, discordFieldNameMax), Value: truncate(f.Value, discordFieldValueMax)})
	}
	e := discordEmbed{
		Title:       truncate(m.Subject(), discordTitleMax),
		Description: truncate(m.Text, discordDescriptionMax),
		Color:       int(color),
		Fields:      fields,
	}
	if !m.Timestamp.IsZero() {
		e.Timestamp = m.Timestamp.UTC().Format("2006-01-02T15:04:05Z")
	}
	return json.Marshal(discordPayload{Username: d.Username, Embeds: []discordEmbed{e}})
}

// discordAddress drops the /slack suffix of Flagger-style Discord addresses.
func discordAddress(address string) string {
	u, err := url.Parse(address)
	if err != nil {
		return address
	}
	if p := strings.TrimSuffix(u.Path, "/"); strings.HasSuffix(p, "/slack") {
		u.Path = strings.TrimSuffix(p, "/slack")
		u.RawPath = ""
		return u.String()
	}
	return address
}

// truncate cuts s to at most n characters (runes), marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Rocket.Chat: an incoming-webhook message with one attachment, using Rocket.Chat's own
// names for the sender (alias, emoji).

type rocketPayload struct {
	Alias       string             `json:"alias,omitempty"`
	Emoji       string             `json:"emoji,omitempty"`
	Channel     string             `json:"channel,omitempty"`
	Attachments []rocketAttachment `json:"attachments"`
}

type rocketAttachment struct {
	Color      string        `json:"color"`
	AuthorName string        `json:"author_name"`
	Text       string        `json:"text"`
	Fields     []rocketField `json:"fields,omitempty"`
}

type rocketField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

func encodeRocket(m Message, d Destination) ([]byte, error) {
	fields := make([]rocketField, 0, len(m.Fields))
	for _, f := range m.Fields {
		fields = append(fields, rocketField{Title: f.Name, Value: f.Value})
	}
	return json.Marshal(rocketPayload{
		Alias:   d.Username,
		Emoji:   ":rocket:",
		Channel: d.Channel,
		Attachments: []rocketAttachment{{
			Color:      "#" + hexColor(m.Severity),
			AuthorName: m.Subject(),
			Text:       m.Text,
			Fields:     fields,
		}},
	})
}

// Google Chat: a card (cardsV2; the older "cards" field that Flagger sends is deprecated)
// with the message in the severity's colour and one labelled line per field. Card text is a
// small HTML subset, so values are escaped.

type gchatPayload struct {
	CardsV2 []gchatCardWithID `json:"cardsV2"`
}

type gchatCardWithID struct {
	CardID string    `json:"cardId"`
	Card   gchatCard `json:"card"`
}

type gchatCard struct {
	Header   gchatHeader    `json:"header"`
	Sections []gchatSection `json:"sections"`
}

type gchatHeader struct {
	Title    string `json:"title"`
	Subtitle string `json:"subtitle,omitempty"`
}

type gchatSection struct {
	Widgets []gchatWidget `json:"widgets"`
}

type gchatWidget struct {
	TextParagraph *gchatText      `json:"textParagraph,omitempty"`
	DecoratedText *gchatDecorated `json:"decoratedText,omitempty"`
}

type gchatText struct {
	Text string `json:"text"`
}

type gchatDecorated struct {
	TopLabel string `json:"topLabel"`
	Text     string `json:"text"`
	WrapText bool   `json:"wrapText"`
}

func encodeGChat(m Message, d Destination) ([]byte, error) {
	sections := []gchatSection{{Widgets: []gchatWidget{{TextParagraph: &gchatText{
		Text: `<font color="#` + hexColor(m.Severity) + `"><b>` + html.EscapeString(m.Text) + `</b></font>`,
	}}}}}
	if len(m.Fields) > 0 {
		widgets := make([]gchatWidget, 0, len(m.Fields))
		for _, f := range m.Fields {
			widgets = append(widgets, gchatWidget{DecoratedText: &gchatDecorated{
				TopLabel: html.EscapeString(f.Name), Text: html.EscapeString(f.Value), WrapText: true,
			}})
		}
		sections = append(sections, gchatSection{Widgets: widgets})
	}
	return json.Marshal(gchatPayload{CardsV2: []gchatCardWithID{{
		CardID: "herald-alert",
		Card: gchatCard{
			Header:   gchatHeader{Title: m.Subject(), Subtitle: d.Username},
			Sections: sections,
		},
	}}})
}

// Generic webhook: the message itself.
func encodeWebhook(m Message, _ Destination) ([]byte, error) {
	return json.Marshal(m)
}
