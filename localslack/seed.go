package localslack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Seed is the workspace localslack starts with: team, the app's bot, users, user
// groups and channels. It is read from JSON (LoadSeed) or taken from DefaultSeed.
type Seed struct {
	Team       Team        `json:"team"`
	Bot        Bot         `json:"bot"`
	Users      []User      `json:"users"`
	UserGroups []UserGroup `json:"usergroups"`
	Channels   []Channel   `json:"channels"`
}

// Team is the workspace.
type Team struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Domain string `json:"domain"`
}

// Bot is the installed app and its bot user (whose User entry must exist in Users).
type Bot struct {
	UserID string `json:"user_id"`
	BotID  string `json:"bot_id"`
	AppID  string `json:"app_id"`
}

// User is a workspace member as users.info reports it. Restricted users are
// multi-channel guests, ultra-restricted ones single-channel guests.
type User struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	RealName          string `json:"real_name"`
	Title             string `json:"title,omitempty"`
	Email             string `json:"email,omitempty"`
	TZ                string `json:"tz,omitempty"`
	Color             string `json:"color,omitempty"`
	IsBot             bool   `json:"is_bot,omitempty"`
	IsAdmin           bool   `json:"is_admin,omitempty"`
	IsRestricted      bool   `json:"is_restricted,omitempty"`
	IsUltraRestricted bool   `json:"is_ultra_restricted,omitempty"`
	Deleted           bool   `json:"deleted,omitempty"`
}

// UserGroup is a Slack user group (subteam), addressed as @Handle.
type UserGroup struct {
	ID          string   `json:"id"`
	Handle      string   `json:"handle"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Users       []string `json:"users"`
}

// Channel is a public channel.
type Channel struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Topic string `json:"topic,omitempty"`
}

// IDs of the default seed, for tests that want to name people directly.
const (
	TeamID        = "T0KONGOPS1"
	BotUserID     = "U0KONGBOT1"
	BotID         = "B0KONGBOT1"
	AppID         = "A0KONGBOT1"
	OnCallID      = "U0ONCALL01" // olivia, the on-call engineer (not a lead)
	Lead1ID       = "U0LEAD0001" // liam, in @kong-leads
	Lead2ID       = "U0LEAD0002" // lena, in @kong-leads
	GuestID       = "U0GUEST001" // gus, a restricted (guest) account
	DeletedID     = "U0GONE0001" // dora, a deactivated account
	LeadsGroupID  = "S0KONGLEAD"
	ChannelID     = "C0KONGUPG1"
	ChannelName   = "kong-upgrades"
	LeadsHandle   = "kong-leads"
	defaultDomain = "kong-ops"
)

// DefaultSeed returns the built-in workspace: an on-call engineer, two leads in
// @kong-leads, a guest, a deactivated user, the bot, and #kong-upgrades.
func DefaultSeed() Seed {
	return Seed{
		Team: Team{ID: TeamID, Name: "Kong Ops", Domain: defaultDomain},
		Bot:  Bot{UserID: BotUserID, BotID: BotID, AppID: AppID},
		Users: []User{
			{ID: OnCallID, Name: "olivia", RealName: "Olivia Ortiz", Title: "On-call SRE", Email: "olivia@kong-ops.example", TZ: "Europe/Berlin", Color: "2b6cb0"},
			{ID: Lead1ID, Name: "liam", RealName: "Liam Lindqvist", Title: "Platform lead", Email: "liam@kong-ops.example", TZ: "Europe/Stockholm", Color: "2f855a"},
			{ID: Lead2ID, Name: "lena", RealName: "Lena Lopez", Title: "Gateway lead", Email: "lena@kong-ops.example", TZ: "America/New_York", Color: "b7791f"},
			{ID: GuestID, Name: "gus", RealName: "Gus Guest", Title: "Contractor", Email: "gus@contractor.example", TZ: "UTC", Color: "718096", IsRestricted: true},
			{ID: DeletedID, Name: "dora", RealName: "Dora Departed", Title: "Former SRE", TZ: "UTC", Color: "a0aec0", Deleted: true},
			{ID: BotUserID, Name: "kongbot", RealName: "Kong Upgrade Bot", Color: "553c9a", IsBot: true},
		},
		UserGroups: []UserGroup{
			{ID: LeadsGroupID, Handle: LeadsHandle, Name: "Kong leads", Description: "Approve Kong gateway upgrades", Users: []string{Lead1ID, Lead2ID}},
		},
		Channels: []Channel{
			{ID: ChannelID, Name: ChannelName, Topic: "Kong gateway upgrades (0.13 → 0.14.1 → 1.0.3)"},
		},
	}
}

// LoadSeed reads a seed from a JSON file and validates it.
func LoadSeed(path string) (Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("reading seed: %w", err)
	}
	var s Seed
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Seed{}, fmt.Errorf("parsing seed %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return Seed{}, fmt.Errorf("seed %s: %w", path, err)
	}
	return s, nil
}

var (
	userIDRe    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDRe   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	channelIDRe = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	nameRe      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,79}$`)
)

