package kong

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	gokong "github.com/kong/go-kong/kong"

	"github.com/kongbot/kongbot/steps"
)

// Journal keys of the maintenance switch.
const (
	jTermID      = "termination/plugin-id"
	jTermIntent  = "termination/intent"
	jTermRemoved = "termination/removed-id"
)

// plugin is a plugin as any version returns it: 0.x old-DAO flat scope
// keys, 1.x nested references (§1.7). go-kong's struct drops the flat keys
// (GOKONG.md note 3), so this one reads both.
type plugin struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Config     json.RawMessage `json:"config"`
	Enabled    *bool           `json:"enabled"`
	APIID      string          `json:"api_id,omitempty"`
	RouteID    string          `json:"route_id,omitempty"`
	ServiceID  string          `json:"service_id,omitempty"`
	ConsumerID string          `json:"consumer_id,omitempty"`
	Route      *idRef          `json:"route,omitempty"`
	Service    *idRef          `json:"service,omitempty"`
	Consumer   *idRef          `json:"consumer,omitempty"`
	CreatedAt  float64         `json:"created_at"`
}

type idRef struct {
	ID string `json:"id"`
}

func (p plugin) global() bool {
	return p.APIID == "" && p.RouteID == "" && p.ServiceID == "" && p.ConsumerID == "" &&
		(p.Route == nil || p.Route.ID == "") && (p.Service == nil || p.Service.ID == "") && (p.Consumer == nil || p.Consumer.ID == "")
}

// live is a reachable node with its parsed version.
type live struct {
	n *node
	s steps.Node
	v version
}

// liveNodes reads every node and returns those that answer with a version.
func (g *gateway) liveNodes(ctx context.Context) ([]live, []steps.Node) {
	all := g.readNodes(ctx)
	var out []live
	for i, s := range all {
		if !s.Reachable || s.Version == "" {
			continue
		}
		v, err := parseVersion(s.Version)
		if err != nil {
			continue
		}
		out = append(out, live{n: g.nodes[i], s: s, v: v})
	}
	return out, all
}

// writer picks the node to write the termination through: the oldest
// version that runs. In hop 2's window that is a 0.14.1 node, because a
// plugin written through 1.0.3 carries JSON nulls that make 0.14.1 answer
// 500 (§8.2, stage4 0.14.1/proxy/05).
func writer(nodes []live) (live, bool) {
	var best live
	found := false
	for _, l := range nodes {
		if !found || less(l.v, best.v) {
			best, found = l, true
		}
	}
	return best, found
}

// EnableTermination creates the global request-termination through the
// right node, or finds the one it made (journal), and makes every version's
// nodes run it.
func (c *Client) EnableTermination(ctx context.Context, gateway string, j steps.Journal) (string, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return "", err
	}
	nodes, _ := g.liveNodes(ctx)
	w, ok := writer(nodes)
	if !ok {
		return "", fmt.Errorf("gateway %s: no node answers its Admin API", gateway)
	}
	id, _ := j.Get(jTermID)
	if id != "" {
		p, err := getPlugin(ctx, w.n.admin, id)
		switch {
		case err == nil && p.Name == "request-termination":
			g.log.Info("request-termination already enabled", "plugin", id)
			return id, g.nudge1x(ctx, nodes, w)
		case statusOf(err) == http.StatusNotFound:
			g.log.Warn("request-termination from the journal is gone; creating it again", "plugin", id)
		case err != nil:
			return "", fmt.Errorf("reading request-termination %s: %w", id, err)
		default:
			return "", fmt.Errorf("journal's termination plugin %s is a %s plugin now; not touching it", id, p.Name)
		}
	}
	// An intent left by an attempt cut off before its journal write: a
	// global termination found then may be the one that attempt made.
	intent, _ := j.Get(jTermIntent)
	retried := intent != ""
	if err := j.Put(jTermIntent, w.s.Name); err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	cfg := g.cfg.Termination
	created, err := call(ctx, w.n.admin, func(ctx context.Context) (*gokong.Plugin, error) {
		return w.n.admin.kc.Plugins.Create(ctx, &gokong.Plugin{
			Name:   gokong.String("request-termination"),
			Config: gokong.Configuration{"status_code": cfg.Status, "message": cfg.Message},
		})
	})
	switch {
	case err == nil:
		id = *created.ID
	case statusOf(err) == http.StatusConflict:
		// A global one exists. Adopt it only if a previous attempt of this
		// run was cut off between Kong's answer and the journal write.
		p, ferr := g.findGlobalTermination(ctx, w)
		if ferr != nil {
			return "", fmt.Errorf("creating request-termination through %s: %w (and finding the existing one: %w)", w.s.Name, err, ferr)
		}
		if !retried || !sameTermination(p, cfg) {
			return "", fmt.Errorf("gateway %s already has a global request-termination (id %s) that this run did not create; remove it or take it over by hand", gateway, p.ID)
		}
		id = p.ID
	default:
		return "", fmt.Errorf("creating request-termination through %s: %w", w.s.Name, err)
	}
	if err := j.Put(jTermID, id); err != nil {
		return id, fmt.Errorf("journal: %w", err)
	}
	g.log.Info("request-termination enabled", "plugin", id, "through", w.s.Name, "version", w.s.Version)
	return id, g.nudge1x(ctx, nodes, w)
}

