package bot

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/steps"
)

// Action IDs are static (Slack routes clicks by them); the run, step and
// plan fingerprint travel in the button value.
const (
	actApprove  = "step_approve"
	actReject   = "step_reject"
	actRetry    = "step_retry"
	actSkip     = "step_skip"
	actDone     = "step_done"
	actAbort    = "run_abort"
	actAnswer   = "pause_"    // + choice
	actRollback = "rollback_" // + action
)

// actionValue is a button's value: which run, step and plan it was shown
// for, and which message to redraw once the click is handled.
type actionValue struct {
	Run   string `json:"r"`
	Step  string `json:"s,omitempty"`
	FP    string `json:"f,omitempty"`
	Key   string `json:"k,omitempty"`
	Arg   string `json:"a,omitempty"` // rollback action or pause answer
	Pause string `json:"p,omitempty"` // the pause question's key
}

func (v actionValue) String() string {
	b, _ := json.Marshal(v)
	return string(b)
}

func parseValue(s string) (actionValue, error) {
	var v actionValue
	if err := json.Unmarshal([]byte(s), &v); err != nil || v.Run == "" {
		return v, fmt.Errorf("button value %q is not one of kongbot's", clip(s, 80))
	}
	return v, nil
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, clip(s, 150), true, false)
}

func md(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, clip(s, 3000), false, false)
}

// esc escapes text that is not ours (error messages, reasons, log lines)
// for mrkdwn: Slack reads <, > and & as markup.
func esc(s string) string {
	return slackEscaper.Replace(s)
}

// slackEscaper is built once: a Replacer is safe for concurrent use.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// clip cuts s to at most n characters, as Slack counts them.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// stamp is a date Slack shows in each reader's time zone.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "(unknown time)"
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), t.UTC().Format(time.RFC3339))
}

func mention(user string) string {
	if user == "" || user == "kongbot" || user == "plan" {
		return "kongbot"
	}
	return "<@" + user + ">"
}

func stepEmoji(s steps.StepStatus) string {
	switch s {
	case steps.StepAwaitingApproval:
		return ":hourglass_flowing_sand:"
	case steps.StepRunning:
		return ":arrows_counterclockwise:"
	case steps.StepWaitingManual:
		return ":hammer_and_wrench:"
	case steps.StepPaused:
		return ":pause_button:"
	case steps.StepSucceeded:
		return ":white_check_mark:"
	case steps.StepFailed:
		return ":x:"
	case steps.StepSkipped:
		return ":fast_forward:"
	case steps.StepAborted:
		return ":no_entry_sign:"
	}
	return ":white_circle:"
}

func runEmoji(s steps.RunStatus) string {
	switch s {
	case steps.RunSucceeded:
		return ":tada:"
	case steps.RunAborted:
		return ":no_entry:"
	case steps.RunFailed:
		return ":x:"
	case steps.RunAwaitingApproval:
		return ":hourglass_flowing_sand:"
	case steps.RunWaitingManual:
		return ":hammer_and_wrench:"
	case steps.RunPaused:
		return ":pause_button:"
	case steps.RunAborting:
		return ":stop_sign:"
	}
	return ":arrows_counterclockwise:"
}

func riskText(r steps.Risk) string {
	switch r {
	case steps.RiskHigh:
		return ":warning: high"
	case steps.RiskIrreversible:
		return ":fire: irreversible"
	}
	return "normal"
}

