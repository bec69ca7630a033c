package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/config"
)

// authz answers "may this user do this?" from Slack user groups, user
// lists and users.info. Display paths (App Home) use cached answers; a
// decision asks Slack again and falls back to a cached answer no older than
// the TTL only when Slack does not answer.
type authz struct {
	b         *Bot
	approvers config.Who
	starters  config.Who
	ttl       time.Duration

	mu        sync.Mutex
	members   map[string]cached[[]string] // group ID -> members
	users     map[string]cached[slack.User]
	handles   map[string]string // "kong-leads" -> "S0..."; also ID -> handle
	handlesAt time.Time
}

type cached[T any] struct {
	v  T
	at time.Time
}

func newAuthz(b *Bot, approvers, starters config.Who, ttl time.Duration) *authz {
	return &authz{b: b, approvers: approvers, starters: starters, ttl: ttl,
		members: map[string]cached[[]string]{}, users: map[string]cached[slack.User]{}, handles: map[string]string{}}
}

// errCheck is a failure to ask Slack; the user is told to try again.
var errCheck = errors.New("could not check with Slack")

// person returns users.info for id.
func (a *authz) person(ctx context.Context, id string, fresh bool) (slack.User, error) {
	now := a.b.now()
	a.mu.Lock()
	c, ok := a.users[id]
	a.mu.Unlock()
	if ok && !fresh && now.Sub(c.at) < a.ttl {
		return c.v, nil
	}
	cctx, cancel := a.b.callCtx(ctx)
	u, err := a.b.api.GetUserInfoContext(cctx, id)
	cancel()
	if err != nil {
		a.b.apiErr("users.info", err)
		if ok && now.Sub(c.at) < a.ttl {
			return c.v, nil
		}
		return slack.User{}, fmt.Errorf("%w: users.info %s: %w", errCheck, id, err)
	}
	a.mu.Lock()
	a.users[id] = cached[slack.User]{*u, now}
	a.mu.Unlock()
	return *u, nil
}

// groupID resolves a configured group (an S… ID, or a @handle) to its ID.
func (a *authz) groupID(ctx context.Context, g string) (string, error) {
	if !strings.HasPrefix(g, "@") && strings.HasPrefix(g, "S") {
		return g, nil
	}
	h := strings.TrimPrefix(g, "@")
	if err := a.loadHandles(ctx, false); err != nil {
		return "", err
	}
	a.mu.Lock()
	id, ok := a.handles[h]
	a.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("%w: no user group @%s in this workspace", errCheck, h)
	}
	return id, nil
}

func (a *authz) loadHandles(ctx context.Context, force bool) error {
	now := a.b.now()
	a.mu.Lock()
	fresh := !a.handlesAt.IsZero() && now.Sub(a.handlesAt) < 10*a.ttl
	a.mu.Unlock()
	if fresh && !force {
		return nil
	}
	cctx, cancel := a.b.callCtx(ctx)
	groups, err := a.b.api.GetUserGroupsContext(cctx)
	cancel()
	if err != nil {
		a.b.apiErr("usergroups.list", err)
		if fresh || !a.handlesAt.IsZero() {
			return nil
		}
		return fmt.Errorf("%w: usergroups.list: %w", errCheck, err)
	}
	a.mu.Lock()
	for _, g := range groups {
		a.handles[g.Handle] = g.ID
		a.handles[g.ID] = g.Handle
	}
	a.handlesAt = now
	a.mu.Unlock()
	return nil
}

// groupMembers returns a group's members: asked again when fresh, else
// from a cache entry younger than the TTL.
func (a *authz) groupMembers(ctx context.Context, id string, fresh bool) ([]string, error) {
	now := a.b.now()
	a.mu.Lock()
	c, ok := a.members[id]
	a.mu.Unlock()
	if ok && !fresh && now.Sub(c.at) < a.ttl {
		return c.v, nil
	}
	cctx, cancel := a.b.callCtx(ctx)
	m, err := a.b.api.GetUserGroupMembersContext(cctx, id)
	cancel()
	if err != nil {
		a.b.apiErr("usergroups.users.list", err)
		if ok && now.Sub(c.at) < a.ttl {
			return c.v, nil
		}
		return nil, fmt.Errorf("%w: usergroups.users.list %s: %w", errCheck, id, err)
	}
	a.mu.Lock()
	a.members[id] = cached[[]string]{m, now}
	a.mu.Unlock()
	return m, nil
}

