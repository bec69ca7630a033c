package kong

import (
	"archive/tar"
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/kongbot/kongbot/steps"
)

// ErrBadSnapshot is wrapped by every error VerifySnapshot returns because of
// the archive itself: missing, unreadable, truncated, corrupted, or not
// matching its own manifest. Errors that say nothing about the archive (a
// cancelled context) do not wrap it.
var ErrBadSnapshot = errors.New("bad snapshot archive")

// snapshotError names one archive and what is wrong with it.
type snapshotError struct {
	archive string
	problem string
	err     error
}

func (e *snapshotError) Error() string {
	s := "snapshot archive " + e.archive + " " + e.problem
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *snapshotError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrBadSnapshot}
	}
	return []error{ErrBadSnapshot, e.err}
}

func badSnapshot(archive string, err error, format string, args ...any) error {
	return &snapshotError{archive: archive, problem: fmt.Sprintf(format, args...), err: err}
}

// Limits on the parts of an archive that are held in memory; table data is
// only ever streamed.
const (
	maxManifestBytes = 16 << 20
	maxSchemaBytes   = 64 << 20
)

// SnapshotInfo is an archive read back whole and found to match its
// manifest.
type SnapshotInfo struct {
	Manifest Manifest
	Rows     int64 // every table's rows
	Size     int64 // the archive file's size in bytes
}

// VerifySnapshot reads the archive at path once, streaming (memory stays
// bounded by the schema parts, whatever the tables hold), and checks it the
// way a restore would need it: the gzip stream is whole (its CRC checked, no
// bytes after it), the manifest parses, both schema parts are there and the
// pre-data part creates every table of the manifest, and every table's data
// has the row count and checksum the manifest records, with no data file
// missing or extra. A problem with the archive is an error wrapping
// ErrBadSnapshot that names it.
func VerifySnapshot(ctx context.Context, path string) (SnapshotInfo, error) {
	sc, err := scanArchive(ctx, path, nil)
	if err != nil {
		return SnapshotInfo{}, err
	}
	info := SnapshotInfo{Manifest: sc.manifest, Size: sc.size}
	for _, t := range sc.manifest.Tables {
		info.Rows += t.Rows
	}
	return info, nil
}

// VerifySnapshot checks an archive the gateway's snapshot step recorded
// (see the package function VerifySnapshot) and that it is a snapshot of
// that gateway, and returns its tables' row counts.
func (c *Client) VerifySnapshot(ctx context.Context, gateway, archive string) (steps.SnapshotSummary, error) {
	if _, err := c.gateway(gateway); err != nil {
		return steps.SnapshotSummary{}, err
	}
	info, err := VerifySnapshot(ctx, archive)
	if err != nil {
		return steps.SnapshotSummary{}, err
	}
	if g := info.Manifest.Gateway; g != "" && g != gateway {
		return steps.SnapshotSummary{}, badSnapshot(archive, nil, "is a snapshot of gateway %s, not %s", g, gateway)
	}
	sum := steps.SnapshotSummary{Archive: archive, TakenAt: info.Manifest.TakenAt, Tables: map[string]int64{},
		Rows: info.Rows, Bytes: info.Size}
	for _, t := range info.Manifest.Tables {
		sum.Tables[t.Name] = t.Rows
	}
	return sum, nil
}

// scanned is what one pass over an archive found.
type scanned struct {
	manifest  Manifest
	pre, post []byte
	size      int64
}

// tableDigest is one data file's rows and checksum as read.
type tableDigest struct {
	rows int64
	sum  string
}

// fileReader stops a long read when the context ends, and notes whether the
// file itself ran out: an early end of the compressed stream is truncation
// only then, and damage otherwise.
type fileReader struct {
	ctx context.Context
	r   io.Reader
	eof bool
}

func (f *fileReader) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.eof = true
	}
	return n, err
}

