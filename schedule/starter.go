package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Planner plans a gateway's upgrade (bot.Planner has this method).
type Planner interface {
	Plan(ctx context.Context, gateway, target string) (steps.Plan, steps.Inventory, error)
}

// Starter starts a new run (*runner.Runner is one).
type Starter interface {
	Start(ctx context.Context, run steps.Run) (steps.Run, error)
}

// PlanStarter is a RunStarter on the same path as `/kong upgrade start`:
// plan from the gateway as it is now, a new run ID, the runner's Start
// (which takes the gateway lock and queues the run's messages).
type PlanStarter struct {
	Planner Planner
	Runner  Starter
	Store   *store.Store
	Now     func() time.Time
}

// StartRun implements RunStarter.
func (p PlanStarter) StartRun(ctx context.Context, req StartRequest) (string, error) {
	plan, inv, err := p.Planner.Plan(ctx, req.Gateway, req.Target)
	if err != nil {
		return "", fmt.Errorf("planning %s to %s: %w", req.Gateway, req.Target, err)
	}
	id, err := p.Store.NewRunID(ctx)
	if err != nil {
		return "", fmt.Errorf("creating a run: %w", err)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	run := steps.NewRun(id, req.Gateway, req.Requester, req.Channel, plan, inv, false, now())
	if _, err := p.Runner.Start(ctx, run); err != nil {
		var lerr *store.LockedError
		if errors.As(err, &lerr) {
			return "", fmt.Errorf("gateway %s is being upgraded by run %s (started by %s)", lerr.Holder.Gateway, lerr.Holder.Run, mention(lerr.Holder.Requester))
		}
		return "", err
	}
	return id, nil
}
