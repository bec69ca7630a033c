package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BackupInfo describes a backup that was written and verified.
type BackupInfo struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	TxID  int    `json:"tx_id"` // the transaction the copy is consistent at
	Runs  int    `json:"runs"`
	Audit int    `json:"audit_entries"`
	// AuditBreak is the first broken audit link found in the copy; a
	// backup of a tampered store is still written (it is evidence).
	AuditBreak string `json:"audit_break,omitempty"`
}

// Backup writes a consistent copy of the store to path while the store stays
// in use: it copies inside one read transaction (writers are not blocked),
// fsyncs the copy, opens it read-only to check it is a valid kongbot store
// and walks its audit chain, and only then renames it into place. path is
// never left half-written.
func (s *Store) Backup(ctx context.Context, path string) (BackupInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup path %s: %w", path, err)
	}
	if self, err := filepath.Abs(s.path); err == nil && self == abs {
		return BackupInfo{}, fmt.Errorf("backup path %s is the store itself", path)
	}
	if err := ctx.Err(); err != nil {
		return BackupInfo{}, err
	}
	// Replacing an older backup is fine; replacing any other file is not
	// (the admin endpoint takes a path from whoever can reach it).
	if info, err := os.Stat(abs); err == nil {
		if info.IsDir() {
			return BackupInfo{}, fmt.Errorf("backup path %s is a directory", path)
		}
		old, err := Open(abs, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
		if err != nil {
			return BackupInfo{}, fmt.Errorf("backup path %s exists and is not a kongbot store; refusing to replace it: %w", path, err)
		}
		_ = old.Close()
	}
	dir := filepath.Dir(abs)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: creating temporary file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmpName != "" {
			_ = os.Remove(tmpName)
		}
	}()
	info := BackupInfo{Path: abs}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		info.TxID = tx.ID()
		n, err := tx.WriteTo(tmp)
		info.Bytes = n
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: writing %s: %w", tmpName, err)
	}
	if err := verifyBackup(ctx, tmpName, &info); err != nil {
		return BackupInfo{}, err
	}
	if err := os.Rename(tmpName, abs); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: moving into place: %w", err)
	}
	tmpName = ""
	if d, err := os.Open(dir); err == nil {
		// The rename is durable only once the directory is synced.
		_ = d.Sync()
		_ = d.Close()
	}
	return info, nil
}

func verifyBackup(ctx context.Context, path string, info *BackupInfo) error {
	b, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup: the copy does not open: %w", err)
	}
	defer b.Close()
	runs, err := b.Runs(ctx, RunFilter{})
	if err != nil {
		return fmt.Errorf("backup: reading runs from the copy: %w", err)
	}
	info.Runs = len(runs)
	v, err := b.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("backup: verifying the copy's audit log: %w", err)
	}
	if !v.OK() {
		info.AuditBreak = v.Broken.String()
	}
	info.Audit = v.Entries
	return nil
}
