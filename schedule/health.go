package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// healthState is what a run's watch last saw: its conditions by key.
type healthState struct {
	Conditions map[string]string `json:"conditions"`
}

func healthKey(run string) string { return "schedule/health/" + run }

// Conditions names what is wrong with a gateway read back, by a stable key
// (so a condition whose detail changes is not news): a node down, a node
// that cannot reach the datastore, a node whose version differs from its
// generation, the datastore unreadable, or the gateway unreadable at all.
func Conditions(inv steps.Inventory, err error) map[string]string {
	out := map[string]string{}
	if err != nil {
		out["inspect"] = "the gateway cannot be read: " + err.Error()
		return out
	}
	for _, n := range inv.Nodes {
		switch {
		case !n.Reachable:
			detail := ""
			if n.Error != "" {
				detail = ": " + n.Error
			}
			out["down/"+n.Name] = fmt.Sprintf("node %s (%s) is down%s", n.Name, n.Generation, detail)
		case !n.DatabaseOK:
			out["db/"+n.Name] = fmt.Sprintf("node %s (%s) cannot reach the datastore", n.Name, n.Generation)
		}
		if n.Reachable && n.Version != "" && n.Version != string(n.Generation) {
			out["drift/"+n.Name] = fmt.Sprintf("node %s answers %s, but its generation is %s (version drift)", n.Name, n.Version, n.Generation)
		}
	}
	if inv.Schema == steps.SchemaUnknown {
		detail := "its schema cannot be read"
		for _, p := range inv.Problems {
			if strings.HasPrefix(p, "datastore") {
				detail = p
				break
			}
		}
		out["datastore"] = "the datastore is unreachable: " + detail
	}
	return out
}

// recovery says that the condition named key is over.
func recovery(key string) string {
	kind, name, _ := strings.Cut(key, "/")
	switch kind {
	case "down":
		return fmt.Sprintf("node %s answers again", name)
	case "db":
		return fmt.Sprintf("node %s reaches the datastore again", name)
	case "drift":
		return fmt.Sprintf("node %s runs its generation's version again", name)
	case "datastore":
		return "the datastore is readable again"
	case "inspect":
		return "the gateway can be read again"
	}
	return key + " is over"
}

// watchHealth reads the gateway of every active run whose interval has
// passed and posts, in the run's thread, what changed since the last read:
// each new condition once, and each recovery once. The first read of a run
// is its baseline and is not posted (nodes not yet started are expected
// then). What was seen is stored with the message, so a restart neither
// repeats nor loses a change.
func (s *Scheduler) watchHealth(ctx context.Context) error {
	if s.o.Inspector == nil || s.o.HealthInterval <= 0 {
		return nil
	}
	runs, err := s.activeRuns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	active := map[string]bool{}
	for _, r := range runs {
		active[r.ID] = true
		now := s.clock.Now()
		s.mu.Lock()
		last, seen := s.health[r.ID]
		s.mu.Unlock()
		if seen && now.Before(last.Add(s.o.HealthInterval)) {
			continue
		}
		s.mu.Lock()
		s.health[r.ID] = now
		s.mu.Unlock()
		if err := s.checkHealth(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("health of %s (run %s): %w", r.Gateway, r.ID, err))
		}
	}
	s.mu.Lock()
	for id := range s.health {
		if !active[id] {
			delete(s.health, id)
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

func (s *Scheduler) checkHealth(ctx context.Context, r steps.Run) error {
	ictx, cancel := context.WithTimeout(ctx, s.o.HealthTimeout)
	inv, ierr := s.o.Inspector.Inspect(ictx, r.Gateway)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := Conditions(inv, ierr)
	v, had, err := s.st.State(ctx, healthKey(r.ID))
	if err != nil {
		return err
	}
	var prev healthState
	if had {
		if err := json.Unmarshal(v, &prev); err != nil {
			had = false
		}
	}
	var news, recovered []string
	keep := map[string]string{}
	for k, text := range now {
		if old, ok := prev.Conditions[k]; ok {
			keep[k] = old // the first wording stays: a new detail is not news
			continue
		}
		keep[k] = text
		news = append(news, text)
	}
	for k := range prev.Conditions {
		if _, ok := now[k]; !ok {
			recovered = append(recovered, recovery(k))
		}
	}
	if had && len(news) == 0 && len(recovered) == 0 {
		return nil
	}
	buf, err := json.Marshal(healthState{Conditions: keep})
	if err != nil {
		return err
	}
	ch := store.Change{State: []store.StateEntry{{Key: healthKey(r.ID), Value: buf}}}
	if had {
		slices.Sort(news)
		slices.Sort(recovered)
		var b strings.Builder
		for _, t := range news {
			fmt.Fprintf(&b, ":rotating_light: Health watch (%s): %s\n", r.Gateway, t)
		}
		for _, t := range recovered {
			fmt.Fprintf(&b, ":white_check_mark: Health watch (%s): recovered: %s\n", r.Gateway, t)
		}
		msg, err := textMessage(r.ID, r.Channel, strings.TrimRight(b.String(), "\n"))
		if err != nil {
			return err
		}
		ch.Outbox = []store.Message{msg}
		s.log.Info("health changed", "run_id", r.ID, "gateway", r.Gateway, "new", len(news), "recovered", len(recovered))
	} else {
		s.log.Info("health watch baseline", "run_id", r.ID, "gateway", r.Gateway, "conditions", slices.Sorted(maps.Keys(keep)))
	}
	_, err = s.st.Commit(ctx, ch)
	return err
}
