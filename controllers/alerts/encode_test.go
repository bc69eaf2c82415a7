package alerts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (review the diff before committing)")

// sample is a rollback alert with fields and characters that need escaping somewhere.
func sample(sev Severity) Message {
	return Message{
		Canary: "podinfo", Namespace: "test", Phase: flaggerv1.CanaryPhaseFailed,
		Text:     "Canary analysis failed, Deployment scaled to zero.",
		Severity: sev,
		Fields: []Field{
			{Name: "Target", Value: "Deployment/podinfo.test"},
			{Name: "Reason", Value: `Halt podinfo.test advancement hook "smoke" answered 500 <Internal Server Error>`},
		},
		Timestamp: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC),
	}
}

func TestEncodersGolden(t *testing.T) {
	dest := func(typ, address string) Destination {
		return Destination{Type: typ, Name: "test/" + typ, Address: address, Channel: DefaultChannel, Username: DefaultUsername}
	}
	cases := []struct {
		golden string
		dest   Destination
		msg    Message
	}{
		{"slack-error", dest("slack", "https://hooks.slack.com/services/T/B/X"), sample(flaggerv1.SeverityError)},
		{"slack-info-no-channel", Destination{Type: "slack", Address: "https://hooks.slack.com/services/T/B/X", Username: "herald"},
			Message{Canary: "podinfo", Namespace: "test", Text: "New revision detected, progressing canary analysis.", Severity: flaggerv1.SeverityInfo}},
		{"msteams-adaptive-error", dest("msteams", "https://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke"), sample(flaggerv1.SeverityError)},
		{"msteams-messagecard-error", dest("msteams", "https://contoso.webhook.office.com/webhookb2/x/IncomingWebhook/y/z"), sample(flaggerv1.SeverityError)},
		{"discord-error", dest("discord", "https://discord.com/api/webhooks/1/x"), sample(flaggerv1.SeverityError)},
		{"rocket-warn", dest("rocket", "https://chat.example.com/hooks/x/y"), sample(flaggerv1.SeverityWarn)},
		{"gchat-error", dest("gchat", "https://chat.googleapis.com/v1/spaces/x/messages?key=k&token=t"), sample(flaggerv1.SeverityError)},
		{"webhook-error", dest("webhook", "https://example.com/alerts"), sample(flaggerv1.SeverityError)},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			encode, ok := encoders[tc.dest.Type]
			if !ok {
				t.Fatalf("no encoder for %q", tc.dest.Type)
			}
			got, err := encode(tc.msg, tc.dest)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", tc.golden+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if pretty.String() != string(want) {
				t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", tc.golden, pretty.String(), want)
			}
		})
	}
}

// The colour of each provider follows the severity; a golden file shows one severity only.
func TestEncodersColourBySeverity(t *testing.T) {
	want := map[string]map[Severity]string{
		"slack":   {flaggerv1.SeverityInfo: `"color":"good"`, flaggerv1.SeverityWarn: `"color":"warning"`, flaggerv1.SeverityError: `"color":"danger"`},
		"discord": {flaggerv1.SeverityInfo: `"color":3061894`, flaggerv1.SeverityWarn: `"color":14327864`, flaggerv1.SeverityError: `"color":10682880`},
		"rocket":  {flaggerv1.SeverityInfo: `"color":"#2EB886"`, flaggerv1.SeverityWarn: `"color":"#DAA038"`, flaggerv1.SeverityError: `"color":"#A30200"`},
		"msteams": {flaggerv1.SeverityInfo: `"color":"Good"`, flaggerv1.SeverityWarn: `"color":"Warning"`, flaggerv1.SeverityError: `"color":"Attention"`},
		"gchat":   {flaggerv1.SeverityInfo: `#2EB886`, flaggerv1.SeverityWarn: `#DAA038`, flaggerv1.SeverityError: `#A30200`},
	}
	for typ, bySeverity := range want {
		for sev, fragment := range bySeverity {
			encode := encoders[typ]
			got, err := encode(sample(sev), Destination{Type: typ, Address: "https://example.com/x"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), fragment) {
				t.Errorf("%s %s: %s not in %s", typ, sev, fragment, got)
			}
		}
	}
}

func TestDiscordLimits(t *testing.T) {
	m := sample(flaggerv1.SeverityError)
	m.Text = strings.Repeat("x", 5000)
	for i := 0; i < 30; i++ {
		m.Fields = append(m.Fields, Field{Name: "f", Value: strings.Repeat("é", 2000)})
	}
	body, err := encodeDiscord(m, Destination{})
	if err != nil {
		t.Fatal(err)
	}
	var p discordPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	e := p.Embeds[0]
	if n := len([]rune(e.Description)); n != discordDescriptionMax {
		t.Errorf("description has %d characters, want %d", n, discordDescriptionMax)
	}
	if !strings.HasSuffix(e.Description, "…") {
		t.Error("a cut description must say so")
	}
	if len(e.Fields) != discordFieldsMax {
		t.Errorf("%d fields, want %d", len(e.Fields), discordFieldsMax)
	}
	for _, f := range e.Fields {
		if n := len([]rune(f.Value)); n > discordFieldValueMax {
			t.Fatalf("field value of %d characters", n)
		}
	}
}

func TestDiscordAddress(t *testing.T) {
	for in, want := range map[string]string{
		"https://discord.com/api/webhooks/1/tok":        "https://discord.com/api/webhooks/1/tok",
		"https://discord.com/api/webhooks/1/tok/slack":  "https://discord.com/api/webhooks/1/tok",
		"https://discord.com/api/webhooks/1/tok/slack/": "https://discord.com/api/webhooks/1/tok",
		"https://discord.com/api/webhooks/1/slacker":    "https://discord.com/api/webhooks/1/slacker",
		"https://discord.com/api/webhooks/1/tok?wait=1": "https://discord.com/api/webhooks/1/tok?wait=1",
	} {
		if got := discordAddress(in); got != want {
			t.Errorf("discordAddress(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestLegacyTeamsHost(t *testing.T) {
	for address, legacy := range map[string]bool{
		"https://outlook.office.com/webhook/a@b/IncomingWebhook/c/d":                          true,
		"https://contoso.webhook.office.com/webhookb2/a/IncomingWebhook/b/c":                  true,
		"https://prod-12.westus.logic.azure.com:443/workflows/a/triggers/manual/paths/invoke": false,
		"https://default.environment.api.powerplatform.com/powerautomate/automations/x":       false,
		"http://127.0.0.1:8080/msteams":                                                       false,
	} {
		if got := legacyTeamsHost(address); got != legacy {
			t.Errorf("legacyTeamsHost(%s) = %t", address, got)
		}
	}
}
