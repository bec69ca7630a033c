package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatName is written in the meta bucket of every kongbot store; a bbolt
// file without it is someone else's.
const FormatName = "kongbot-store"

// SchemaVersion is the layout this build reads and writes. Opening an older
// file migrates it in one transaction; a newer one is refused.
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for another process to let go of
// the file before reporting ErrHeld.
const DefaultTimeout = 2 * time.Second

var (
	bucketMeta        = []byte("meta")
	bucketRuns        = []byte("runs")
	bucketAudit       = []byte("audit")        // seq(8) -> AuditEntry JSON
	bucketAuditByRun  = []byte("audit_by_run") // run \x00 seq(8) -> nil
	bucketAuditHeads  = []byte("audit_heads")  // run -> head JSON; "" key is global
	bucketOutbox      = []byte("outbox")       // run \x00 seq(8) -> Message JSON
	bucketOutboxQueue = []byte("outbox_queue") // run \x00 seq(8) -> nil, undelivered only
	bucketMessageRefs = []byte("message_refs") // run \x00 key -> MessageRef JSON
	bucketLocks       = []byte("locks")        // gateway -> Lock JSON
	bucketSchedules   = []byte("schedules")    // id -> Schedule JSON
	bucketJournal     = []byte("journal")      // run \x00 key -> value
	allBuckets        = [][]byte{bucketMeta, bucketRuns, bucketAudit, bucketAuditByRun, bucketAuditHeads, bucketOutbox, bucketOutboxQueue, bucketMessageRefs, bucketLocks, bucketSchedules, bucketJournal}
	keyFormat         = []byte("format")
	keySchema         = []byte("schema")
	keyCreated        = []byte("created")
	keyRunSeq         = []byte("run_seq")
	keyScheduleSeq    = []byte("schedule_seq")
	globalHeadKey     = []byte{0} // run IDs never contain NUL
)

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means DefaultTimeout.
	Timeout time.Duration
	// ReadOnly opens with a shared lock and refuses writes; used by the CLI
	// when the bot is not running, and to verify backups.
	ReadOnly bool
	// NoSync skips fsync on commit. Only for tests that do not measure or
	// rely on durability; never set in production.
	NoSync bool
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
}

// Store is an open store file. Its methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	now      func() time.Time
}

// Open opens the store at path, creating it (and its directory) when it does
// not exist. An existing file is validated read-only first and refused, never
// modified, when it is corrupt, foreign or newer than this build.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if opts.ReadOnly {
			return nil, fmt.Errorf("store %s does not exist", path)
		}
		return create(path, opts)
	case err != nil:
		return nil, fmt.Errorf("store %s: %w", path, err)
	case info.IsDir():
		return nil, fmt.Errorf("store %s is a directory, not a file", path)
	case info.Size() == 0:
		// bbolt would initialise an empty file in place; an empty file we did
		// not create is not ours to fill.
		return nil, fmt.Errorf("store %s is an empty file; refusing to use it: %w", path, ErrForeign)
	}

	// Validate with a read-only open: it never writes, even to a bbolt file
	// that a read-write open would touch (freelist flush).
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.Timeout})
	if err != nil {
		return nil, openError(path, err)
	}
	schema, verr := validate(ro, path)
	if cerr := ro.Close(); cerr != nil && verr == nil {
		verr = fmt.Errorf("store %s: closing after check: %w", path, cerr)
	}
	if verr != nil {
		return nil, verr
	}
	if opts.ReadOnly {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.Timeout})
		if err != nil {
			return nil, openError(path, err)
		}
		return &Store{db: db, path: path, readOnly: true, now: opts.Now}, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, openError(path, err)
	}
	if schema < SchemaVersion {
		if err := db.Update(func(tx *bolt.Tx) error { return migrate(tx, schema) }); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store %s: migrating schema %d to %d: %w", path, schema, SchemaVersion, err)
		}
	}
	return &Store{db: db, path: path, now: opts.Now}, nil
}

func create(path string, opts Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store %s: creating directory: %w", path, err)
		}
	}
	// O_EXCL: if another process created the file since we looked, this
	// fails instead of adopting a file we have not validated.
	excl := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		return os.OpenFile(name, flag|os.O_EXCL, perm)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync, OpenFile: excl})
	if errors.Is(err, fs.ErrExist) {
		return Open(path, opts)
	}
	if err != nil {
		return nil, openError(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return migrate(tx, 0) })
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store %s: initialising: %w", path, err)
	}
	return &Store{db: db, path: path, now: opts.Now}, nil
}