func shortFP(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

// view is what rendering needs: the run, its plan and how to name things.
type view struct {
	run       steps.Run
	plan      steps.Plan
	labels    steps.Labels
	rules     steps.ApprovalRules
	approvers string // mention text of the approvers
	key       string // the message's key, for button values
	decided   *decision
}

// decision is a click the run state does not record (who chose a rollback).
type decision struct {
	User   string    `json:"user"`
	At     time.Time `json:"at"`
	Action string    `json:"action"`
}

// rendered is one Slack message.
type rendered struct {
	text      string
	blocks    []slack.Block
	broadcast bool
}

func (v *view) pos(id string) (int, int) {
	all := v.plan.Steps()
	for i, s := range all {
		if s.ID == id {
			return i + 1, len(all)
		}
	}
	return 0, len(all)
}

func (v *view) path() string {
	parts := []string{v.run.From}
	for _, h := range v.plan.Hops {
		parts = append(parts, h.To)
	}
	return strings.Join(parts, " → ")
}

func (v *view) title() string {
	t := fmt.Sprintf("Kong upgrade %s · %s %s → %s", v.run.ID, v.run.Gateway, v.run.From, v.run.Target)
	if v.run.DryRun {
		t += " (dry run)"
	}
	return t
}

// approvalsOf lists who approved the approval covering step id, for the
// current fingerprint.
func (v *view) approvalsOf(id string) []steps.Approval {
	var out []steps.Approval
	for _, a := range v.run.Approvals[v.plan.GroupLeader(id)] {
		if a.Fingerprint == v.run.Fingerprint {
			out = append(out, a)
		}
	}
	return out
}

func approvalList(as []steps.Approval) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("%s at %s", mention(a.User), stamp(a.At)))
	}
	return strings.Join(parts, ", ")
}

func (v *view) statusLine() string {
	r := v.run
	switch r.Status {
	case steps.RunSucceeded:
		return fmt.Sprintf("%s succeeded %s", runEmoji(r.Status), stamp(r.FinishedAt))
	case steps.RunAborted:
		s := fmt.Sprintf("%s aborted by %s %s", runEmoji(r.Status), mention(r.AbortedBy), stamp(r.FinishedAt))
		if r.AbortReason != "" {
			s += ": " + esc(r.AbortReason)
		}
		return s
	}
	s := fmt.Sprintf("%s %s", runEmoji(r.Status), r.Status)
	if def, ok := v.plan.Step(r.Current); ok {
		s += " at *" + def.Title + "*"
	}
	if st, ok := r.Step(r.Current); ok && r.Status == steps.RunPaused {
		// The engine's own pauses say what they wait for; a step's pause
		// asks a question its message shows.
		switch {
		case pausedOn(st, steps.PauseWindow):
			s += ": waiting for its change window"
		case pausedOn(st, steps.PauseExpired):
			s += ": the approval request expired; re-request it in the thread"
		}
	}
	if r.AbortRequested {
		s += fmt.Sprintf(" (abort asked by %s)", mention(r.AbortedBy))
	}
	return s
}

// summary is the run's parent message.
func (v *view) summary() rendered {
	r := v.run
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(runEmoji(r.Status) + " " + v.title())),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			md("*Gateway*\n" + esc(r.Gateway) + " (datastore " + esc(v.labels.Datastore) + ")"),
			md("*Requested by*\n" + mention(r.Requester)),
			md("*Path*\n" + v.path()),
			md("*Status*\n" + v.statusLine()),
		}, nil),
	}
	for _, h := range v.plan.Hops {
		var b strings.Builder
		fmt.Fprintf(&b, "*%s · %s → %s*\n", h.Name, h.From, h.To)
		for _, s := range h.Steps {
			st, _ := r.Step(s.ID)
			n, _ := v.pos(s.ID)
			status := steps.StepPending
			if st != nil {
				status = st.Status
			}
			line := fmt.Sprintf("%s %d. %s", stepEmoji(status), n, s.Title)
			if status != steps.StepPending && status != steps.StepSucceeded {
				line += " — _" + string(status) + "_"
			}
			b.WriteString(line + "\n")
		}
		blocks = append(blocks, slack.NewSectionBlock(md(strings.TrimRight(b.String(), "\n")), nil, nil))
	}
	ctx := fmt.Sprintf("plan `%s` · approvals from %s · started %s", shortFP(r.Fingerprint), v.approvers, stamp(r.CreatedAt))
	if r.DryRun {
		ctx += " · dry run: only read-only checks run"
	}
	blocks = append(blocks, slack.NewContextBlock("", md(ctx)))
	text := fmt.Sprintf("%s: %s (%s)", v.title(), r.Status, v.path())
	return rendered{text: text, blocks: blocks}
}