// nudge1x makes 1.x nodes run a plugin written through a 0.x node: they do
// not run a plugin name new to them until their plugins_map is invalidated
// by a plugin write through a 1.x Admin API (§8.2, stage4 1.0.3/proxy/09-11).
// The write is a disabled global plugin of an unused bundled name, created
// and deleted at once, so no node ever runs it. Other 1.x nodes learn of it
// through cluster_events within db_update_frequency.
func (g *gateway) nudge1x(ctx context.Context, nodes []live, w live) error {
	if w.v.is1x() {
		return nil
	}
	var n1 *live
	for i := range nodes {
		if nodes[i].v.is1x() {
			n1 = &nodes[i]
			break
		}
	}
	if n1 == nil {
		return nil
	}
	used := map[string]bool{}
	for _, name := range n1.s.EnabledInDB {
		used[name] = true
	}
	var lastErr error
	for _, name := range []string{"correlation-id", "request-size-limiting", "bot-detection", "udp-log", "syslog"} {
		if used[name] || !slices.Contains(n1.s.Available, name) {
			continue
		}
		p, err := call(ctx, n1.n.admin, func(ctx context.Context) (*gokong.Plugin, error) {
			return n1.n.admin.kc.Plugins.Create(ctx, &gokong.Plugin{Name: gokong.String(name), Enabled: gokong.Bool(false)})
		})
		if err != nil {
			lastErr = err
			continue
		}
		if err := n1.n.admin.do(ctx, http.MethodDelete, "/plugins/"+*p.ID, nil, nil); err != nil {
			return fmt.Errorf("deleting the no-op %s plugin %s through %s: %w", name, *p.ID, n1.s.Name, err)
		}
		g.log.Info("1.x nodes nudged to reload their plugin list", "through", n1.s.Name, "plugin", name)
		return nil
	}
	return fmt.Errorf("making 1.x nodes see the termination: no plugin write through %s succeeded: %w", n1.s.Name, lastErr)
}

func sameTermination(p plugin, cfg Termination) bool {
	var c struct {
		Status  float64 `json:"status_code"`
		Message string  `json:"message"`
	}
	_ = json.Unmarshal(p.Config, &c)
	return int(c.Status) == cfg.Status && c.Message == cfg.Message
}

func getPlugin(ctx context.Context, a *admin, id string) (plugin, error) {
	var p plugin
	err := a.do(ctx, http.MethodGet, "/plugins/"+id, nil, &p)
	return p, err
}

// findGlobalTermination lists request-termination plugins: 0.x filters by
// name on the old-DAO endpoint; 1.x ignores filters (GOKONG.md note 7), so
// every plugin is read.
func (g *gateway) findGlobalTermination(ctx context.Context, w live) (plugin, error) {
	var all []plugin
	var err error
	if w.v.is1x() {
		all, err = listNew[plugin](ctx, w.n.admin, "/plugins")
	} else {
		all, err = listOld[plugin](ctx, w.n.admin, "/plugins", map[string]string{"name": "request-termination"})
	}
	if err != nil {
		return plugin{}, err
	}
	for _, p := range all {
		if p.Name == "request-termination" && p.global() {
			return p, nil
		}
	}
	return plugin{}, errors.New("no global request-termination found")
}

// newPage is a new-DAO list page: next is a relative path or null (§1.4).
type newPage[T any] struct {
	Data []T    `json:"data"`
	Next string `json:"next"`
}

// listNew pages a new-DAO collection. `next` does not repeat size (§1.4),
// and 0.14.1's nested collections fail on size (GOKONG.md note 4), so no
// size is sent on nested paths.
func listNew[T any](ctx context.Context, a *admin, path string) ([]T, error) {
	var all []T
	next := path
	if strings.Count(strings.Trim(path, "/"), "/") == 0 {
		next += "?size=1000"
	}
	for i := 0; next != ""; i++ {
		var p newPage[T]
		if err := a.do(ctx, http.MethodGet, next, nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Data...)
		if p.Next == "" || len(p.Data) == 0 {
			break
		}
		next = p.Next
		if strings.Count(strings.Trim(path, "/"), "/") == 0 && !strings.Contains(next, "size=") {
			next += "&size=1000"
		}
		if i > 100000 {
			return nil, fmt.Errorf("GET %s: more than 100000 pages", path)
		}
	}
	return all, nil
}

