package kong

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kongbot/kongbot/steps"
)

// bundled103 is kong/constants.lua's plugin list at 1.0.3 (§5.1).
var bundled103 = []string{
	"jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log", "file-log", "http-log",
	"key-auth", "hmac-auth", "basic-auth", "ip-restriction", "request-transformer",
	"response-transformer", "request-size-limiting", "rate-limiting", "response-ratelimiting",
	"syslog", "loggly", "datadog", "ldap-auth", "statsd", "bot-detection", "aws-lambda",
	"request-termination", "azure-functions", "zipkin", "pre-function", "post-function", "prometheus",
}

// knownIncompatible explains plugins whose 0.x code is known not to load on
// 1.0 (§7), so the approver sees why a confirmation is asked.
var knownIncompatible = map[string]string{
	"okta-auth": "its 0.x code requires kong.dao.errors and kong.tools.responses, which 1.0.3 lacks (§7); " +
		"the 1.0.3 nodes need a 1.0-compatible build, loaded with plugins = bundled,okta-auth",
	"galileo": "removed in 1.0; `migrations finish` deletes its rows (§3.2)",
}

// Hop names accepted by Preflight.
const (
	Hop1 = "1" // 0.13.x → 0.14.1
	Hop2 = "2" // 0.14.1 → 1.0.3
)

// ParseHop accepts "1", "hop1", "0.14.1", "2", "hop2", "1.0.3".
func ParseHop(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "hop1", "0.14.1", "0.14":
		return Hop1, nil
	case "2", "hop2", "1.0.3", "1.0":
		return Hop2, nil
	}
	return "", fmt.Errorf("unknown hop %q: want 1 (0.13 → 0.14.1) or 2 (0.14.1 → 1.0.3)", s)
}

// ConfirmKeyPrefix prefixes the journal keys under which an approver's
// answer to "is plugin X compatible with 1.0.3?" is kept (one key per
// plugin, e.g. "plugin-compatible/okta-auth").
const ConfirmKeyPrefix = "plugin-compatible/"

// Preflight runs the checks that must pass before a hop starts, including
// that the pg_dump the hop's snapshot runs can dump the datastore. For hop 2,
// a plugin that is not bundled with 1.0.3 needs an approver's confirmation,
// read from j under ConfirmKeyPrefix+name; while it is missing the Check
// carries a Pause asking for it (j may be nil: nothing is confirmed). The
// Check is OK only when nothing is missing; an error means the checks could
// not run.
func (c *Client) Preflight(ctx context.Context, gateway, hop string, j steps.Journal) (steps.Check, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	h, err := ParseHop(hop)
	if err != nil {
		return steps.Check{}, err
	}
	inv, err := c.Inspect(ctx, gateway)
	if err != nil {
		return steps.Check{}, fmt.Errorf("preflight hop %s: %w", h, err)
	}
	var pf preflight
	pf.inv = inv
	switch h {
	case Hop1:
		pf.oldNodes(g, "0.13", "0.13.x")
		pf.schema(steps.Schema013)
		pf.newNodes(ctx, g, "0.14.1")
		pf.pgDump(ctx, c, gateway)
	case Hop2:
		pf.oldNodes(g, "0.14", "0.14.1")
		for _, n := range inv.Nodes {
			if n.Reachable && strings.HasPrefix(string(n.Generation), "0.14") && n.Version != "" && n.Version != "0.14.1" {
				pf.miss("node %s answers %s, want 0.14.1", n.Name, n.Version)
			}
		}
		pf.schema(steps.Schema014)
		if err := pf.noAPIs(ctx, g); err != nil {
			return steps.Check{}, err
		}
		pf.plugins(g, j)
		pf.pgDump(ctx, c, gateway)
	}
	pf.check.OK = len(pf.check.Missing) == 0
	// Ask a person only when a confirmation is all that is missing.
	if pf.check.Pause != nil {
		for _, m := range pf.check.Missing {
			if !strings.Contains(m, "needs an approver's confirmation") {
				pf.check.Pause = nil
				break
			}
		}
	}
	return pf.check, nil
}

type preflight struct {
	inv   steps.Inventory
	check steps.Check
}