func (v *view) button(action, label, step string, style slack.Style, arg, pause string) *slack.ButtonBlockElement {
	val := actionValue{Run: v.run.ID, Step: step, FP: v.run.Fingerprint, Key: v.key, Arg: arg, Pause: pause}
	b := slack.NewButtonBlockElement(action, val.String(), plain(label))
	if style != "" {
		b = b.WithStyle(style)
	}
	return b
}

func confirm(b *slack.ButtonBlockElement, title, text, ok string, danger bool) *slack.ButtonBlockElement {
	// Slack refuses a confirm text over 300 characters (invalid_blocks).
	c := slack.NewConfirmationBlockObject(plain(title), md(clip(text, 300)), plain(ok), plain("Cancel"))
	if danger {
		c = c.WithStyle(slack.StyleDanger)
	}
	return b.WithConfirm(c)
}

// approval is the approval request of step id (or of the group it leads).
func (v *view) approval(id string) rendered {
	r := v.run
	def, _ := v.plan.Step(id)
	st, _ := r.Step(id)
	n, total := v.pos(id)
	risk, _ := v.plan.ApprovalRisk(id)
	rule := v.rules.For(risk)
	var b strings.Builder
	var group []steps.Step
	if def.Group != "" {
		for _, s := range v.plan.Steps() {
			if s.Group == def.Group {
				group = append(group, s)
			}
		}
	}
	if len(group) > 1 {
		fmt.Fprintf(&b, "*Approval needed · %s group (steps %d–%d of %d), run back to back:*\n", def.Group, n, n+len(group)-1, total)
		for _, s := range group {
			gn, _ := v.pos(s.ID)
			fmt.Fprintf(&b, "%d. *%s* (%s): %s\n", gn, s.Title, s.Risk, s.Description(v.labels))
		}
	} else {
		fmt.Fprintf(&b, "*Approval needed · step %d/%d · %s*\n%s", n, total, def.Title, def.Description(v.labels))
	}
	has := approvalList(v.approvalsOf(id))
	if has == "" {
		has = "none yet"
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(md(strings.TrimRight(b.String(), "\n")), nil, nil),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			md("*Risk*\n" + riskText(risk)),
			md("*Needs*\n" + rule.Text() + " from " + v.approvers),
			md(fmt.Sprintf("*Has (%d/%d)*\n%s", len(v.approvalsOf(id)), rule.Approvers, has)),
			md("*Plan*\n`" + shortFP(r.Fingerprint) + "`"),
		}, nil),
	}
	waiting := r.Status == steps.RunAwaitingApproval && r.Current == id && st != nil && st.Status == steps.StepAwaitingApproval
	text := fmt.Sprintf("%s: approval needed for %s", r.ID, def.Title)
	switch {
	case waiting:
		what := fmt.Sprintf("Run *%s* on *%s*: %s", r.ID, esc(r.Gateway), def.Title)
		if len(group) > 1 {
			what = fmt.Sprintf("Run *%s* on *%s*: the %d steps of the %s group run back to back.", r.ID, esc(r.Gateway), len(group), def.Group)
		}
		approve := confirm(v.button(actApprove, "Approve", id, slack.StylePrimary, "", ""), "Approve this step?", what, "Approve", false)
		reject := confirm(v.button(actReject, "Reject", id, slack.StyleDanger, "", ""), "Reject this step?", "The run stops here and is aborted.", "Reject", true)
		blocks = append(blocks, slack.NewActionBlock("approval", approve, reject))
	case r.Status == steps.RunAborted && strings.HasPrefix(r.AbortReason, "rejected "+id) ||
		r.Status == steps.RunAborting && strings.HasPrefix(r.AbortReason, "rejected "+id):
		s := fmt.Sprintf(":x: Rejected by %s at %s", mention(r.AbortedBy), stamp(r.UpdatedAt))
		if rest := strings.TrimPrefix(strings.TrimPrefix(r.AbortReason, "rejected "+id), ": "); rest != "" {
			s += ": " + esc(rest)
		}
		blocks = append(blocks, slack.NewContextBlock("decision", md(s)))
		text = fmt.Sprintf("%s: %s rejected", r.ID, def.Title)
	case len(v.approvalsOf(id)) >= rule.Approvers:
		blocks = append(blocks, slack.NewContextBlock("decision", md(":white_check_mark: Approved by "+approvalList(v.approvalsOf(id)))))
		text = fmt.Sprintf("%s: %s approved", r.ID, def.Title)
	case r.Current == id && st != nil && pausedOn(st, steps.PauseExpired) && !r.Status.Terminal():
		// The engine took the buttons away; the step's message offers to
		// ask again.
		s := v.expiredText(st)
		blocks = append(blocks, slack.NewContextBlock("decision", md(":hourglass: "+s)))
		text = fmt.Sprintf("%s: the approval request for %s expired", r.ID, def.Title)
	default:
		blocks = append(blocks, slack.NewContextBlock("decision", md(fmt.Sprintf(":no_entry_sign: No longer waiting: the run is %s", r.Status))))
	}
	return rendered{text: text, blocks: blocks}
}

