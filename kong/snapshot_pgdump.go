package kong

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A snapshot's schema comes from pg_dump, which the stock image does not
// ship. These checks let the preflight (long before the snapshot step, and
// before any outage) say whether the pg_dump kongbot would run can dump the
// gateway's datastore at all.

// pgVersion is a PostgreSQL version as server_version_num counts it
// (160004 for 16.4, 90624 for 9.6.24), with the text it was read from.
type pgVersion struct {
	num  int
	text string
}

// major is the major version as PostgreSQL names it: "16", or "9.6" before 10.
func (v pgVersion) major() string {
	if v.num >= 100000 {
		return strconv.Itoa(v.num / 10000)
	}
	return fmt.Sprintf("%d.%d", v.num/10000, v.num/100%100)
}

// pgDumpMinServer is the oldest server a snapshot can use: pg_dump 15 and
// newer refuse servers before 9.2, and --snapshot (an exported snapshot, so
// that the schema and the COPY see the same instant) needs 9.2 with any
// pg_dump.
const pgDumpMinServer = 90200

// PGDumpCheck is the pg_dump a gateway's snapshots run, found usable for
// its datastore.
type PGDumpCheck struct {
	Path    string // the program
	Version string // what `pg_dump --version` printed, e.g. "15.18"
	Server  string // the datastore's server_version
}

// pgDumpPath is the pg_dump this gateway's snapshots run: the configured
// one, or the newest found. srvMajor, when known, names the client package
// to install.
func (g *gateway) pgDumpPath(srvMajor string) (string, error) {
	pkg := "postgresql-client-<the datastore server's major version>"
	if srvMajor != "" {
		pkg = "postgresql-client-" + srvMajor + " (or newer)"
	}
	hint := "a datastore snapshot needs pg_dump; install " + pkg + " where kongbot runs, or set the gateway's pg_dump " +
		"setting (docs/deploy.md, \"pg_dump for snapshots\")"
	p := g.cfg.PGDump
	if p == "" {
		bin, err := findPGBin("pg_dump")
		if err != nil {
			return "", fmt.Errorf("%w: %s", err, hint)
		}
		return bin, nil
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("pg_dump %s (the gateway's pg_dump setting) does not exist: %s", p, hint)
	case err != nil:
		return "", fmt.Errorf("pg_dump %s (the gateway's pg_dump setting): %w: %s", p, err, hint)
	case fi.IsDir():
		return "", fmt.Errorf("pg_dump %s (the gateway's pg_dump setting) is a directory, not a program: %s", p, hint)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("pg_dump %s (the gateway's pg_dump setting) is not executable: %s", p, hint)
	}
	return p, nil
}

// CheckPGDump finds the pg_dump the gateway's snapshot would run, reads its
// version and the datastore server's, and checks that pg_dump would agree to
// dump that server. The error names the problem and the fix.
func (c *Client) CheckPGDump(ctx context.Context, gateway string) (PGDumpCheck, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return PGDumpCheck{}, err
	}
	srv, srvErr := serverVersion(ctx, g.cfg.DatastoreDSN)
	major := ""
	if srvErr == nil {
		major = srv.major()
	}
	bin, err := g.pgDumpPath(major)
	if err != nil {
		return PGDumpCheck{}, err
	}
	if srvErr != nil {
		return PGDumpCheck{Path: bin}, srvErr
	}
	return checkPGDump(ctx, bin, srv)
}

// checkPGDump runs `bin --version` and applies pg_dump's own rule (pg_dump.c
// sets minRemoteVersion and maxRemoteVersion): it connects to servers from
// pgDumpMinServer up to any minor release of its own major version, and
// aborts with "server version mismatch" on anything newer.
func checkPGDump(ctx context.Context, bin string, srv pgVersion) (PGDumpCheck, error) {
	res := PGDumpCheck{Path: bin, Server: srv.text}
	dump, err := pgDumpVersion(ctx, bin)
	if err != nil {
		return res, err
	}
	res.Version = dump.text
	if err := pgDumpAccepts(bin, dump, srv); err != nil {
		return res, err
	}
	return res, nil
}

func pgDumpAccepts(bin string, dump, srv pgVersion) error {
	if max := dump.num/100*100 + 99; srv.num > max {
		return fmt.Errorf("pg_dump %s (%s) cannot dump the datastore's PostgreSQL %s server: pg_dump refuses a server "+
			"of a newer major version; install postgresql-client-%s (or newer) where kongbot runs, "+
			"or point the gateway's pg_dump setting at a pg_dump %s or newer",
			dump.major(), bin, srv.text, srv.major(), srv.major())
	}
	if srv.num < pgDumpMinServer {
		return fmt.Errorf("the datastore's PostgreSQL %s server is too old for a snapshot: it needs 9.2 or newer "+
			"(exported snapshots; pg_dump 15 and newer also refuse older servers)", srv.text)
	}
	return nil
}

var pgDumpVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?(?:\.(\d+))?`)

// pgDumpVersion reads `pg_dump --version`, e.g. "pg_dump (PostgreSQL) 15.18
// (Debian 15.18-0+deb12u1)" or "pg_dump (PostgreSQL) 17beta2".
func pgDumpVersion(ctx context.Context, bin string) (pgVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return pgVersion{}, fmt.Errorf("pg_dump %s --version: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	line := strings.TrimSpace(string(out))
	m := pgDumpVersionRE.FindStringSubmatch(line)
	if m == nil {
		return pgVersion{}, fmt.Errorf("pg_dump %s --version printed %q: not a PostgreSQL pg_dump", bin, truncate(line, 120))
	}
	n := make([]int, 3)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	v := pgVersion{text: strings.TrimPrefix(m[0], "(PostgreSQL) ")}
	if n[0] >= 10 {
		v.num = n[0]*10000 + n[1]
	} else {
		v.num = n[0]*10000 + n[1]*100 + n[2]
	}
	return v, nil
}

// serverVersion asks the datastore for its version.
func serverVersion(ctx context.Context, dsn string) (pgVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pgVersion{}, fmt.Errorf("reading the datastore's server version: %w", redactErr(err, dsn))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v pgVersion
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('server_version')").Scan(&v.num, &v.text); err != nil {
		return pgVersion{}, fmt.Errorf("reading the datastore's server version: %w", err)
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