func (p *preflight) miss(format string, args ...any) {
	p.check.Missing = append(p.check.Missing, fmt.Sprintf(format, args...))
}

func (p *preflight) fact(name, format string, args ...any) {
	p.check.Facts = append(p.check.Facts, steps.Fact{Name: name, Value: fmt.Sprintf(format, args...)})
}

// oldNodes checks the generation(s) of series that serve traffic now: every
// node up, on the right version, reaching the database.
func (p *preflight) oldNodes(g *gateway, series, want string) {
	count := 0
	for _, n := range p.inv.Nodes {
		v, err := parseVersion(string(n.Generation))
		if err != nil || v.series() != series {
			continue
		}
		count++
		switch {
		case !n.Reachable:
			p.miss("node %s (%s) is unreachable: %s", n.Name, n.Generation, n.Error)
		case n.Version == "":
			p.miss("node %s: %s", n.Name, n.Error)
		case !strings.HasPrefix(n.Version, series+"."):
			p.miss("node %s answers %s, want %s (mixed versions)", n.Name, n.Version, want)
		case !n.DatabaseOK:
			p.miss("node %s cannot reach the database", n.Name)
		}
	}
	if count == 0 {
		p.miss("no %s nodes configured for gateway %s", want, g.name)
	}
	p.fact("nodes "+want, "%d", count)
}

func (p *preflight) schema(want steps.SchemaState) {
	p.fact("schema", "%s", p.inv.Schema)
	if p.inv.Schema == want {
		return
	}
	msg := fmt.Sprintf("schema is %s, want %s", p.inv.Schema, want)
	if r, ok := schemaRank[p.inv.Schema]; ok && r > schemaRank[want] {
		msg += " (the schema is ahead of the nodes)"
	} else if ok {
		msg += " (the schema is behind the nodes)"
	}
	p.check.Missing = append(p.check.Missing, msg)
	for _, pr := range p.inv.Problems {
		if strings.HasPrefix(pr, "datastore") {
			p.check.Missing = append(p.check.Missing, pr)
		}
	}
}

// newNodes checks hop 1's new nodes: configured, their hosts resolvable, and
// any that already answers runs the target version. They may not answer yet:
// 0.14.1 refuses to start on a 0.13 schema (§4.1).
func (p *preflight) newNodes(ctx context.Context, g *gateway, want string) {
	count := 0
	for _, n := range p.inv.Nodes {
		if string(n.Generation) != want {
			continue
		}
		count++
		if n.Reachable {
			if n.Version != "" && n.Version != want {
				p.miss("new node %s answers %s, want %s", n.Name, n.Version, want)
			}
			continue
		}
		for _, u := range []string{n.AdminURL, n.ProxyURL} {
			if u == "" {
				p.miss("new node %s has no proxy URL configured", n.Name)
				continue
			}
			if err := resolvable(ctx, u); err != nil {
				p.miss("new node %s: %v", n.Name, err)
			}
		}
	}
	if count == 0 {
		p.miss("no %s nodes configured for gateway %s (generation %s)", want, g.name, want)
	}
	p.fact("new nodes "+want, "%d", count)
}

func resolvable(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil
	}
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return fmt.Errorf("host %s does not resolve: %w", host, err)
	}
	return nil
}

// pgDump checks, before the hop starts, what the hop's snapshot step needs
// from pg_dump: that it is there and that its major version is at least
// the datastore server's (older ones refuse to dump a newer server).
func (p *preflight) pgDump(ctx context.Context, c *Client, gateway string) {
	pd, err := c.CheckPGDump(ctx, gateway)
	if err != nil {
		p.miss("%v", err)
		return
	}
	p.fact("pg_dump", "%s (%s) for PostgreSQL %s", pd.Version, pd.Path, pd.Server)
}