func pausedOn(st *steps.StepState, kind steps.PauseKind) bool {
	return st.Status == steps.StepPaused && st.Check != nil && st.Check.Pause != nil && st.Check.Pause.Kind == kind
}

// expiredText says when st's approval request expired. The engine's pause
// message has the same facts in prose; the bot recomputes the instant so
// Slack can show it in each reader's zone.
func (v *view) expiredText(st *steps.StepState) string {
	if exp := v.rules.ExpireAfter; exp > 0 && !st.AskedAt.IsZero() {
		return fmt.Sprintf("Approval request expired at %s (after %s); nothing was changed. Re-request to ask again.",
			stamp(st.AskedAt.Add(exp)), humanDuration(exp))
	}
	return fmt.Sprintf("Approval request expired at %s; nothing was changed. Re-request to ask again.", stamp(v.run.UpdatedAt))
}

// humanDuration writes 2h, 90m as 1h30m, 45s: what people type, not
// time.Duration's 2h0m0s.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

// step is step id's own message: what it does, its state, its buttons.
func (v *view) step(id string) rendered {
	r := v.run
	def, _ := v.plan.Step(id)
	st, ok := r.Step(id)
	if !ok {
		st = &steps.StepState{ID: id, Status: steps.StepPending}
	}
	n, total := v.pos(id)
	appr := v.plan.Approval(id, v.rules)
	apprText := appr.Text
	if as := v.approvalsOf(id); len(as) > 0 && (appr.Needed || appr.CoveredBy != "") {
		apprText += "; approved by " + approvalList(as)
	}
	status := stepEmoji(st.Status) + " " + string(st.Status)
	if st.Attempts > 1 {
		status += fmt.Sprintf(" (attempt %d)", st.Attempts)
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(md(fmt.Sprintf("*Step %d/%d · %s*\n%s", n, total, def.Title, def.Description(v.labels))), nil, nil),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			md("*Kind*\n" + string(def.Kind)),
			md("*Risk*\n" + riskText(def.Risk)),
			md("*Approval*\n" + apprText),
			md("*Status*\n" + status),
		}, nil),
	}
	if c := st.Check; c != nil {
		if len(c.Facts) > 0 {
			var b strings.Builder
			for _, f := range c.Facts {
				fmt.Fprintf(&b, "• %s: %s\n", esc(f.Name), esc(f.Value))
			}
			blocks = append(blocks, slack.NewSectionBlock(md(strings.TrimRight(b.String(), "\n")), nil, nil))
		}
		if !c.OK && len(c.Missing) > 0 && st.Status != steps.StepSucceeded {
			var b strings.Builder
			b.WriteString("*Still missing:*\n")
			for _, m := range c.Missing {
				fmt.Fprintf(&b, "• %s\n", esc(m))
			}
			blocks = append(blocks, slack.NewSectionBlock(md(strings.TrimRight(b.String(), "\n")), nil, nil))
		}
	}
	current := r.Current == id && !r.Status.Terminal() && r.Status != steps.RunAborting
	text := fmt.Sprintf("%s step %d/%d %s: %s", r.ID, n, total, def.Title, st.Status)
	switch st.Status {
	case steps.StepSucceeded:
		s := ":white_check_mark: Done " + stamp(st.EndedAt)
		if !st.StartedAt.IsZero() && !st.EndedAt.IsZero() {
			s += fmt.Sprintf(" (took %s)", st.EndedAt.Sub(st.StartedAt).Round(time.Second))
		}
		if st.DoneBy != "" {
			s += "; marked done by " + mention(st.DoneBy)
		}
		blocks = append(blocks, slack.NewContextBlock("outcome", md(s)))
	case steps.StepSkipped:
		s := ":fast_forward: Skipped by " + mention(st.SkippedBy)
		if st.SkipReason != "" {
			s += ": " + esc(st.SkipReason)
		}
		blocks = append(blocks, slack.NewContextBlock("outcome", md(s)))
	case steps.StepFailed:
		blocks = append(blocks, slack.NewSectionBlock(md("*Failed:* "+esc(clip(st.Error, 2500))), nil, nil))
		if current && r.Status == steps.RunFailed {
			btns := []slack.BlockElement{v.button(actRetry, "Retry", id, slack.StylePrimary, "", "")}
			if def.Skippable {
				btns = append(btns, confirm(v.button(actSkip, "Skip", id, "", "", ""), "Skip this step?",
					"The run goes on without *"+def.Title+"*.", "Skip", false))
			}
			btns = append(btns, confirm(v.button(actAbort, "Abort", id, slack.StyleDanger, "", ""), "Abort the run?",
				"The run stops; you will be offered the rollback that fits its stage.", "Abort", true))
			blocks = append(blocks, slack.NewActionBlock("failed", btns...))
		}
	case steps.StepWaitingManual:
		s := "People do this step. Press *Mark done* when it is done; the bot then checks it."
		if !def.ConfirmDone {
			s = fmt.Sprintf("People do this step; the bot checks it every %s. Press *Mark done* to check now.", v.rules.PollManual)
		}
		if st.DoneBy != "" {
			s += " Last marked done by " + mention(st.DoneBy) + "."
		}
		blocks = append(blocks, slack.NewContextBlock("manual", md(s)))
		if current {
			blocks = append(blocks, slack.NewActionBlock("manual", v.button(actDone, "Mark done", id, slack.StylePrimary, "", "")))
		}
	case steps.StepPaused:
		if c := st.Check; c != nil && c.Pause != nil {
			head := ":pause_button: *" + esc(c.Pause.Message) + "*"
			switch c.Pause.Kind {
			case steps.PauseExpired:
				head = ":hourglass: *" + v.expiredText(st) + "*"
			case steps.PauseWindow:
				head = ":calendar: *" + esc(c.Pause.Message) + "*"
			}
			blocks = append(blocks, slack.NewSectionBlock(md(head), nil, nil))
			if current && r.Status == steps.RunPaused {
				var btns []slack.BlockElement
				for _, ch := range c.Pause.Choices {
					btns = append(btns, v.pauseButton(id, def, c.Pause, ch))
				}
				blocks = append(blocks, slack.NewActionBlock("pause", btns...))
			}
		}
	case steps.StepRunning:
		s := "Running since " + stamp(st.StartedAt)
		if r.AbortRequested {
			s += fmt.Sprintf("; abort asked by %s takes effect when it ends", mention(r.AbortedBy))
		}
		blocks = append(blocks, slack.NewContextBlock("running", md(s)))
	}
	if st.Status == steps.StepPaused || st.Status == steps.StepSucceeded {
		if c := st.Check; c != nil && c.Pause != nil {
			if by := r.Journal[c.Pause.Key+".by"]; by != "" {
				label, _ := choiceLabel(steps.Choice(r.Journal[c.Pause.Key]))
				blocks = append(blocks, slack.NewContextBlock("answer", md(fmt.Sprintf("Answered *%s* by %s", label, mention(by)))))
			}
		}
	}
	if by, when, ok := v.windowOverride(id); ok && st.Status != steps.StepPending && st.Status != steps.StepPaused {
		blocks = append(blocks, slack.NewContextBlock("window", md(fmt.Sprintf(":warning: Started outside its change window: overridden by %s at %s", mention(by), when))))
	}
	if !current && (r.Status.Terminal() || r.Status == steps.RunAborting) &&
		(st.Status == steps.StepFailed || st.Status == steps.StepAborted || st.Status == steps.StepPaused) {
		blocks = append(blocks, slack.NewContextBlock("run", md(":no_entry_sign: The run was aborted by "+mention(r.AbortedBy))))
	}
	return rendered{text: text, blocks: blocks}
}