// in reports whether user is listed in w, directly or through a group.
func (a *authz) in(ctx context.Context, w config.Who, user string, fresh bool) (bool, error) {
	if slices.Contains(w.Users, user) {
		return true, nil
	}
	var errs []error
	for _, g := range w.UserGroups {
		id, err := a.groupID(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := a.groupMembers(ctx, id, fresh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.Contains(m, user) {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

// describe names who is listed, for messages: "<!subteam^S1|@kong-leads>
// or <@U1>" when mention is set, else "@kong-leads or <@U1>".
func (a *authz) describe(ctx context.Context, w config.Who, mention bool) string {
	_ = a.loadHandles(ctx, false)
	var parts []string
	for _, g := range w.UserGroups {
		id, handle := g, strings.TrimPrefix(g, "@")
		a.mu.Lock()
		if strings.HasPrefix(g, "@") || !strings.HasPrefix(g, "S") {
			id = a.handles[handle]
		} else if h, ok := a.handles[g]; ok {
			handle = h
		}
		a.mu.Unlock()
		if mention && id != "" {
			parts = append(parts, fmt.Sprintf("<!subteam^%s|@%s>", id, handle))
		} else {
			parts = append(parts, "@"+handle)
		}
	}
	for _, u := range w.Users {
		parts = append(parts, "<@"+u+">")
	}
	switch len(parts) {
	case 0:
		return "anyone"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// role is what a decision needs.
type role int

const (
	// roleApprover: approve, reject, answer a pause, choose a rollback, skip.
	roleApprover role = iota
	// roleStarter: start a run, schedule one.
	roleStarter
	// roleOperator: abort, retry, mark a manual step done: starters,
	// approvers, and the run's requester.
	roleOperator
)

// verdict is an authorization answer: allowed, or a denial to show the
// user. err is set when Slack could not be asked (denial says so too).
type verdict struct {
	ok     bool
	denial string
	err    error
}

// check decides whether user may act in role; requester is the run's
// requester ("" when there is no run yet); what names the action for the
// denial ("approve this step").
func (a *authz) check(ctx context.Context, user string, r role, requester, what string, fresh bool) verdict {
	u, err := a.person(ctx, user, fresh)
	if err != nil {
		return verdict{denial: "I could not check your account with Slack just now; please try again in a minute", err: err}
	}
	switch {
	case u.Deleted:
		return verdict{denial: "deactivated accounts cannot " + what}
	case u.IsBot || u.IsAppUser:
		return verdict{denial: "bots cannot " + what}
	case u.IsRestricted || u.IsUltraRestricted:
		return verdict{denial: "guest accounts cannot " + what + "; ask a full member of the workspace"}
	}
	var lists []config.Who
	switch r {
	case roleApprover:
		lists = []config.Who{a.approvers}
	case roleStarter:
		if a.starters.Empty() {
			return verdict{ok: true}
		}
		lists = []config.Who{a.starters}
	case roleOperator:
		if a.starters.Empty() || (requester != "" && user == requester) {
			return verdict{ok: true}
		}
		lists = []config.Who{a.starters, a.approvers}
	}
	var errs []error
	for _, w := range lists {
		ok, err := a.in(ctx, w, user, fresh)
		if ok {
			return verdict{ok: true}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return verdict{denial: "I could not check the user groups with Slack just now; please try again in a minute", err: err}
	}
	var who []string
	for _, w := range lists {
		who = append(who, a.describe(ctx, w, false))
	}
	if r == roleOperator && requester != "" {
		who = append(who, "the person who started the run")
	}
	d := fmt.Sprintf("only %s can %s", strings.Join(who, " or "), what)
	if requester != "" && user == requester && r == roleApprover {
		d += "; you started this run"
	}
	return verdict{denial: d}
}
