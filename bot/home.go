package bot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// permalink returns a link to a run's thread (cached; "" if not posted yet
// or Slack does not answer).
func (b *Bot) permalink(ctx context.Context, run string) string {
	return b.linkTo(ctx, run, "summary")
}

func (b *Bot) linkTo(ctx context.Context, run, key string) string {
	ref, ok, err := b.st.MessageRef(ctx, run, key)
	if err != nil || !ok {
		return ""
	}
	b.dmu.Lock()
	link, cached := b.links[ref.TS]
	b.dmu.Unlock()
	if cached {
		return link
	}
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	link, err = b.api.GetPermalinkContext(cctx, &slack.PermalinkParameters{Channel: ref.Channel, Ts: ref.TS})
	if err != nil {
		b.apiErr("permalink", err)
		return ""
	}
	b.dmu.Lock()
	b.links[ref.TS] = link
	b.dmu.Unlock()
	return link
}

func (b *Bot) linked(ctx context.Context, run, key, label string) string {
	if l := b.linkTo(ctx, run, key); l != "" {
		return "<" + l + "|" + label + ">"
	}
	return "*" + label + "*"
}

// homeView is a viewer's App Home: the approvals waiting for them, active
// runs and recent runs, each linked to its thread.
func (b *Bot) homeView(ctx context.Context, user string) ([]slack.Block, error) {
	recs, err := b.st.Runs(ctx, store.RunFilter{Limit: 50})
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	var pending, active, recent []string
	approver, _ := b.auth.in(ctx, b.auth.approvers, user, false)
	for _, rec := range recs {
		run, _, err := b.run.Load(ctx, rec.ID)
		if err != nil {
			continue
		}
		v, err := b.view(ctx, run, "")
		if err != nil {
			continue
		}
		line := fmt.Sprintf("%s %s %s: %s · by %s", b.linked(ctx, run.ID, "summary", run.ID), esc(run.Gateway), v.path(), v.statusLine(), mention(run.Requester))
		if run.Status.Terminal() {
			if len(recent) < 10 {
				recent = append(recent, fmt.Sprintf("%s %s %s · %s", runEmoji(run.Status), b.linked(ctx, run.ID, "summary", run.ID), esc(run.Gateway), v.statusLine()))
			}
			continue
		}
		active = append(active, line)
		if approver && run.Status == steps.RunAwaitingApproval && b.mayApprove(v, user) {
			def, _ := v.plan.Step(run.Current)
			risk, _ := v.plan.ApprovalRisk(run.Current)
			pending = append(pending, fmt.Sprintf(":hourglass_flowing_sand: %s on *%s*: %s (%s risk; %s)",
				b.linked(ctx, run.ID, "approval/"+run.Current, run.ID), esc(run.Gateway), def.Title, risk, b.rules.For(risk).Text()))
		}
	}
	none := func(xs []string, empty string) string {
		if len(xs) == 0 {
			return "_" + empty + "_"
		}
		return strings.Join(xs, "\n")
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain("Kong upgrades")),
		slack.NewContextBlock("", md(fmt.Sprintf("Updated %s · `/kong help` lists the commands", stamp(b.now())))),
		slack.NewSectionBlock(md("*Waiting for your approval*\n"+none(pending, "nothing waits for you")), nil, nil),
		slack.NewDividerBlock(),
		slack.NewSectionBlock(md("*Active runs*\n"+none(active, "no run is active")), nil, nil),
		slack.NewDividerBlock(),
		slack.NewSectionBlock(md("*Recent runs*\n"+none(recent, "no finished runs yet")), nil, nil),
	}
	return blocks, nil
}

// mayApprove: the viewer could give the approval the run waits for (not
// already given, not their own run when the rule excludes the requester).
func (b *Bot) mayApprove(v *view, user string) bool {
	risk, _ := v.plan.ApprovalRisk(v.run.Current)
	rule := b.rules.For(risk)
	if !rule.AllowRequester && user == v.run.Requester {
		return false
	}
	return !slices.ContainsFunc(v.approvalsOf(v.run.Current), func(a steps.Approval) bool { return a.User == user })
}

func (b *Bot) publishHome(ctx context.Context, user string) error {
	blocks, err := b.homeView(ctx, user)
	if err != nil {
		return err
	}
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	_, err = b.api.PublishViewContext(cctx, slack.PublishViewContextRequest{UserID: user,
		View: slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: blocks}}})
	if err != nil {
		b.apiErr("publish", err)
		return fmt.Errorf("views.publish for %s: %w", user, err)
	}
	b.dmu.Lock()
	b.homes[user] = b.now()
	b.dmu.Unlock()
	return nil
}

// flushHomes republishes the App Home of everyone who opened it, when runs
// changed, at most once per HomeRefresh each.
func (b *Bot) flushHomes(ctx context.Context) {
	b.dmu.Lock()
	if !b.homeDirty || b.now().Before(b.pauseUntil) {
		b.dmu.Unlock()
		return
	}
	now := b.now()
	var due []string
	later := false
	for u, at := range b.homes {
		if now.Sub(at) >= b.opts.HomeRefresh {
			due = append(due, u)
		} else {
			later = true
		}
	}
	b.homeDirty = later
	b.dmu.Unlock()
	for _, u := range due {
		if ctx.Err() != nil {
			return
		}
		if err := b.publishHome(ctx, u); err != nil {
			b.log.Warn("refreshing App Home failed", "user", u, "err", err)
			b.dmu.Lock()
			b.homeDirty = true
			b.homes[u] = now.Add(-b.opts.HomeRefresh + time.Second)
			b.dmu.Unlock()
		}
	}
}