// pauseButton is one answer to a pause. Answers that stop the run or act
// against a rule ask for confirmation first.
func (v *view) pauseButton(id string, def steps.Step, p *steps.Pause, ch steps.Choice) slack.BlockElement {
	label, style := choiceLabel(ch)
	btn := v.button(actAnswer+string(ch), label, id, style, string(ch), p.Key)
	switch {
	case ch == steps.ChoiceOverrideWindow:
		return confirm(btn, "Override the change window?",
			fmt.Sprintf("*%s* starts now, outside its change window. Overriding needs an extra approver: neither the requester nor one who approved the step. Your name goes into the run's journal and audit log.",
				def.Title), "Override", true)
	case ch == steps.ChoiceAbort && (p.Kind == steps.PauseWindow || p.Kind == steps.PauseExpired):
		return confirm(btn, "Abort the run?",
			fmt.Sprintf("The run stops before *%s* starts; you will be offered the rollback that fits its stage.", def.Title), label, true)
	case ch == steps.ChoiceAbort || ch == steps.ChoiceRollBack:
		return confirm(btn, label+"?", esc(p.Message), label, true)
	}
	return btn
}

// windowOverride finds who started step id outside its change window, from
// the journal note the engine keeps for the override.
func (v *view) windowOverride(id string) (by, when string, ok bool) {
	prefix := "window/" + id + "/"
	var last string
	lastSeq := -1
	for k, val := range v.run.Journal {
		seq, err := strconv.Atoi(strings.TrimPrefix(k, prefix))
		if strings.HasPrefix(k, prefix) && err == nil && val == string(steps.ChoiceOverrideWindow) && seq > lastSeq {
			last, lastSeq = k, seq
		}
	}
	if last == "" {
		return "", "", false
	}
	when = "(unknown time)"
	if t, err := time.Parse(time.RFC3339, v.run.Journal[last+".at"]); err == nil {
		when = stamp(t)
	}
	return v.run.Journal[last+".by"], when, true
}

