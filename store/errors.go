package store

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned when opening a store file.
var (
	// ErrHeld means another process has the file open (bbolt takes an
	// exclusive flock for writers); usually a running kongbot.
	ErrHeld = errors.New("store is held by another process")
	// ErrCorrupt means the file is not a readable bbolt database or its
	// pages are inconsistent. The file is left untouched.
	ErrCorrupt = errors.New("store file is corrupt")
	// ErrForeign means the file is a valid bbolt database that kongbot did
	// not create (no meta bucket, or another format name). Left untouched.
	ErrForeign = errors.New("store file was not created by kongbot")
	// ErrNewerSchema means the file was written by a newer kongbot.
	ErrNewerSchema = errors.New("store file has a newer schema")
	// ErrReadOnly is returned by writes on a store opened read-only.
	ErrReadOnly = errors.New("store is opened read-only")
)

// Errors returned by reads and commits.
var (
	// ErrNotFound means the run, schedule or message does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a Commit named a run version that is no longer the
	// stored one (someone else committed in between), or created a run whose
	// ID already exists.
	ErrConflict = errors.New("run changed since it was read")
	// ErrInvalid means a Commit was malformed (missing ID, gateway, ...).
	ErrInvalid = errors.New("invalid change")
)

// LockedError is returned by Commit when its Change asks for a gateway lock
// that another run holds. Holder says who.
type LockedError struct {
	Holder Lock
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("gateway %s is locked by run %s (started by %s at %s)",
		e.Holder.Gateway, e.Holder.Run, e.Holder.Requester, e.Holder.Since.UTC().Format(time.RFC3339))
}
