package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Provisioner plays the people of the runbook's manual steps for the demo:
// it reads the bot's runs through its admin endpoint and, when a run waits
// for new nodes, starts them; when it waits for the old ones to go, stops
// them. Hop 2's 1.0.3 nodes are first started without okta-auth, which Kong
// refuses while okta-auth is in use, so the bot's check of the new nodes
// fails; once the bot has reported that, they are started with okta-auth.
// Each action is said in the run's thread as the on-call engineer.
type Provisioner struct {
	env    *Env
	client *admin.Client
	log    *slog.Logger
	// Poll is how often runs are read; default 250ms.
	Poll time.Duration

	mu   sync.Mutex
	done map[string]bool // actions taken, by run/step/phase
	last *steps.Run
}

// NewProvisioner watches the bot whose admin endpoint listens on adminAddr.
func NewProvisioner(env *Env, adminAddr string, log *slog.Logger) *Provisioner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provisioner{env: env, client: admin.NewClient(adminAddr), log: log, Poll: 250 * time.Millisecond, done: map[string]bool{}}
}

// Run watches until ctx ends. The bot may be down meanwhile (a restart):
// an unreachable endpoint is retried.
func (p *Provisioner) Run(ctx context.Context) error {
	t := time.NewTicker(p.Poll)
	defer t.Stop()
	for {
		if err := p.tick(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, admin.ErrUnreachable) {
			p.log.Warn("provisioner", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Latest is the newest run the provisioner has seen, nil before any.
func (p *Provisioner) Latest() *steps.Run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// ReadRun decodes a stored run.
func ReadRun(r store.Run) (steps.Run, error) {
	var run steps.Run
	if err := json.Unmarshal(r.Data, &run); err != nil {
		return run, fmt.Errorf("run %s: %w", r.ID, err)
	}
	return run, nil
}

func (p *Provisioner) tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := p.client.Runs(ctx, store.RunFilter{Gateway: Gateway, Limit: 1})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	full, err := p.client.Run(ctx, list[0].ID)
	if err != nil {
		return err
	}
	run, err := ReadRun(full)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.last = &run
	p.mu.Unlock()
	st := stepState(run, run.Current)
	if run.Status == steps.RunPaused && st != nil && st.Check != nil && st.Check.Pause != nil &&
		st.Check.Pause.Kind == steps.PauseManual && p.env.front != nil {
		// The manual traffic backend asks a person to move the split.
		pause := st.Check.Pause
		p.once(ctx, run, "move/"+pause.Key, func() error {
			if !p.env.front.FollowManual(pause.Message) {
				return fmt.Errorf("not a traffic instruction: %q", pause.Message)
			}
			p.say(run, fmt.Sprintf(":wrench: done in the demo's front proxy: %s. Press *Mark done*.", splitText(p.env.front.Weights())))
			return nil
		})
		return nil
	}
	if run.Status != steps.RunWaitingManual {
		return nil
	}
	if st == nil {
		return nil
	}
	switch run.Current {
	case "hop1.start-new-cluster":
		p.once(ctx, run, "start", func() error {
			return p.start(ctx, run, V014, true, "starting the 0.14.1 nodes (with okta-auth) on the migrated datastore")
		})
	case "hop2.provision-new-nodes":
		p.once(ctx, run, "start-without-okta", func() error {
			err := p.start(ctx, run, V10, false, "starting the 1.0.3 nodes — our 1.0.3 build does not load okta-auth yet")
			if err == nil {
				return errors.New("1.0.3 nodes started without okta-auth, which Kong refuses while it is in use")
			}
			return nil
		})
		// The bot has checked the nodes and said what is missing: now the
		// build with okta-auth.
		if p.did(run, "start-without-okta") && st.Error != "" {
			p.once(ctx, run, "start-with-okta", func() error {
				return p.start(ctx, run, V10, true, "the bot is right, they refused: okta-auth plugin is in use but not enabled. Restarting the 1.0.3 nodes with okta-auth")
			})
		}
	case "hop1.decommission-old":
		p.once(ctx, run, "stop", func() error { return p.stop(run, V013) })
	case "hop2.decommission-old":
		p.once(ctx, run, "stop", func() error { return p.stop(run, V014) })
	}
	return nil
}

func stepState(r steps.Run, id string) *steps.StepState {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

func (p *Provisioner) did(run steps.Run, phase string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done[run.ID+"/"+run.Current+"/"+phase]
}

// once runs an action the first time a run's step asks for it.
func (p *Provisioner) once(_ context.Context, run steps.Run, phase string, f func() error) {
	key := run.ID + "/" + run.Current + "/" + phase
	p.mu.Lock()
	if p.done[key] {
		p.mu.Unlock()
		return
	}
	p.done[key] = true
	p.mu.Unlock()
	if err := f(); err != nil {
		p.log.Warn("provisioner action failed", "run", run.ID, "step", run.Current, "phase", phase, "err", err)
	}
}

func (p *Provisioner) start(ctx context.Context, run steps.Run, version string, okta bool, say string) error {
	p.say(run, ":wrench: "+say+".")
	err := p.env.StartGeneration(ctx, version, okta)
	if err != nil {
		var reasons []string
		for _, n := range p.env.Nodes(version) {
			if e := n.Err(); e != "" {
				reasons = append(reasons, fmt.Sprintf("%s: %s", n.Name, firstLine(e)))
			}
		}
		p.say(run, ":x: "+strings.Join(reasons, "\n"))
		return err
	}
	p.say(run, fmt.Sprintf(":white_check_mark: %d %s nodes are up; the bot checks them at its next look (or press *Mark done*).", len(p.env.Nodes(version)), version))
	return nil
}

func (p *Provisioner) stop(run steps.Run, version string) error {
	p.env.StopGeneration(version)
	p.say(run, fmt.Sprintf(":wrench: stopped the %s nodes (HAProxy already drained them).", version))
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// say posts into the run's thread as the on-call engineer; without a
// thread yet, it only logs.
func (p *Provisioner) say(run steps.Run, text string) {
	p.log.Info("provisioner", "run", run.ID, "step", run.Current, "text", text)
	parent := ThreadOf(p.env.Slack, run.ID)
	if parent == "" {
		return
	}
	if _, err := p.env.Slack.PostMessage(localslack.OnCallID, localslack.ChannelID, parent, text, nil); err != nil {
		p.log.Warn("provisioner: posting in the thread", "err", err)
	}
}

// ThreadOf finds the ts of a run's summary message: the channel message
// whose buttons name the run, or whose text names it.
func ThreadOf(ls *localslack.Server, runID string) string {
	for _, m := range ls.Channel(localslack.ChannelID) {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			continue
		}
		for _, b := range m.Buttons() {
			if v, ok := ButtonRun(b); ok && v.Run == runID {
				return m.TS
			}
		}
		if strings.Contains(m.Text, "Kong upgrade "+runID) || strings.Contains(m.BlockText(), "Kong upgrade "+runID) {
			return m.TS
		}
	}
	return ""
}

// ButtonValue is what kongbot puts in a button's value (bot/render.go).
type ButtonValue struct {
	Run  string `json:"r"`
	Step string `json:"s"`
	Arg  string `json:"a"`
}

// ButtonRun decodes a kongbot button's value.
func ButtonRun(b localslack.Button) (ButtonValue, bool) {
	var v ButtonValue
	if err := json.Unmarshal([]byte(b.Value), &v); err != nil || v.Run == "" {
		return v, false
	}
	return v, true
}

func splitText(w map[string]int) string {
	var parts []string
	for _, v := range Versions {
		if w[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %% to %s", w[v], v))
		}
	}
	if len(parts) == 0 {
		return "no traffic"
	}
	return strings.Join(parts, ", ")
}
