package app

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

// Planner is the bot's bot.Planner: it reads a gateway with package kong
// and plans the path from the version it runs to the target.
type Planner struct {
	cfg    *config.Config
	kong   steps.Inspector
	labels map[string]steps.Labels
}

// NewPlanner makes a Planner over the configured gateways.
func NewPlanner(cfg *config.Config, k steps.Inspector) *Planner {
	p := &Planner{cfg: cfg, kong: k, labels: map[string]steps.Labels{}}
	for i := range cfg.Gateways {
		g := &cfg.Gateways[i]
		dsn, _ := g.DSN()
		p.labels[g.Name] = steps.Labels{Gateway: g.Name, Datastore: datastoreLabel(dsn)}
	}
	return p
}

// Gateways lists the configured gateways in file order.
func (p *Planner) Gateways() []string { return p.cfg.GatewayNames() }

// Labels names a gateway and its datastore (database@host, never a password).
func (p *Planner) Labels(gateway string) steps.Labels {
	if l, ok := p.labels[gateway]; ok {
		return l
	}
	return steps.Labels{Gateway: gateway, Datastore: "its datastore"}
}

// Inspect reads the gateway back.
func (p *Planner) Inspect(ctx context.Context, gateway string) (steps.Inventory, error) {
	return p.kong.Inspect(ctx, gateway)
}

// Plan inspects the gateway, takes the version its current nodes run (the
// lowest version any node answers with: the old cluster until it is
// decommissioned) and plans the path from it to target.
func (p *Planner) Plan(ctx context.Context, gateway, target string) (steps.Plan, steps.Inventory, error) {
	inv, err := p.kong.Inspect(ctx, gateway)
	if err != nil {
		return steps.Plan{}, inv, fmt.Errorf("reading gateway %s: %w", gateway, err)
	}
	from, err := DetectVersion(inv)
	if err != nil {
		return steps.Plan{}, inv, err
	}
	plan, err := steps.PlanPath(from, target)
	return plan, inv, err
}

// DetectVersion is the lowest Kong version any reachable node answers with.
func DetectVersion(inv steps.Inventory) (string, error) {
	from := ""
	var down []string
	for _, n := range inv.Nodes {
		if !n.Reachable || n.Version == "" {
			down = append(down, n.Name)
			continue
		}
		if from == "" || versionLess(n.Version, from) {
			from = n.Version
		}
	}
	if from == "" {
		return "", fmt.Errorf("no node of gateway %s answers (%s), so its version is unknown", inv.Gateway, strings.Join(down, ", "))
	}
	return from, nil
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errx := strconv.Atoi(pa[i])
		y, erry := strconv.Atoi(pb[i])
		if errx != nil || erry != nil {
			return a < b
		}
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// datastoreLabel names a database as dbname@host[:port] for messages.
func datastoreLabel(dsn string) string {
	if dsn == "" {
		return "its datastore"
	}
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "its datastore"
		}
		db := strings.TrimPrefix(u.Path, "/")
		if db == "" {
			db = "postgres"
		}
		return db + "@" + u.Host
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = strings.Trim(v, "'")
		}
	}
	host := kv["host"]
	if kv["port"] != "" {
		host += ":" + kv["port"]
	}
	db := kv["dbname"]
	if db == "" {
		db = "postgres"
	}
	return db + "@" + host
}