func choiceLabel(c steps.Choice) (string, slack.Style) {
	switch c {
	case steps.ChoiceOverrideWindow:
		return "Override the window", slack.StyleDanger
	case steps.ChoiceRerequest:
		return "Re-request approval", slack.StylePrimary
	case steps.ChoiceApprove:
		return "Go on", slack.StylePrimary
	case steps.ChoiceDone:
		return "Mark done", slack.StylePrimary
	case steps.ChoiceResume:
		return "Run again", ""
	case steps.ChoiceRollBack:
		return "Roll back", slack.StyleDanger
	case steps.ChoiceAbort:
		return "Abort", slack.StyleDanger
	}
	return string(c), ""
}

// outputPayload is runner's "step-output" message.
type outputPayload struct {
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	Lines   []struct {
		Stream string `json:"stream"`
		Text   string `json:"text"`
	} `json:"lines"`
}

func (o outputPayload) text() string {
	var b strings.Builder
	for _, l := range o.Lines {
		if l.Stream == "stderr" {
			b.WriteString("! ")
		}
		b.WriteString(l.Text)
		b.WriteString("\n")
	}
	return b.String()
}

// tailLines is how much output a thread message shows; the rest is in the file.
const tailLines = 12

func (v *view) output(o outputPayload, fileUploaded bool) rendered {
	def, _ := v.plan.Step(o.Step)
	lines := o.Lines
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(clip(l.Text, 200))
		b.WriteString("\n")
	}
	head := fmt.Sprintf("*Output of %s* (attempt %d, %d lines", def.Title, o.Attempt, len(o.Lines))
	if len(o.Lines) > tailLines {
		head += fmt.Sprintf(", last %d shown", tailLines)
	}
	head += ")"
	body := "```" + strings.ReplaceAll(esc(strings.TrimRight(b.String(), "\n")), "```", "'''") + "```"
	blocks := []slack.Block{slack.NewSectionBlock(md(head+"\n"+clip(body, 2800)), nil, nil)}
	note := "the whole log is attached to this thread when the step ends"
	if fileUploaded {
		note = "the whole log is attached to this thread as a file"
	}
	blocks = append(blocks, slack.NewContextBlock("", md(note)))
	return rendered{text: fmt.Sprintf("%s output of %s", v.run.ID, def.Title), blocks: blocks}
}