// DisableTermination deletes the request-termination this run created, and
// nothing else.
func (c *Client) DisableTermination(ctx context.Context, gateway string, j steps.Journal) error {
	g, err := c.gateway(gateway)
	if err != nil {
		return err
	}
	id, _ := j.Get(jTermID)
	if id == "" {
		return nil
	}
	nodes, _ := g.liveNodes(ctx)
	w, ok := writer(nodes)
	if !ok {
		return fmt.Errorf("gateway %s: no node answers its Admin API", gateway)
	}
	p, err := getPlugin(ctx, w.n.admin, id)
	switch {
	case statusOf(err) == http.StatusNotFound:
		g.log.Warn("request-termination already gone", "plugin", id)
	case err != nil:
		return fmt.Errorf("reading request-termination %s through %s: %w", id, w.s.Name, err)
	case p.Name != "request-termination" || !p.global():
		return fmt.Errorf("plugin %s is not the global request-termination this run created (it is %s); not removing it", id, p.Name)
	default:
		err := w.n.admin.do(ctx, http.MethodDelete, "/plugins/"+id, nil, nil)
		if err != nil && statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("deleting request-termination %s through %s: %w", id, w.s.Name, err)
		}
		g.log.Info("request-termination removed", "plugin", id, "through", w.s.Name)
	}
	if err := j.Put(jTermRemoved, id); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// Both cleared: a later emergency stop creates its own plugin and
	// adopts no other.
	if err := j.PutMany(map[string]string{jTermID: "", jTermIntent: ""}); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// VerifyTermination probes every running node's proxy, of every version,
// until all agree with want or the propagation timeout passes.
func (c *Client) VerifyTermination(ctx context.Context, gateway string, want bool) (steps.Check, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	probes := g.cfg.Termination.Probes
	if len(probes) == 0 {
		return steps.Check{}, fmt.Errorf("gateway %s: no termination probes configured (they must avoid auth plugins or carry credentials)", gateway)
	}
	deadline := time.Now().Add(g.cfg.PropagationTimeout)
	for {
		chk := g.verifyTerminationOnce(ctx, want)
		if chk.OK || time.Now().After(deadline) {
			return chk, nil
		}
		select {
		case <-ctx.Done():
			return chk, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (g *gateway) verifyTerminationOnce(ctx context.Context, want bool) steps.Check {
	var chk steps.Check
	nodes, all := g.liveNodes(ctx)
	for _, s := range all {
		if !s.Reachable {
			chk.Facts = append(chk.Facts, steps.Fact{Name: s.Name, Value: "not running, not probed"})
		}
	}
	cfg := g.cfg.Termination
	for _, l := range nodes {
		if l.n.opts.ProxyURL == "" {
			continue
		}
		for _, p := range cfg.Probes {
			a, err := g.probe(ctx, l.n.opts.ProxyURL, p)
			label := fmt.Sprintf("%s %s via %s (%s)", orGET(p.Method), p.Path, l.s.Name, l.s.Version)
			if err != nil {
				chk.Missing = append(chk.Missing, label+": "+err.Error())
				continue
			}
			chk.Facts = append(chk.Facts, steps.Fact{Name: label, Value: fmt.Sprint(a.Status)})
			terminated := a.Status == cfg.Status && bodyMessage(a.Body) == cfg.Message
			switch {
			case want && !terminated && a.Status == 500 && !l.v.is1x():
				chk.Missing = append(chk.Missing, label+": answers 500, not "+fmt.Sprint(cfg.Status)+
					": a termination written through a 1.x node cannot run on 0.x nodes (§8.2)")
			case want && !terminated:
				chk.Missing = append(chk.Missing, fmt.Sprintf("%s: answers %d, want %d %q (%s)", label, a.Status, cfg.Status, cfg.Message, a.Body))
			case !want && terminated:
				chk.Missing = append(chk.Missing, fmt.Sprintf("%s: still answers %d %q", label, a.Status, cfg.Message))
			}
		}
	}
	if len(nodes) == 0 {
		chk.Missing = append(chk.Missing, "no node answers its Admin API")
	}
	chk.OK = len(chk.Missing) == 0
	return chk
}

func orGET(m string) string {
	if m == "" {
		return http.MethodGet
	}
	return m
}

// bodyMessage reads Kong's {"message": …} body; 0.x escapes "/" as "\/"
// (§1.1), so the text is compared after decoding, not as raw bytes.
func bodyMessage(body string) string {
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return ""
	}
	return m.Message
}
