package kong

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/kongbot/kongbot/steps"
)

// rootInfo is the part of GET / the bot reads (§1.1).
type rootInfo struct {
	Version string `json:"version"`
	Plugins struct {
		// available_on_server is a name → true map on every version.
		AvailableOnServer map[string]any `json:"available_on_server"`
		EnabledInCluster  []string       `json:"enabled_in_cluster"`
	} `json:"plugins"`
}

// enabledInCluster tolerates `{}` for an empty array, as 0.x cjson encodes
// empty Lua tables (§8.2 shows it for plugin configs).
func (r *rootInfo) UnmarshalJSON(b []byte) error {
	var raw struct {
		Version string `json:"version"`
		Plugins struct {
			AvailableOnServer map[string]any  `json:"available_on_server"`
			EnabledInCluster  json.RawMessage `json:"enabled_in_cluster"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	r.Version = raw.Version
	r.Plugins.AvailableOnServer = raw.Plugins.AvailableOnServer
	if s := strings.TrimSpace(string(raw.Plugins.EnabledInCluster)); s != "" && s != "{}" && s != "null" {
		if err := json.Unmarshal(raw.Plugins.EnabledInCluster, &r.Plugins.EnabledInCluster); err != nil {
			return fmt.Errorf("plugins.enabled_in_cluster: %w", err)
		}
	}
	return nil
}

// readNode asks one node GET / and GET /status. It never fails: what went
// wrong is in Node.Error.
func (g *gateway) readNode(ctx context.Context, n *node) steps.Node {
	out := steps.Node{Name: n.opts.Name, Generation: steps.Generation(n.gen), AdminURL: n.opts.AdminURL, ProxyURL: n.opts.ProxyURL}
	st, err := call(ctx, n.admin, n.admin.kc.Status)
	if err != nil {
		out.Error = "GET /status: " + shortErr(err)
		return out
	}
	out.Reachable = true
	out.DatabaseOK = st.Database.Reachable
	var root rootInfo
	if err := n.admin.do(ctx, "GET", "/", nil, &root); err != nil {
		// GET / answers 500 when the node cannot read its datastore
		// (stage8 "PostgreSQL stopped").
		out.Error = "GET /: " + shortErr(err)
		return out
	}
	out.Version = root.Version
	for name := range root.Plugins.AvailableOnServer {
		out.Available = append(out.Available, name)
	}
	sort.Strings(out.Available)
	out.EnabledInDB = append([]string(nil), root.Plugins.EnabledInCluster...)
	sort.Strings(out.EnabledInDB)
	return out
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Inspect reads every node of every generation and the datastore, and names
// what is wrong.
func (c *Client) Inspect(ctx context.Context, gateway string) (steps.Inventory, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Inventory{}, err
	}
	inv := steps.Inventory{Gateway: gateway, ReadAt: c.opts.Now()}
	inv.Nodes = g.readNodes(ctx)
	ds, dsErr := ReadDatastore(ctx, g.cfg.DatastoreDSN)
	if dsErr != nil {
		inv.Schema = steps.SchemaUnknown
		inv.Problems = append(inv.Problems, "datastore unreadable by the bot: "+redactSecrets(dsErr.Error(), g.cfg.DatastoreDSN))
	} else {
		inv.Schema = ds.Schema
		inv.Counts = ds.Counts
		if ds.Detail != "" && ds.Schema == steps.SchemaUnknown {
			inv.Problems = append(inv.Problems, "datastore schema unknown: "+ds.Detail)
		}
	}
	inv.Problems = append(inv.Problems, nodeProblems(inv.Nodes, inv.Schema, dsErr == nil)...)
	return inv, ctx.Err()
}

func (g *gateway) readNodes(ctx context.Context) []steps.Node {
	out := make([]steps.Node, len(g.nodes))
	_ = parallel(ctx, len(g.nodes), 8, func(ctx context.Context, i int) error {
		out[i] = g.readNode(ctx, g.nodes[i])
		return nil
	})
	return out
}

// schemaRank orders schema states along the upgrade; nodeFits says whether
// a node of a series runs on a schema (§4, §8.2).
var schemaRank = map[steps.SchemaState]int{
	steps.Schema013: 1, steps.Schema014: 2, steps.Schema10Pending: 3, steps.Schema10: 4, steps.Schema10Bootstrap: 4,
}

// fitting ranks per node series: the schema states the series runs on.
var fitting = map[string][2]int{
	"0.13": {1, 1},
	"0.14": {2, 3}, // 0.14 keeps running through the 1.0 pending window
	"1.0":  {3, 4},
}

// nodeProblems names mixed versions, unreachable nodes, nodes that cannot
// reach the database, and a schema ahead of or behind the running nodes.
func nodeProblems(nodes []steps.Node, schema steps.SchemaState, schemaKnown bool) []string {
	var probs []string
	byGen := map[steps.Generation]map[string][]string{}
	var genOrder []steps.Generation
	for _, n := range nodes {
		if !n.Reachable {
			probs = append(probs, fmt.Sprintf("node %s (%s) unreachable: %s", n.Name, n.Generation, n.Error))
			continue
		}
		if !n.DatabaseOK {
			probs = append(probs, fmt.Sprintf("node %s (%s) cannot reach the database (GET /status database.reachable=false)", n.Name, n.Generation))
		}
		if n.Version == "" {
			probs = append(probs, fmt.Sprintf("node %s (%s): %s", n.Name, n.Generation, n.Error))
			continue
		}
		if byGen[n.Generation] == nil {
			byGen[n.Generation] = map[string][]string{}
			genOrder = append(genOrder, n.Generation)
		}
		byGen[n.Generation][n.Version] = append(byGen[n.Generation][n.Version], n.Name)
		if n.Version != string(n.Generation) {
			probs = append(probs, fmt.Sprintf("node %s answers %s, its generation is %s", n.Name, n.Version, n.Generation))
		}
		if !schemaKnown || schema == steps.SchemaUnknown || schema == steps.SchemaEmpty {
			continue
		}
		v, err := parseVersion(n.Version)
		if err != nil {
			continue
		}
		fit, ok := fitting[v.series()]
		rank := schemaRank[schema]
		switch {
		case !ok:
		case rank > fit[1]:
			probs = append(probs, fmt.Sprintf("schema %s is ahead of node %s (%s)", schema, n.Name, n.Version))
		case rank < fit[0]:
			probs = append(probs, fmt.Sprintf("schema %s is behind node %s (%s)", schema, n.Name, n.Version))
		}
	}
	for _, gen := range genOrder {
		vs := byGen[gen]
		if len(vs) < 2 {
			continue
		}
		var parts []string
		for v, names := range vs {
			parts = append(parts, fmt.Sprintf("%s on %s", v, strings.Join(names, ", ")))
		}
		sort.Strings(parts)
		probs = append(probs, fmt.Sprintf("mixed versions in generation %s: %s", gen, strings.Join(parts, "; ")))
	}
	return probs
}