// notice renders the messages that are posted each time (no key).
func (v *view) notice(e steps.Effect) rendered {
	r := v.run
	def, _ := v.plan.Step(e.Step)
	switch e.Message {
	case steps.MsgReminder:
		risk, _ := v.plan.ApprovalRisk(e.Step)
		return v.simple(fmt.Sprintf(":bell: Reminder: *%s* is still waiting for approval (%s from %s).", def.Title, v.rules.For(risk).Text(), v.approvers))
	case steps.MsgAbortRequested:
		s := fmt.Sprintf(":stop_sign: %s asked to abort the run", mention(r.AbortedBy))
		if r.AbortReason != "" {
			s += ": " + esc(r.AbortReason)
		}
		return v.simple(s + fmt.Sprintf(". *%s* is running; stopping it halfway would leave the gateway in an unknown state, so the run stops when it ends.", def.Title))
	case steps.MsgRollbackOffer:
		return v.rollbackOffer(e)
	case steps.MsgRollbackDone:
		var done []string
		for _, d := range r.RollbacksDone {
			done = append(done, string(d))
		}
		return v.simple(":rewind: Rollback done: " + strings.Join(done, ", "))
	case steps.MsgRollbackFailed:
		msg := "rollback failed"
		for _, e := range slices.Backward(r.Errors) {
			if strings.HasPrefix(e.Step, "rollback:") {
				msg = fmt.Sprintf("rollback %s failed: %s", strings.TrimPrefix(e.Step, "rollback:"), e.Message)
				break
			}
		}
		return v.simple(":x: " + esc(msg))
	case steps.MsgAborted, steps.MsgSucceeded:
		return v.end()
	}
	return v.simple(fmt.Sprintf("%s: %s %s", r.ID, e.Message, e.Step))
}

func (v *view) simple(s string) rendered {
	return rendered{text: s, blocks: []slack.Block{slack.NewSectionBlock(md(s), nil, nil)}}
}

