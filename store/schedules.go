package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Schedule is a planned upgrade: start a run of Gateway to Target when Spec
// (a cron spec or an RFC 3339 time) next comes due.
type Schedule struct {
	ID        string    `json:"id"`
	Gateway   string    `json:"gateway"`
	Target    string    `json:"target"`
	Spec      string    `json:"spec"`
	NextDue   time.Time `json:"next_due"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Channel   string    `json:"channel,omitempty"`
	// LastRun is the run the schedule last started.
	LastRun string `json:"last_run,omitempty"`
	// State is "" while the schedule waits for NextDue; a one-shot schedule
	// ends "started", "missed" (due while the bot was down, past the grace
	// period) or "failed" (the run could not be opened).
	State string `json:"state,omitempty"`
	// LastDue is the due time last handled and Note what happened then.
	LastDue time.Time `json:"last_due,omitzero"`
	Note    string    `json:"note,omitempty"`
}

func putSchedule(tx *bolt.Tx, sc Schedule, now time.Time) error {
	if sc.ID == "" || sc.Gateway == "" || sc.Target == "" || sc.Spec == "" {
		return fmt.Errorf("schedule %q needs an ID, gateway, target and spec: %w", sc.ID, ErrInvalid)
	}
	if sc.Created.IsZero() {
		sc.Created = now
	}
	buf, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSchedules).Put([]byte(sc.ID), buf)
}

func deleteSchedule(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketSchedules)
	if b.Get([]byte(id)) == nil {
		return fmt.Errorf("schedule %s: %w", id, ErrNotFound)
	}
	return b.Delete([]byte(id))
}

// NewScheduleID hands out a short unique schedule ID ("s1", "s2", ...).
func (s *Store) NewScheduleID(ctx context.Context) (string, error) {
	var id string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n, err := nextCounter(tx, keyScheduleSeq)
		id = fmt.Sprintf("s%d", n)
		return err
	})
	return id, err
}

// PutSchedule creates or replaces a schedule, with an optional audit entry
// in the same transaction.
func (s *Store) PutSchedule(ctx context.Context, sc Schedule, audit ...AuditEntry) error {
	_, err := s.Commit(ctx, Change{PutSchedules: []Schedule{sc}, Audit: audit})
	return err
}

// DeleteSchedule removes a schedule (ErrNotFound if there is none), with an
// optional audit entry in the same transaction.
func (s *Store) DeleteSchedule(ctx context.Context, id string, audit ...AuditEntry) error {
	_, err := s.Commit(ctx, Change{DeleteSchedules: []string{id}, Audit: audit})
	return err
}

// Schedule reads one schedule.
func (s *Store) Schedule(ctx context.Context, id string) (Schedule, error) {
	var sc Schedule
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSchedules).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("schedule %s: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &sc)
	})
	return sc, err
}

// Schedules lists every schedule, soonest due first.
func (s *Store) Schedules(ctx context.Context) ([]Schedule, error) {
	var out []Schedule
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSchedules).ForEach(func(_, v []byte) error {
			var sc Schedule
			if err := json.Unmarshal(v, &sc); err != nil {
				return err
			}
			out = append(out, sc)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].NextDue.Before(out[j].NextDue) })
	return out, err
}
