package bot_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/slack-go/slack"
	yaml "go.yaml.in/yaml/v3"
)

// TestManifest checks slack/manifest.yaml against what the bot does: the
// /kong command, interactivity, Socket Mode, the App Home tab and its
// event, and a scope for every Web API method the bot calls.
func TestManifest(t *testing.T) {
	b, err := os.ReadFile("../slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m slack.Manifest
	dec := yaml.NewDecoder(bytesReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest does not decode as slack-go's Manifest: %v", err)
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != "/kong" {
		t.Errorf("slash commands = %+v, want /kong", m.Features.SlashCommands)
	}
	if !m.Settings.Interactivity.IsEnabled || !m.Settings.SocketModeEnabled {
		t.Errorf("interactivity %v, socket mode %v; want both", m.Settings.Interactivity.IsEnabled, m.Settings.SocketModeEnabled)
	}
	if !m.Features.AppHome.HomeTabEnabled || !slices.Contains(m.Settings.EventSubscriptions.BotEvents, "app_home_opened") {
		t.Errorf("App Home tab or app_home_opened missing")
	}
	// Web API method the bot calls -> the scope Slack wants for it.
	need := map[string]string{
		"chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.postEphemeral": "chat:write",
		"users.info": "users:read", "usergroups.list": "usergroups:read", "usergroups.users.list": "usergroups:read",
		"files.getUploadURLExternal": "files:write", "files.completeUploadExternal": "files:write",
		"conversations.replies": "channels:history", "conversations.history": "channels:history",
		"slash command /kong": "commands",
	}
	for method, scope := range need {
		if !slices.Contains(m.OAuthConfig.Scopes.Bot, scope) {
			t.Errorf("%s needs scope %s; the manifest lacks it", method, scope)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