func (v *view) rollbackOffer(e steps.Effect) rendered {
	r := v.run
	choices := e.Choices
	if len(choices) == 0 {
		choices = r.Rollbacks
	}
	head := fmt.Sprintf(":stop_sign: *Run %s is being aborted* by %s", r.ID, mention(r.AbortedBy))
	if r.AbortReason != "" {
		head += ": " + esc(r.AbortReason)
	}
	head += "\nChoose what to undo; each choice is carried out and checked, then what is left is offered again."
	blocks := []slack.Block{slack.NewSectionBlock(md(head), nil, nil)}
	open := r.Status == steps.RunAborting && r.RollbackRunning == "" && v.decided == nil
	var btns []slack.BlockElement
	for _, c := range choices {
		blocks = append(blocks, slack.NewSectionBlock(md("*"+c.Title+"*: "+esc(c.Detail)), nil, nil))
		style := slack.StyleDanger
		if c.Action == steps.RollbackNone {
			style = ""
		}
		btns = append(btns, confirm(v.button(actRollback+string(c.Action), c.Title, "", style, string(c.Action), ""),
			c.Title+"?", esc(c.Detail), "Do it", c.Action != steps.RollbackNone))
	}
	switch {
	case open && len(btns) > 0:
		blocks = append(blocks, slack.NewActionBlock("rollback", btns...))
	case v.decided != nil:
		title := v.decided.Action
		for _, c := range choices {
			if string(c.Action) == v.decided.Action {
				title = c.Title
			}
		}
		blocks = append(blocks, slack.NewContextBlock("decision", md(fmt.Sprintf("Chosen by %s at %s: *%s*", mention(v.decided.User), stamp(v.decided.At), title))))
	case r.RollbackRunning != "":
		blocks = append(blocks, slack.NewContextBlock("decision", md("Running rollback *"+string(r.RollbackRunning)+"*")))
	default:
		blocks = append(blocks, slack.NewContextBlock("decision", md("No longer open: the run is "+string(r.Status))))
	}
	return rendered{text: fmt.Sprintf("Run %s is being aborted: choose a rollback", r.ID), blocks: blocks}
}

// end is the run's final summary, broadcast to the channel.
func (v *view) end() rendered {
	r := v.run
	var done, skipped []string
	for _, s := range r.Steps {
		switch s.Status {
		case steps.StepSucceeded:
			done = append(done, s.ID)
		case steps.StepSkipped:
			skipped = append(skipped, s.ID)
		}
	}
	var b strings.Builder
	took := r.FinishedAt.Sub(r.CreatedAt).Round(time.Second)
	if r.Status == steps.RunSucceeded {
		fmt.Fprintf(&b, ":tada: *Run %s succeeded*: %s went %s in %s.", r.ID, esc(r.Gateway), v.path(), took)
		if r.DryRun {
			fmt.Fprintf(&b, " (dry run: only read-only checks ran; nothing changed)")
		}
	} else {
		fmt.Fprintf(&b, ":no_entry: *Run %s aborted* by %s after %s", r.ID, mention(r.AbortedBy), took)
		if r.AbortReason != "" {
			fmt.Fprintf(&b, ": %s", esc(r.AbortReason))
		}
		b.WriteString(".")
	}
	fmt.Fprintf(&b, "\n%d of %d steps done", len(done), len(r.Steps))
	if len(skipped) > 0 {
		fmt.Fprintf(&b, ", %d skipped", len(skipped))
	}
	b.WriteString(".")
	var approvers []string
	for _, as := range r.Approvals {
		for _, a := range as {
			if !slices.Contains(approvers, mention(a.User)) {
				approvers = append(approvers, mention(a.User))
			}
		}
	}
	slices.Sort(approvers)
	if len(approvers) > 0 {
		b.WriteString(" Approvals by " + strings.Join(approvers, ", ") + ".")
	}
	if len(r.RollbacksDone) > 0 {
		var rb []string
		for _, x := range r.RollbacksDone {
			rb = append(rb, string(x))
		}
		b.WriteString(" Rolled back: " + strings.Join(rb, ", ") + ".")
	}
	if r.RollbackNote != "" {
		b.WriteString("\n" + esc(r.RollbackNote))
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\n%d failure(s) on the way; the last: %s", len(r.Errors), esc(clip(r.Errors[len(r.Errors)-1].Message, 500)))
	}
	out := v.simple(b.String())
	out.blocks = append(out.blocks, slack.NewContextBlock("", md(fmt.Sprintf("`/kong upgrade audit %s` shows the audit log", r.ID))))
	out.broadcast = true
	return out
}