// Validate checks that IDs look like Slack IDs, are unique, and that every
// reference (bot user, group members) points at a seeded user.
func (s Seed) Validate() error {
	var errs []error
	if s.Team.ID == "" || s.Team.Domain == "" {
		errs = append(errs, errors.New("team.id and team.domain are required"))
	}
	users := map[string]User{}
	names := map[string]bool{}
	for _, u := range s.Users {
		if !userIDRe.MatchString(u.ID) {
			errs = append(errs, fmt.Errorf("user %q: id must look like U0123ABCD", u.ID))
		}
		if !nameRe.MatchString(u.Name) {
			errs = append(errs, fmt.Errorf("user %s: name %q must be lowercase letters, digits, '.', '_' or '-'", u.ID, u.Name))
		}
		if _, dup := users[u.ID]; dup {
			errs = append(errs, fmt.Errorf("user %s: duplicate id", u.ID))
		}
		if names[u.Name] {
			errs = append(errs, fmt.Errorf("user %s: duplicate name %q", u.ID, u.Name))
		}
		users[u.ID], names[u.Name] = u, true
	}
	if bu, ok := users[s.Bot.UserID]; !ok || !bu.IsBot {
		errs = append(errs, fmt.Errorf("bot.user_id %q must name a seeded user with is_bot", s.Bot.UserID))
	}
	if s.Bot.BotID == "" || s.Bot.AppID == "" {
		errs = append(errs, errors.New("bot.bot_id and bot.app_id are required"))
	}
	seen := map[string]bool{}
	for _, g := range s.UserGroups {
		if !groupIDRe.MatchString(g.ID) {
			errs = append(errs, fmt.Errorf("usergroup %q: id must look like S0123ABCD", g.ID))
		}
		if !nameRe.MatchString(g.Handle) || seen[g.ID] || seen["@"+g.Handle] {
			errs = append(errs, fmt.Errorf("usergroup %s: handle %q is invalid or duplicate", g.ID, g.Handle))
		}
		seen[g.ID], seen["@"+g.Handle] = true, true
		for _, m := range g.Users {
			if _, ok := users[m]; !ok {
				errs = append(errs, fmt.Errorf("usergroup %s: member %q is not a seeded user", g.ID, m))
			}
		}
	}
	if len(s.Channels) == 0 {
		errs = append(errs, errors.New("at least one channel is required"))
	}
	for _, c := range s.Channels {
		if !channelIDRe.MatchString(c.ID) || !nameRe.MatchString(c.Name) || seen[c.ID] || seen["#"+c.Name] {
			errs = append(errs, fmt.Errorf("channel %q (%s): id or name is invalid or duplicate", c.ID, c.Name))
		}
		seen[c.ID], seen["#"+c.Name] = true, true
	}
	return errors.Join(errs...)
}
