package traffic

import (
	"context"
	"fmt"

	"github.com/kongbot/kongbot/steps"
)

// ManualOptions configure the manual backend.
type ManualOptions struct {
	// OldName and NewName are how the instructions call each generation,
	// e.g. "the 0.14.1 cluster"; default "old" and "new".
	OldName string
	NewName string
	// Where says where people change the weights ("the F5 pool kong-prod").
	Where string
	// Share verifies a move from the outside; required, since nothing else
	// can tell whether people did what was asked.
	Share ShareProbe
}

// Manual is a Backend where people move the weights by hand. SetWeights
// changes nothing and returns the instructions as Move.Manual; the caller
// turns that into a "Mark done" wait, then verifies with VerifyWeights,
// which counts Kong versions in answers through the front (ShareProbe).
type Manual struct{ o ManualOptions }

var _ Backend = (*Manual)(nil)

// NewManual checks the options.
func NewManual(o ManualOptions) (*Manual, error) {
	if err := o.Share.Validate(); err != nil {
		return nil, fmt.Errorf("manual backend: %w", err)
	}
	if o.OldName == "" {
		o.OldName = "old (" + o.Share.OldVersion + ")"
	}
	if o.NewName == "" {
		o.NewName = "new (" + o.Share.NewVersion + ")"
	}
	return &Manual{o: o}, nil
}

// Kind implements Backend.
func (m *Manual) Kind() string { return "manual" }

func (m *Manual) where() string {
	if m.o.Where == "" {
		return "the load balancer"
	}
	return m.o.Where
}

// SetWeights implements Backend: nothing changes; the Move says what to do.
func (m *Manual) SetWeights(_ context.Context, w Weights) (Move, error) {
	if err := w.Validate(); err != nil {
		return Move{}, err
	}
	return Move{Manual: fmt.Sprintf("Set %s to send %d %% to %s and %d %% to %s, then click Mark done.",
		m.where(), w.Old, m.o.OldName, w.New, m.o.NewName)}, nil
}

// VerifyWeights implements Backend with the share probe.
func (m *Manual) VerifyWeights(ctx context.Context, want Weights) (steps.Check, error) {
	if err := want.Validate(); err != nil {
		return steps.Check{}, err
	}
	return m.o.Share.Verify(ctx, want)
}

// Sample implements Backend: a person's load balancer reports nothing to us.
func (m *Manual) Sample(context.Context) (Sample, error) { return Sample{}, ErrNoFigures }

// Drain implements Backend.
func (m *Manual) Drain(context.Context) (Move, error) {
	return Move{Manual: fmt.Sprintf("Drain %s in %s (weight 0, no new connections) and wait until it has no open connections, then click Mark done.",
		m.o.OldName, m.where())}, nil
}

// Undrain implements Backend.
func (m *Manual) Undrain(context.Context) (Move, error) {
	return Move{Manual: fmt.Sprintf("Put %s back in service in %s (no longer draining), then click Mark done.", m.o.OldName, m.where())}, nil
}

// Decommissioned implements Backend: probes through the front must all be
// answered by the new generation. Sessions cannot be seen from here, which
// the Check says.
func (m *Manual) Decommissioned(ctx context.Context) (steps.Check, error) {
	c, err := m.o.Share.Verify(ctx, Split(100))
	if err != nil {
		return c, err
	}
	c.Facts = append(c.Facts, steps.Fact{Name: "open connections to " + m.o.OldName, Value: "not visible to the bot; check " + m.where()})
	return c, nil
}
