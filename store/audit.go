package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditEntry is one line of the append-only audit log: who did what, when,
// to which run and step. Seq, Prev, RunPrev and Hash are set by the store.
type AuditEntry struct {
	Seq     uint64          `json:"seq"`
	Run     string          `json:"run,omitempty"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor,omitempty"` // Slack user ID, "kongbot", "scheduler"
	Kind    string          `json:"kind"`            // e.g. "approve", "step-started", "step-failed"
	Step    string          `json:"step,omitempty"`
	Text    string          `json:"text,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Prev    string          `json:"prev"`     // hash of entry Seq-1 ("" for the first)
	RunPrev string          `json:"run_prev"` // hash of this run's previous entry
	Hash    string          `json:"hash"`
}

// hashed is the part of an entry the hash covers: everything but the hash.
type hashed struct {
	Seq     uint64          `json:"seq"`
	Run     string          `json:"run"`
	At      string          `json:"at"`
	Actor   string          `json:"actor"`
	Kind    string          `json:"kind"`
	Step    string          `json:"step"`
	Text    string          `json:"text"`
	Data    json.RawMessage `json:"data,omitempty"`
	Prev    string          `json:"prev"`
	RunPrev string          `json:"run_prev"`
}

func entryHash(e AuditEntry) (string, error) {
	buf, err := json.Marshal(hashed{
		Seq: e.Seq, Run: e.Run, At: e.At.UTC().Format(time.RFC3339Nano), Actor: e.Actor,
		Kind: e.Kind, Step: e.Step, Text: e.Text, Data: e.Data, Prev: e.Prev, RunPrev: e.RunPrev,
	})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// head is the last entry of a chain, kept so that deleting the tail of the
// log is detected.
type head struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	Count int    `json:"count"`
}

func readHead(b *bolt.Bucket, key []byte) (head, error) {
	var h head
	if v := b.Get(key); v != nil {
		if err := json.Unmarshal(v, &h); err != nil {
			return h, fmt.Errorf("decoding audit head %q: %w", key, err)
		}
	}
	return h, nil
}

func writeHead(b *bolt.Bucket, key []byte, h head) error {
	buf, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put(key, buf)
}

func appendAudit(tx *bolt.Tx, e AuditEntry) (AuditEntry, error) {
	if e.Kind == "" {
		return AuditEntry{}, fmt.Errorf("audit entry without kind: %w", ErrInvalid)
	}
	if strings.ContainsRune(e.Run, 0) {
		return AuditEntry{}, fmt.Errorf("audit run %q: %w", e.Run, ErrInvalid)
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return AuditEntry{}, fmt.Errorf("audit data is not JSON: %w", ErrInvalid)
	}
	heads := tx.Bucket(bucketAuditHeads)
	g, err := readHead(heads, globalHeadKey)
	if err != nil {
		return AuditEntry{}, err
	}
	e.At = e.At.UTC()
	e.Seq = g.Seq + 1
	e.Prev = g.Hash
	var rh head
	if e.Run != "" {
		if rh, err = readHead(heads, []byte(e.Run)); err != nil {
			return AuditEntry{}, err
		}
		e.RunPrev = rh.Hash
	}
	// Compact Data so that what is hashed is what is stored and read back.
	if len(e.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Data); err != nil {
			return AuditEntry{}, fmt.Errorf("audit data: %w", err)
		}
		e.Data = buf.Bytes()
	}
	if e.Hash, err = entryHash(e); err != nil {
		return AuditEntry{}, err
	}
	buf, err := json.Marshal(e)
	if err != nil {
		return AuditEntry{}, err
	}
	if err := tx.Bucket(bucketAudit).Put(u64(e.Seq), buf); err != nil {
		return AuditEntry{}, err
	}
	if err := writeHead(heads, globalHeadKey, head{Seq: e.Seq, Hash: e.Hash, Count: g.Count + 1}); err != nil {
		return AuditEntry{}, err
	}
	if e.Run != "" {
		if err := tx.Bucket(bucketAuditByRun).Put(runKey(e.Run, u64(e.Seq)), nil); err != nil {
			return AuditEntry{}, err
		}
		if err := writeHead(heads, []byte(e.Run), head{Seq: e.Seq, Hash: e.Hash, Count: rh.Count + 1}); err != nil {
			return AuditEntry{}, err
		}
	}
	return e, nil
}

// Audit returns a run's audit entries in order.
func (s *Store) Audit(ctx context.Context, run string) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketAudit)
		prefix := runKey(run, nil)
		c := tx.Bucket(bucketAuditByRun).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasRunPrefix(k, run); k, _ = c.Next() {
			seq := k[len(prefix):]
			v := log.Get(seq)
			if v == nil {
				return fmt.Errorf("audit entry %d of run %s is missing", beU64(seq), run)
			}
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decoding audit entry %d: %w", beU64(seq), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Break is the first broken link found by a verification.
type Break struct {
	Seq    uint64 `json:"seq"`
	Run    string `json:"run,omitempty"`
	Reason string `json:"reason"`
}

func (b Break) String() string {
	if b.Run != "" {
		return fmt.Sprintf("entry %d (run %s): %s", b.Seq, b.Run, b.Reason)
	}
	return fmt.Sprintf("entry %d: %s", b.Seq, b.Reason)
}

// Verification is the result of walking an audit chain.
type Verification struct {
	Entries int    `json:"entries"` // entries checked
	Head    string `json:"head"`    // hash of the last entry
	Broken  *Break `json:"broken,omitempty"`
}

// OK reports whether the chain is intact.
func (v Verification) OK() bool { return v.Broken == nil }

// VerifyAudit walks the whole log from the first entry: each entry's hash,
// its link to the previous entry and to its run's previous entry, no gaps,
// and the recorded heads. It reports the first broken link; err is only for
// failures to read.
func (s *Store) VerifyAudit(ctx context.Context) (Verification, error) {
	var res Verification
	err := s.view(ctx, func(tx *bolt.Tx) error {
		heads := tx.Bucket(bucketAuditHeads)
		runHeads := map[string]string{}
		runCounts := map[string]int{}
		var prevSeq uint64
		prevHash := ""
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := beU64(k)
			if brk := checkEntry(k, v, prevSeq+1, prevHash, runHeads); brk != nil {
				res.Broken = brk
				return nil
			}
			var e AuditEntry
			_ = json.Unmarshal(v, &e) // checkEntry decoded it already
			prevSeq, prevHash = seq, e.Hash
			if e.Run != "" {
				runHeads[e.Run] = e.Hash
				runCounts[e.Run]++
			}
			res.Entries++
		}
		res.Head = prevHash
		g, err := readHead(heads, globalHeadKey)
		if err != nil {
			return err
		}
		if g.Seq != prevSeq || g.Hash != prevHash {
			res.Broken = &Break{Seq: prevSeq + 1, Reason: fmt.Sprintf("log ends at entry %d but the recorded head is entry %d: entries were removed from the end", prevSeq, g.Seq)}
			return nil
		}
		return heads.ForEach(func(k, v []byte) error {
			if bytes.Equal(k, globalHeadKey) {
				return nil
			}
			var h head
			if err := json.Unmarshal(v, &h); err != nil {
				return err
			}
			if runHeads[string(k)] != h.Hash && res.Broken == nil {
				res.Broken = &Break{Seq: h.Seq, Run: string(k), Reason: "the run's recorded last entry is not its last entry in the log"}
			}
			return nil
		})
	})
	return res, err
}

// VerifyRunAudit checks one run's chain: each entry's hash, its link to the
// run's previous entry, and the run's recorded head.
func (s *Store) VerifyRunAudit(ctx context.Context, run string) (Verification, error) {
	var res Verification
	err := s.view(ctx, func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketAudit)
		prefix := runKey(run, nil)
		prevHash := ""
		var lastSeq uint64
		c := tx.Bucket(bucketAuditByRun).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasRunPrefix(k, run); k, _ = c.Next() {
			sk := k[len(prefix):]
			seq := beU64(sk)
			v := log.Get(sk)
			if v == nil {
				res.Broken = &Break{Seq: seq, Run: run, Reason: "entry is missing from the log"}
				return nil
			}
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				res.Broken = &Break{Seq: seq, Run: run, Reason: "entry is unreadable: " + err.Error()}
				return nil
			}
			if e.Run != run {
				res.Broken = &Break{Seq: seq, Run: run, Reason: fmt.Sprintf("entry belongs to run %q", e.Run)}
				return nil
			}
			if brk := verifyOne(e, seq); brk != nil {
				res.Broken = brk
				return nil
			}
			if e.RunPrev != prevHash {
				res.Broken = &Break{Seq: seq, Run: run, Reason: "link to the run's previous entry does not match (an entry was removed or changed)"}
				return nil
			}
			prevHash, lastSeq = e.Hash, seq
			res.Entries++
		}
		res.Head = prevHash
		h, err := readHead(tx.Bucket(bucketAuditHeads), []byte(run))
		if err != nil {
			return err
		}
		if h.Hash != prevHash {
			res.Broken = &Break{Seq: lastSeq, Run: run, Reason: fmt.Sprintf("the run's recorded last entry is %d but its chain ends at %d: entries were removed", h.Seq, lastSeq)}
		}
		return nil
	})
	return res, err
}

func checkEntry(k, v []byte, wantSeq uint64, prevHash string, runHeads map[string]string) *Break {
	seq := beU64(k)
	if seq != wantSeq {
		return &Break{Seq: wantSeq, Reason: fmt.Sprintf("entry is missing (next stored entry is %d)", seq)}
	}
	var e AuditEntry
	if err := json.Unmarshal(v, &e); err != nil {
		return &Break{Seq: seq, Reason: "entry is unreadable: " + err.Error()}
	}
	if brk := verifyOne(e, seq); brk != nil {
		return brk
	}
	if e.Prev != prevHash {
		return &Break{Seq: seq, Run: e.Run, Reason: "link to the previous entry does not match (the previous entry was changed)"}
	}
	if e.Run != "" && e.RunPrev != runHeads[e.Run] {
		return &Break{Seq: seq, Run: e.Run, Reason: "link to the run's previous entry does not match"}
	}
	return nil
}

func verifyOne(e AuditEntry, keySeq uint64) *Break {
	if e.Seq != keySeq {
		return &Break{Seq: keySeq, Run: e.Run, Reason: fmt.Sprintf("entry says it is %d", e.Seq)}
	}
	h, err := entryHash(e)
	if err != nil {
		return &Break{Seq: keySeq, Run: e.Run, Reason: "entry cannot be hashed: " + err.Error()}
	}
	if h != e.Hash {
		return &Break{Seq: keySeq, Run: e.Run, Reason: "content does not match its hash (the entry was changed)"}
	}
	return nil
}

func beU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