// scanArchive reads the archive once and checks it (see VerifySnapshot).
// data, when not nil, is called with each data file's table name and a
// reader of its rows instead of digesting them; it must read the reader to
// the end or return an error (restore's second pass uses it, after a full
// check, to load tables as they stream by).
func scanArchive(ctx context.Context, path string, data func(table string, r io.Reader) error) (scanned, error) {
	var sc scanned
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sc, badSnapshot(path, nil, "does not exist")
	case err != nil:
		return sc, badSnapshot(path, err, "cannot be read")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sc, badSnapshot(path, err, "cannot be read")
	}
	if fi.IsDir() {
		return sc, badSnapshot(path, nil, "is a directory, not an archive")
	}
	sc.size = fi.Size()
	if sc.size == 0 {
		return sc, badSnapshot(path, nil, "is empty (0 bytes)")
	}
	fr := &fileReader{ctx: ctx, r: f}
	br := bufio.NewReaderSize(fr, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && (magic[0] != 0x1f || magic[1] != 0x8b) {
		if ctx.Err() != nil {
			return sc, ctx.Err()
		}
		return sc, badSnapshot(path, nil, "is not a gzip file, so not a kongbot snapshot")
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		if ctx.Err() != nil {
			return sc, ctx.Err()
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return sc, badSnapshot(path, nil, "is truncated: it ends inside the gzip header (%d bytes)", sc.size)
		}
		return sc, badSnapshot(path, err, "is not a gzip file, so not a kongbot snapshot")
	}
	// One gzip member: anything after it is reported, not read as another.
	gz.Multistream(false)
	readErr := func(where string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var corrupt flate.CorruptInputError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) && fr.eof:
			return badSnapshot(path, nil, "is truncated: it ends inside %s (the file has %d bytes); the copy was cut short", where, sc.size)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badSnapshot(path, nil, "is corrupted: its data ends early inside %s, before the end of the file", where)
		case errors.Is(err, gzip.ErrChecksum):
			return badSnapshot(path, nil, "is corrupted: the data does not match the gzip checksum; bytes changed on disk")
		case errors.As(err, &corrupt):
			return badSnapshot(path, nil, "is corrupted: the compressed data is damaged (in %s)", where)
		case errors.Is(err, tar.ErrHeader):
			return badSnapshot(path, nil, "is corrupted: an invalid tar header at %s", where)
		}
		return badSnapshot(path, err, "cannot be read (in %s)", where)
	}

	// A problem with what an entry holds may come from damage further on
	// (a flipped byte reads back as other bytes until the CRC at the end
	// says so): the rest of the stream is read first, and damage named
	// before the content.
	content := func(err error) error {
		if _, derr := io.Copy(io.Discard, gz); derr != nil {
			return readErr("the rest of the archive", derr)
		}
		return err
	}
	digests := map[string]tableDigest{}
	var (
		haveManifest, havePre, havePost bool
		prev                            = "the start of the archive"
	)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sc, readErr("the entry after "+prev, err)
		}
		name := h.Name
		prev = name
		small := func(limit int64) ([]byte, error) {
			if h.Size > limit {
				return nil, content(badSnapshot(path, nil, "holds a %s of %d bytes, more than the %d a kongbot snapshot writes", name, h.Size, limit))
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, readErr(name, err)
			}
			return b, nil
		}
		switch {
		case name == arManifest:
			if haveManifest {
				return sc, content(badSnapshot(path, nil, "holds %s twice", name))
			}
			b, err := small(maxManifestBytes)
			if err != nil {
				return sc, err
			}
			if err := json.Unmarshal(b, &sc.manifest); err != nil {
				return sc, content(badSnapshot(path, err, "has a manifest.json that does not parse"))
			}
			haveManifest = true
		case name == arPre || name == arPost:
			if (name == arPre && havePre) || (name == arPost && havePost) {
				return sc, content(badSnapshot(path, nil, "holds %s twice", name))
			}
			b, err := small(maxSchemaBytes)
			if err != nil {
				return sc, err
			}
			if name == arPre {
				sc.pre, havePre = b, true
			} else {
				sc.post, havePost = b, true
			}
		case strings.HasPrefix(name, arData) && strings.HasSuffix(name, ".copy"):
			table := strings.TrimSuffix(strings.TrimPrefix(name, arData), ".copy")
			if _, dup := digests[table]; dup {
				return sc, content(badSnapshot(path, nil, "holds %s twice", name))
			}
			d := &rowDigest{}
			var r io.Reader = io.TeeReader(tr, d)
			if data != nil {
				if err := data(table, r); err != nil {
					if _, ok := errors.AsType[*snapshotError](err); ok || ctx.Err() != nil {
						return sc, err
					}
					return sc, fmt.Errorf("table %s: %w", table, err)
				}
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return sc, readErr(name, err)
			}
			digests[table] = tableDigest{rows: d.rows, sum: d.sum()}
		}
		// Other entries are not kongbot's; a restore ignores them too.
	}
	// The tar end marker is not the end of the gzip stream: reading on to
	// gzip's EOF is what checks its CRC and length.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return sc, readErr("the gzip trailer", err)
	}
	if n, _ := io.Copy(io.Discard, br); n > 0 {
		return sc, badSnapshot(path, nil, "has %d unexpected bytes after the end of its compressed data", n)
	}
	if !haveManifest {
		return sc, badSnapshot(path, nil, "has no manifest.json: not a kongbot snapshot")
	}
	if !havePre {
		return sc, badSnapshot(path, nil, "has no %s: the schema part is missing, a restore could not create the tables", arPre)
	}
	if !havePost {
		return sc, badSnapshot(path, nil, "has no %s: the schema part is missing, a restore could not create the indexes and constraints", arPost)
	}
	if problems := checkManifest(sc, digests); len(problems) > 0 {
		return sc, badSnapshot(path, nil, "does not match its manifest: %s", strings.Join(problems, "; "))
	}
	return sc, nil
}

var checksumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkManifest compares what was read with the manifest, table by table.
func checkManifest(sc scanned, digests map[string]tableDigest) []string {
	var problems []string
	created := createdTables(sc.pre)
	seen := map[string]bool{}
	for _, t := range sc.manifest.Tables {
		switch {
		case t.Name == "":
			problems = append(problems, "a table without a name")
			continue
		case seen[t.Name]:
			problems = append(problems, fmt.Sprintf("table %s listed twice", t.Name))
			continue
		case !checksumRE.MatchString(t.Checksum):
			problems = append(problems, fmt.Sprintf("table %s: checksum %q is not a SHA-256 in hex", t.Name, t.Checksum))
		}
		seen[t.Name] = true
		if !created[t.Name] {
			problems = append(problems, fmt.Sprintf("table %s: %s does not create it", t.Name, arPre))
		}
		d, ok := digests[t.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s: its data file %s%s.copy is missing", t.Name, arData, t.Name))
			continue
		}
		if d.rows != t.Rows {
			problems = append(problems, fmt.Sprintf("table %s: %d rows in %s%s.copy, the manifest says %d", t.Name, d.rows, arData, t.Name, t.Rows))
		} else if d.sum != t.Checksum {
			problems = append(problems, fmt.Sprintf("table %s: the checksum of %s%s.copy is %s…, the manifest says %s…", t.Name, arData, t.Name, d.sum[:12], short12(t.Checksum)))
		}
	}
	var extra []string
	for name := range digests {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		problems = append(problems, fmt.Sprintf("%s%s.copy is not in the manifest", arData, name))
	}
	return problems
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// createTableRE matches pg_dump's CREATE TABLE lines: the name is schema
// qualified and quoted only when it must be.
var createTableRE = regexp.MustCompile(`(?m)^CREATE (?:UNLOGGED )?TABLE public\.("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*) `)

func createdTables(pre []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range createTableRE.FindAllSubmatch(pre, -1) {
		name := string(m[1])
		if strings.HasPrefix(name, `"`) {
			name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
		}
		out[name] = true
	}
	return out
}