// noAPIs counts /apis through every reachable 0.14 node's Admin API and by
// SQL: 1.0 `up` refuses while any exists (§4.2).
func (p *preflight) noAPIs(ctx context.Context, g *gateway) error {
	p.fact("apis (SQL)", "%d", p.inv.Counts.APIs)
	if p.inv.Counts.APIs > 0 {
		p.miss("%d APIs in the datastore (SQL): convert them to Services and Routes first (steps hop2.apis-plan, hop2.apis-convert, then hop2.apis-delete), "+
			"1.0.3 `migrations up` refuses while /apis has entities", p.inv.Counts.APIs)
	}
	asked := false
	for i, n := range p.inv.Nodes {
		if !n.Reachable || !strings.HasPrefix(n.Version, "0.") {
			continue
		}
		var page oldPage[map[string]any]
		if err := g.nodes[i].admin.do(ctx, "GET", "/apis?size=1", nil, &page); err != nil {
			p.miss("node %s: counting /apis: %v", n.Name, err)
			continue
		}
		if !asked {
			p.fact("apis (Admin API)", "%d", page.Total)
			asked = true
		}
		if page.Total > 0 && p.inv.Counts.APIs == 0 {
			p.miss("node %s lists %d APIs that SQL does not see: is it on another database?", n.Name, page.Total)
		}
	}
	if !asked {
		p.miss("no 0.x node answered GET /apis")
	}
	return nil
}

// plugins checks that every plugin in use will run on 1.0.3: bundled, or
// loaded by every 1.0.3 node and confirmed compatible by an approver.
func (p *preflight) plugins(g *gateway, j steps.Journal) {
	inUse := map[string]string{}
	for name, n := range p.inv.Counts.Plugins {
		inUse[name] = strconv.Itoa(n) + " rows"
	}
	for _, n := range p.inv.Nodes {
		for _, name := range n.EnabledInDB {
			if _, ok := inUse[name]; !ok {
				inUse[name] = "enabled_in_cluster"
			}
		}
	}
	var names []string
	for name := range inUse {
		names = append(names, name)
	}
	sort.Strings(names)
	p.fact("plugins in use", "%s", strings.Join(names, ", "))

	var newNodes []steps.Node
	var declared [][]string
	for i, n := range p.inv.Nodes {
		if v, err := parseVersion(string(n.Generation)); err == nil && v.is1x() {
			newNodes = append(newNodes, n)
			declared = append(declared, g.nodes[i].opts.Plugins)
		}
	}
	for _, name := range names {
		if slices.Contains(bundled103, name) {
			continue
		}
		why := knownIncompatible[name]
		if why == "" {
			why = "not bundled with 1.0.3"
		}
		if len(newNodes) == 0 {
			p.miss("plugin %s (%s) is not bundled with 1.0.3 and no 1.0.3 nodes are configured to check that they load it", name, inUse[name])
			continue
		}
		for i, n := range newNodes {
			switch {
			case n.Reachable && n.Version != "":
				if !slices.Contains(n.Available, name) {
					p.miss("plugin %s is in use (%s) but 1.0.3 node %s does not load it: that node would refuse to start "+
						"(`%s plugin is in use but not enabled`)", name, inUse[name], n.Name, name)
				}
			case slices.Contains(declared[i], name):
				p.fact("plugin "+name+" on "+n.Name, "declared in config (node not running yet, cannot ask it)")
			default:
				p.miss("plugin %s is in use (%s) but 1.0.3 node %s neither answers nor declares it in its plugins list",
					name, inUse[name], n.Name)
			}
		}
		if confirmedIn(j, name) {
			p.fact("plugin "+name, "confirmed compatible by an approver")
			continue
		}
		msg := fmt.Sprintf("plugin %s needs an approver's confirmation that the build on the 1.0.3 nodes is 1.0-compatible: %s", name, why)
		p.check.Missing = append(p.check.Missing, msg)
		if p.check.Pause == nil {
			p.check.Pause = &steps.Pause{Kind: steps.PauseApproval, Key: ConfirmKeyPrefix + name, Message: msg,
				Choices: []steps.Choice{steps.ChoiceApprove, steps.ChoiceAbort}}
		}
	}
}

func confirmedIn(j steps.Journal, plugin string) bool {
	if j == nil {
		return false
	}
	v, ok := j.Get(ConfirmKeyPrefix + plugin)
	return ok && (v == string(steps.ChoiceApprove) || v == string(steps.ChoiceDone))
}