// migrate brings a file from schema `from` to SchemaVersion. Schema 0 is a
// fresh file. New schemas add their steps here; each runs in the caller's
// single transaction.
func migrate(tx *bolt.Tx, from int) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("creating bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if from == 0 {
		if err := meta.Put(keyFormat, []byte(FormatName)); err != nil {
			return err
		}
		if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
	}
	return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("store %s is held by another process (is kongbot already running?): %w", path, ErrHeld)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("store %s is not a readable bbolt database (%v); it was left untouched: %w", path, err, ErrCorrupt)
	default:
		return fmt.Errorf("store %s: %w", path, err)
	}
}

// validate checks an opened (read-only) file is a consistent kongbot store
// of a schema this build can use, and returns that schema.
func validate(db *bolt.DB, path string) (schema int, err error) {
	// Damaged page elements make bbolt read outside the mapped file, which
	// is a fatal fault unless this goroutine asks for a panic instead.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store %s: pages are damaged (%v); it was left untouched: %w", path, r, ErrCorrupt)
		}
	}()
	info, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		// A file shorter than its own high-water mark was truncated; reading
		// past its end would fault.
		if tx.Size() > info.Size() {
			return fmt.Errorf("store %s is truncated (%d bytes, expects %d); it was left untouched: %w", path, info.Size(), tx.Size(), ErrCorrupt)
		}
		// Touch every key and value here, where a fault is a panic we
		// recover. (bbolt's tx.Check is not used: it walks pages on a
		// goroutine of its own, where a damaged page id is a fatal fault.)
		if err := walk(tx); err != nil {
			return fmt.Errorf("store %s: %v; it was left untouched: %w", path, err, ErrCorrupt)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("store %s is a bbolt database without kongbot's meta bucket; refusing to use it: %w", path, ErrForeign)
		}
		if f := string(meta.Get(keyFormat)); f != FormatName {
			return fmt.Errorf("store %s has format %q, want %q; refusing to use it: %w", path, f, FormatName, ErrForeign)
		}
		n, perr := strconv.Atoi(string(meta.Get(keySchema)))
		if perr != nil || n < 1 {
			return fmt.Errorf("store %s has an unreadable schema version %q: %w", path, meta.Get(keySchema), ErrCorrupt)
		}
		if n > SchemaVersion {
			return fmt.Errorf("store %s has schema %d but this kongbot knows up to %d; upgrade kongbot: %w", path, n, SchemaVersion, ErrNewerSchema)
		}
		// Every schema so far has had every bucket from the start; a missing
		// one is a damaged bucket name.
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("store %s lacks its %s bucket; it was left untouched: %w", path, name, ErrCorrupt)
			}
		}
		schema = n
		return nil
	})
	return schema, err
}

// walk reads every key and value of every bucket, nested ones included,
// and checks keys come in order.
func walk(tx *bolt.Tx) error {
	var sum byte
	var visit func(b *bolt.Bucket, depth int) error
	visit = func(b *bolt.Bucket, depth int) error {
		if depth > 8 {
			return errors.New("buckets nest too deep")
		}
		var prev []byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				return fmt.Errorf("keys out of order in a bucket")
			}
			prev = append(prev[:0], k...)
			// Seeking makes the cursor compare against the branch pages'
			// keys, which iterating alone never reads.
			if sk, _ := b.Cursor().Seek(k); !bytes.Equal(sk, k) {
				return fmt.Errorf("key %q cannot be found again by seeking", k)
			}
			for _, x := range v {
				sum ^= x
			}
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					if err := visit(nb, depth+1); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return visit(b, 0) })
	_ = sum
	return err
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Schema reads the schema version recorded in the file.
func (s *Store) Schema() (int, error) {
	var n int
	err := s.view(context.Background(), func(tx *bolt.Tx) error {
		var err error
		n, err = strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keySchema)))
		return err
	})
	return n, err
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) (err error) {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.contain(&err)
	return s.db.Update(fn)
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.contain(&err)
	return s.db.View(fn)
}

// contain turns a panic or memory fault inside bbolt (a page damaged in a
// way the open-time walk did not reach) into ErrCorrupt for this call
// instead of a crash; bbolt rolls the transaction back as the panic passes.
// It must be deferred directly.
func (s *Store) contain(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("store %s: damaged page (%v): %w", s.path, r, ErrCorrupt)
	}
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// runKey is run \x00 suffix: run IDs never contain NUL, so a prefix scan
// over run \x00 finds exactly one run's keys.
func runKey(run string, suffix []byte) []byte {
	k := make([]byte, 0, len(run)+1+len(suffix))
	k = append(k, run...)
	k = append(k, 0)
	return append(k, suffix...)
}
