package traffic

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// Weights is a split of traffic between the old and the new generation, in
// percent. Old+New is always 100.
type Weights struct {
	Old int `json:"old"`
	New int `json:"new"`
}

// Split returns the weights that send newPct percent to the new generation.
func Split(newPct int) Weights { return Weights{Old: 100 - newPct, New: newPct} }

func (w Weights) String() string { return fmt.Sprintf("old %d / new %d", w.Old, w.New) }

// Validate reports weights that are not a split of 100 %.
func (w Weights) Validate() error {
	if w.Old < 0 || w.New < 0 || w.Old > 100 || w.New > 100 || w.Old+w.New != 100 {
		return fmt.Errorf("weights %s: %w", w, ErrBadWeights)
	}
	return nil
}

// Move is what a backend did with a request to change the weights.
type Move struct {
	// Manual, when not empty, means nothing changed yet: a person must make
	// the change, as the text says, and confirm it ("Mark done").
	Manual string
}

// GenStats are one generation's figures at one moment. Counters are
// cumulative (they only grow); a gate works on the difference between two
// samples.
type GenStats struct {
	Responses int64 `json:"responses"`  // HTTP responses counted
	Status5xx int64 `json:"status_5xx"` // of which 5xx
	// Errors are requests that got no proper answer from the servers:
	// connection and response errors (HAProxy econ + eresp).
	Errors   int64 `json:"errors"`
	Sessions int64 `json:"sessions"` // current sessions (connections) now
	// Latency is the backend's own latency figure now; LatencyKind names it
	// ("haproxy rtime: mean of the last 1024 requests", "hook p95").
	Latency     time.Duration `json:"latency,omitempty"`
	LatencyKind string        `json:"latency_kind,omitempty"`
}

// Sample is a backend's figures at one moment.
type Sample struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"` // "haproxy show stat", "exec health"
	Old    GenStats  `json:"old"`
	New    GenStats  `json:"new"`
}

// Backend splits traffic between a gateway's old and new generation.
// Implementations: *HAProxy, *Exec, *Manual.
type Backend interface {
	// Kind names the backend in messages: "haproxy", "exec", "manual".
	Kind() string
	// SetWeights moves traffic to w. A Move with Manual set means a person
	// must do it; nothing has changed yet.
	SetWeights(ctx context.Context, w Weights) (Move, error)
	// VerifyWeights reads the weights back and compares them with want.
	VerifyWeights(ctx context.Context, want Weights) (steps.Check, error)
	// Sample reads the current health figures. ErrNoFigures means the
	// backend has none; gates then rely on probes alone.
	Sample(ctx context.Context) (Sample, error)
	// Drain stops new traffic to the old generation for good (weight 0 and
	// drain), ahead of decommissioning; Undrain reverses it for a rollback.
	Drain(ctx context.Context) (Move, error)
	Undrain(ctx context.Context) (Move, error)
	// Decommissioned checks the old generation gets no traffic: weight 0,
	// drained, no current sessions.
	Decommissioned(ctx context.Context) (steps.Check, error)
}

// Errors callers branch on.
var (
	// ErrBadWeights: weights that are not a split of 100 %.
	ErrBadWeights = errors.New("weights must be two percentages adding up to 100")
	// ErrNoFigures: the backend cannot report health figures.
	ErrNoFigures = errors.New("backend reports no health figures")
	// ErrUnknownGateway: no traffic configuration for the gateway.
	ErrUnknownGateway = errors.New("no traffic configuration for gateway")
	// ErrUnknownHop: the gateway has no plan for the hop.
	ErrUnknownHop = errors.New("no traffic plan for hop")
	// ErrManual: the change must be made by a person (see ManualError).
	ErrManual = errors.New("a person must make this change")
	// ErrTimeout: an exec hook ran out of time and was killed.
	ErrTimeout = errors.New("hook timed out")
	// ErrHAProxy: HAProxy refused a runtime API command.
	ErrHAProxy = errors.New("haproxy refused the command")
)

// ManualError is returned where a signature has no room for a Move (RollBack):
// the text says what the person must do. It matches ErrManual.
type ManualError struct{ Instructions string }

func (e *ManualError) Error() string { return "manual change needed: " + e.Instructions }

// Is makes errors.Is(err, ErrManual) true.
func (e *ManualError) Is(target error) bool { return target == ErrManual }
