package kong

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gokong "github.com/kong/go-kong/kong"

	"github.com/kongbot/kongbot/steps"
)

// journalBatch is how many journal keys the conversion writes per durable
// journal write.
const journalBatch = 512

// Journal keys of the conversion, per API name (names are unique, §1.7).
func jConv(api, what string) string { return "conv/" + api + "/" + what }

const (
	jcService = "service"
	jcRoute   = "route"
	jcPlugin  = "plugin/" // + the API plugin's id → the Route plugin's id
	// jcBefore marks that the API's conversion began (so a resume looks
	// up what a lost write may have left) and holds the probe and the
	// API's answer to it (beforeRecord, JSON).
	jcBefore  = "before"
	jcDone    = "done"    // converted and verified
	jcDeleted = "deleted" // the API was deleted
)

// pendingMethod makes a new Route match nothing while its plugins are being
// attached: a Route takes traffic as soon as it exists (conversion/99-
// precedence d), and without its auth plugins it would let requests through.
const pendingMethod = "KONGBOTPENDING"

// convWriter picks the node to convert through: the newest 0.x node that
// answers (/apis exist only on 0.x, §1.3).
func (g *gateway) convWriter(ctx context.Context) (live, error) {
	nodes, _ := g.liveNodes(ctx)
	var best live
	found := false
	for _, l := range nodes {
		if l.v.is1x() {
			continue
		}
		if !found || less(best.v, l.v) {
			best, found = l, true
		}
	}
	if !found {
		return live{}, fmt.Errorf("gateway %s: no 0.x node answers its Admin API (/apis exist only on 0.13/0.14)", g.name)
	}
	return best, nil
}

// loadPlan reads /apis, every plugin and every Service through w and plans.
// Services this run created (journal) do not count as taken.
func (g *gateway) loadPlan(ctx context.Context, w live, j steps.Journal) (*plan, error) {
	apis, err := listOld[API](ctx, w.n.admin, "/apis", nil)
	if err != nil {
		return nil, fmt.Errorf("listing /apis through %s: %w", w.s.Name, err)
	}
	plugins, err := listOld[plugin](ctx, w.n.admin, "/plugins", nil)
	if err != nil {
		return nil, fmt.Errorf("listing /plugins through %s: %w", w.s.Name, err)
	}
	services, err := listNew[struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}](ctx, w.n.admin, "/services")
	if err != nil {
		return nil, fmt.Errorf("listing /services through %s: %w", w.s.Name, err)
	}
	ours := map[string]bool{}
	if j != nil {
		for _, a := range apis {
			if id, ok := j.Get(jConv(a.Name, jcService)); ok && id != "" {
				ours[id] = true
			}
			if _, ok := j.Get(jConv(a.Name, jcBefore)); ok {
				ours["name:"+a.Name] = true
			}
		}
	}
	taken := map[string]bool{}
	for _, s := range services {
		if s.Name != "" && !ours[s.ID] && !ours["name:"+s.Name] {
			taken[s.Name] = true
		}
	}
	return makePlan(apis, plugins, taken), nil
}

// PlanConversion is the dry run: the same planning as Convert, nothing written.
func (c *Client) PlanConversion(ctx context.Context, gateway string) (steps.ConversionPlan, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.ConversionPlan{}, err
	}
	w, err := g.convWriter(ctx)
	if err != nil {
		return steps.ConversionPlan{}, err
	}
	p, err := g.loadPlan(ctx, w, nil)
	if err != nil {
		return steps.ConversionPlan{}, err
	}
	return p.public(), nil
}

func (p *plan) public() steps.ConversionPlan {
	out := steps.ConversionPlan{Problems: append([]string(nil), p.Problems...)}
	for _, it := range sortedItems(p.Items) {
		ci := steps.ConversionItem{API: it.API.Name, Warnings: append([]string(nil), it.Warnings...)}
		if it.Skip != "" {
			ci.Warnings = append(ci.Warnings, "not converted: "+it.Skip)
		} else {
			ci.Service = it.Service.describe()
			ci.Route = fmt.Sprintf("step %d: %s", it.Level+1, it.Route.describe())
		}
		for _, pl := range it.Plugins {
			ci.Plugins = append(ci.Plugins, pluginLabel(pl))
		}
		if it.Probe == nil && it.Skip == "" {
			ci.Warnings = append(ci.Warnings, "not verified by a probe: "+it.NoProbe)
		}
		out.Items = append(out.Items, ci)
	}
	return out
}

// sortedItems orders by level, then by the APIs' created_at (the order the
// plan keeps).
func sortedItems(items []*planItem) []*planItem {
	out := append([]*planItem(nil), items...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Level < out[j].Level })
	return out
}

// Convert creates a Service and a Route for every API, its plugins on the
// Route, level by level (narrowest first), several APIs at once, and
// verifies each Route through the proxy. Every created id goes to j first
// thing, so a re-run after a crash resumes without duplicates.
func (c *Client) Convert(ctx context.Context, gateway string, j steps.Journal, out steps.Sink) (steps.Check, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	start := time.Now()
	w, err := g.convWriter(ctx)
	if err != nil {
		return steps.Check{}, err
	}
	p, err := g.loadPlan(ctx, w, j)
	if err != nil {
		return steps.Check{}, err
	}
	levels := map[int][]*planItem{}
	maxLevel := 0
	skipped := 0
	for _, it := range p.Items {
		if it.Skip != "" {
			skipped++
			continue
		}
		levels[it.Level] = append(levels[it.Level], it)
		maxLevel = max(maxLevel, it.Level)
	}
	var chk steps.Check
	chk.Missing = append(chk.Missing, p.Problems...)
	converted, resumed := 0, 0
	for l := 0; l <= maxLevel; l++ {
		items := levels[l]
		ok, res, failures := g.convertLevel(ctx, w, j, items)
		converted += ok
		resumed += res
		for _, f := range failures {
			chk.Missing = append(chk.Missing, f)
			if out != nil {
				out.Line("stderr", f)
			}
		}
		if ctx.Err() != nil {
			return chk, fmt.Errorf("conversion interrupted at step %d: %w", l+1, ctx.Err())
		}
		if len(failures) > 0 {
			// A later level may take traffic this level's failed APIs
			// still win: stop here.
			chk.Missing = append(chk.Missing, fmt.Sprintf("stopped after step %d of %d: later steps depend on it", l+1, maxLevel+1))
			break
		}
		if out != nil {
			out.Line("stdout", fmt.Sprintf("step %d of %d: %d APIs converted and verified", l+1, maxLevel+1, len(items)))
		}
	}
	chk.Facts = append(chk.Facts,
		steps.Fact{Name: "APIs", Value: strconv.Itoa(len(p.Items))},
		steps.Fact{Name: "converted and verified", Value: strconv.Itoa(converted)},
		steps.Fact{Name: "already done before this run", Value: strconv.Itoa(resumed)},
		steps.Fact{Name: "not convertible", Value: strconv.Itoa(skipped)},
		steps.Fact{Name: "through", Value: w.s.Name + " (" + w.s.Version + ")"},
		steps.Fact{Name: "took", Value: time.Since(start).Round(time.Millisecond).String()},
	)
	chk.OK = len(chk.Missing) == 0
	return chk, nil
}

// convertLevel converts one level in three phases, each over all its APIs
// at once with bounded concurrency: probe the APIs, write (Service, Route
// matching nothing, plugins, then the Route's real methods), probe the
// Routes. Batching the probes matters on a large gateway: a node rebuilds
// its whole router on the first request after any route change (§8.1), so
// probing between writes would rebuild it once per API.
func (g *gateway) convertLevel(ctx context.Context, w live, j steps.Journal, items []*planItem) (converted, resumed int, failures []string) {
	var mu sync.Mutex
	failed := map[string]bool{}
	fail := func(it *planItem, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed[it.API.Name] = true
		failures = append(failures, fmt.Sprintf("API %s: %v", it.API.Name, err))
	}
	var todo []*planItem
	resuming := map[string]bool{}
	for _, it := range items {
		if v, _ := j.Get(jConv(it.API.Name, jcDone)); v != "" {
			resumed++
			converted++
			continue
		}
		_, resuming[it.API.Name] = j.Get(jConv(it.API.Name, jcBefore))
		todo = append(todo, it)
	}
	conc := g.cfg.Conversion.Concurrency
	phase := func(f func(ctx context.Context, it *planItem) error) {
		defer func(t time.Time) { g.log.Debug("conversion phase", "apis", len(todo), "took", time.Since(t)) }(time.Now())
		_ = parallel(ctx, len(todo), conc, func(ctx context.Context, i int) error {
			it := todo[i]
			mu.Lock()
			skip := failed[it.API.Name]
			mu.Unlock()
			if skip {
				return nil
			}
			if err := f(ctx, it); err != nil {
				fail(it, err)
			}
			return nil
		})
	}
	// IDs and progress go to the journal in batches (one durable write per
	// journalBatch keys); each phase's records are flushed before the next
	// phase starts, so the intent records are durable before any write.
	bj := newBatchJournal(j, journalBatch)
	flush := func() {
		if err := bj.Flush(); err != nil {
			for _, it := range todo {
				mu.Lock()
				skip := failed[it.API.Name]
				mu.Unlock()
				if !skip {
					fail(it, err)
				}
			}
		}
	}
	noProbes := g.cfg.Conversion.SkipProbes || w.n.opts.ProxyURL == ""
	phase(func(ctx context.Context, it *planItem) error {
		if resuming[it.API.Name] {
			// The Route may already answer instead of the API; the answer
			// recorded by the first attempt is kept.
			return nil
		}
		var rec beforeRecord
		if !noProbes && it.Probe != nil {
			a, err := g.probeAPI(ctx, w.n.opts.ProxyURL, *it.Probe)
			if err != nil {
				return fmt.Errorf("probing the API before conversion: %w", err)
			}
			rec = beforeRecord{Probe: it.Probe, Status: a.Status}
		}
		b, _ := json.Marshal(rec)
		return bj.Put(jConv(it.API.Name, jcBefore), string(b))
	})
	flush()
	phase(func(ctx context.Context, it *planItem) error {
		return g.writeOne(ctx, w.n.admin, bj, it, resuming[it.API.Name])
	})
	flush()
	phase(func(ctx context.Context, it *planItem) error {
		name := it.API.Name
		rec := readBefore(bj, name)
		if !noProbes && rec.Probe != nil && rec.Status != 0 {
			if err := g.expectStatus(ctx, w.n.opts.ProxyURL, *rec.Probe, rec.Status, 5*time.Second); err != nil {
				rid, _ := bj.Get(jConv(name, jcRoute))
				return fmt.Errorf("route %s: %w", rid, err)
			}
		}
		return bj.Put(jConv(name, jcDone), "1")
	})
	flush()
	for _, it := range todo {
		if !failed[it.API.Name] {
			converted++
		}
	}
	sort.Strings(failures)
	return converted, resumed, failures
}

// writeOne creates one API's Service, Route and plugins, each id going to
// the journal as soon as Kong answers; on a resume, entities a lost
// journal write left behind are found and adopted instead of duplicated.
func (g *gateway) writeOne(ctx context.Context, a *admin, j journalRW, it *planItem, resuming bool) error {
	name := it.API.Name
	sid, _ := j.Get(jConv(name, jcService))
	if sid == "" {
		id, err := g.createService(ctx, a, it.Service, resuming)
		if err != nil {
			return err
		}
		sid = id
		if err := j.Put(jConv(name, jcService), sid); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	// The Route matches nothing until its plugins are attached.
	pending := len(it.Plugins) > 0
	rid, _ := j.Get(jConv(name, jcRoute))
	if rid == "" {
		id, err := g.createRoute(ctx, a, sid, it.Route, pending, resuming)
		if err != nil {
			return err
		}
		rid = id
		if err := j.Put(jConv(name, jcRoute), rid); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	for _, pl := range it.Plugins {
		key := jConv(name, jcPlugin+pl.ID)
		if v, _ := j.Get(key); v != "" {
			continue
		}
		id, err := g.createRoutePlugin(ctx, a, rid, pl)
		if err != nil {
			return err
		}
		if err := j.Put(key, id); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	// Opening is idempotent, so it needs no journal entry of its own.
	if pending {
		body := map[string]any{"methods": nil}
		if len(it.Route.Methods) > 0 {
			body["methods"] = it.Route.Methods
		}
		if err := a.do(ctx, http.MethodPatch, "/routes/"+rid, body, nil); err != nil {
			return fmt.Errorf("opening route %s: %w", rid, err)
		}
	}
	return nil
}

// beforeRecord is what the API answered to its probe before conversion.
type beforeRecord struct {
	Probe  *Probe `json:"probe,omitempty"`
	Status int    `json:"status,omitempty"`
}

func readBefore(j journalRW, api string) beforeRecord {
	var rec beforeRecord
	if v, ok := j.Get(jConv(api, jcBefore)); ok {
		_ = json.Unmarshal([]byte(v), &rec)
	}
	return rec
}

// probeAPI asks the proxy what an existing API answers. "no route and no
// API found" for an API that was just listed means the node has not loaded
// it yet (it polls cluster_events every db_update_frequency, §8.1), so that
// answer is asked again for a while before it is believed.
func (g *gateway) probeAPI(ctx context.Context, proxyURL string, p Probe) (probeAnswer, error) {
	deadline := time.Now().Add(g.cfg.PropagationTimeout)
	for {
		a, err := g.probe(ctx, proxyURL, p)
		if err != nil || a.Status != http.StatusNotFound || !strings.Contains(a.Body, "no route and no API found") ||
			time.Now().After(deadline) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// expectStatus probes until the status is want or wait passes: the node
// rebuilds its router on the next request after a change (§8.1).
func (g *gateway) expectStatus(ctx context.Context, proxyURL string, p Probe, want int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		a, err := g.probe(ctx, proxyURL, p)
		if err == nil && a.Status == want {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("probe %s %s: %w", p.Method, p.Path, err)
			}
			return fmt.Errorf("%s %s (Host %q) answers %d, the API answered %d", p.Method, p.Path, p.Host, a.Status, want)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *gateway) createService(ctx context.Context, a *admin, s serviceSpec, resuming bool) (string, error) {
	if resuming {
		// Kong may have created it before the journal write was lost.
		got, err := call(ctx, a, func(ctx context.Context) (*gokong.Service, error) { return a.kc.Services.Get(ctx, &s.Name) })
		if err == nil && got.ID != nil {
			return *got.ID, nil
		}
		if err != nil && statusOf(err) != http.StatusNotFound {
			return "", fmt.Errorf("looking up service %s: %w", s.Name, err)
		}
	}
	svc := &gokong.Service{Name: gokong.String(s.Name), Protocol: gokong.String(s.Protocol), Host: gokong.String(s.Host),
		Port: gokong.Int(s.Port), Path: s.Path, Retries: gokong.Int(s.Retries),
		ConnectTimeout: gokong.Int(s.ConnectTimeout), WriteTimeout: gokong.Int(s.WriteTimeout), ReadTimeout: gokong.Int(s.ReadTimeout)}
	got, err := call(ctx, a, func(ctx context.Context) (*gokong.Service, error) { return a.kc.Services.Create(ctx, svc) })
	if err != nil {
		return "", fmt.Errorf("creating service %s: %w", s.Name, err)
	}
	return *got.ID, nil
}

func (g *gateway) createRoute(ctx context.Context, a *admin, sid string, r routeSpec, pending, resuming bool) (string, error) {
	if resuming {
		// Any Route on a Service this run created is this run's.
		routes, err := listNew[struct {
			ID string `json:"id"`
		}](ctx, a, "/services/"+sid+"/routes")
		if err != nil {
			return "", fmt.Errorf("looking up the routes of service %s: %w", sid, err)
		}
		if len(routes) > 0 {
			return routes[0].ID, nil
		}
	}
	rt := &gokong.Route{Protocols: gokong.StringSlice(r.Protocols...), StripPath: gokong.Bool(r.StripPath),
		PreserveHost: gokong.Bool(r.PreserveHost)}
	if len(r.Hosts) > 0 {
		rt.Hosts = gokong.StringSlice(r.Hosts...)
	}
	if len(r.Paths) > 0 {
		rt.Paths = gokong.StringSlice(r.Paths...)
	}
	if len(r.Methods) > 0 {
		rt.Methods = gokong.StringSlice(r.Methods...)
	}
	if pending {
		rt.Methods = gokong.StringSlice(pendingMethod)
	}
	if r.RegexPriority != 0 {
		rt.RegexPriority = gokong.Int(r.RegexPriority)
	}
	got, err := call(ctx, a, func(ctx context.Context) (*gokong.Route, error) {
		return a.kc.Routes.CreateInService(ctx, &sid, rt)
	})
	if err != nil {
		return "", fmt.Errorf("creating the route of service %s: %w", sid, err)
	}
	return *got.ID, nil
}

// createRoutePlugin re-creates an API plugin on the Route: name, config,
// enabled and consumer (§6.2). 0.x takes the flat route_id/consumer_id on
// the old-DAO POST /plugins; go-kong cannot send consumer_id there
// (GOKONG.md), so this is a plain request. On a conflict (a previous run
// created it but lost the journal write) the existing one is adopted.
func (g *gateway) createRoutePlugin(ctx context.Context, a *admin, rid string, pl plugin) (string, error) {
	body := map[string]any{"name": pl.Name, "route_id": rid}
	if len(pl.Config) > 0 && string(pl.Config) != "null" {
		body["config"] = pl.Config
	}
	if pl.Enabled != nil {
		body["enabled"] = *pl.Enabled
	}
	if pl.ConsumerID != "" {
		body["consumer_id"] = pl.ConsumerID
	}
	var got plugin
	err := a.do(ctx, http.MethodPost, "/plugins", body, &got)
	if err == nil {
		return got.ID, nil
	}
	if statusOf(err) != http.StatusConflict {
		return "", fmt.Errorf("creating plugin %s on route %s: %w", pl.Name, rid, err)
	}
	existing, lerr := listOld[plugin](ctx, a, "/plugins", map[string]string{"route_id": rid, "name": pl.Name})
	if lerr != nil {
		return "", errors.Join(fmt.Errorf("creating plugin %s on route %s: %w", pl.Name, rid, err), lerr)
	}
	for _, e := range existing {
		if e.RouteID == rid && e.ConsumerID == pl.ConsumerID && e.Name == pl.Name {
			return e.ID, nil
		}
	}
	return "", fmt.Errorf("creating plugin %s on route %s: %w (and no matching plugin found)", pl.Name, rid, err)
}

// VerifyConversion checks, for every API this run converted, that its
// Route still exists and that every running proxy answers its probe
// with the API's status.
func (c *Client) VerifyConversion(ctx context.Context, gateway string, j steps.Journal) (steps.Check, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	nodes, _ := g.liveNodes(ctx)
	var w *live
	for i := range nodes {
		if w == nil || less(w.v, nodes[i].v) {
			w = &nodes[i]
		}
	}
	if w == nil {
		return steps.Check{}, fmt.Errorf("gateway %s: no node answers its Admin API", gateway)
	}
	names := convertedAPIs(j)
	var chk steps.Check
	var mu sync.Mutex
	probed := 0
	_ = parallel(ctx, len(names), g.cfg.Conversion.Concurrency, func(ctx context.Context, i int) error {
		name := names[i]
		rid, _ := j.Get(jConv(name, jcRoute))
		var miss []string
		if err := w.n.admin.do(ctx, http.MethodGet, "/routes/"+rid, nil, nil); err != nil {
			miss = append(miss, fmt.Sprintf("API %s: route %s: %v", name, rid, err))
		}
		rec := readBefore(j, name)
		if rec.Probe != nil && rec.Status != 0 {
			p, want := *rec.Probe, rec.Status
			for _, l := range nodes {
				if l.n.opts.ProxyURL == "" {
					continue
				}
				if err := g.expectStatus(ctx, l.n.opts.ProxyURL, p, want, g.cfg.PropagationTimeout); err != nil {
					miss = append(miss, fmt.Sprintf("API %s via %s: %v", name, l.s.Name, err))
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		chk.Missing = append(chk.Missing, miss...)
		if rec.Probe != nil && rec.Status != 0 {
			probed++
		}
		return nil
	})
	if err := ctx.Err(); err != nil {
		return chk, err
	}
	sort.Strings(chk.Missing)
	chk.Facts = append(chk.Facts, steps.Fact{Name: "converted APIs", Value: strconv.Itoa(len(names))},
		steps.Fact{Name: "verified by probe", Value: strconv.Itoa(probed)})
	if len(names) == 0 {
		chk.Missing = append(chk.Missing, "no API was converted by this run")
	}
	chk.OK = len(chk.Missing) == 0
	return chk, nil
}

// convertedAPIs lists the APIs the journal marks done, sorted.
func convertedAPIs(j steps.Journal) []string {
	var names []string
	for _, k := range j.Keys("conv/") {
		rest := k[len("conv/"):]
		if len(rest) > len(jcDone)+1 && rest[len(rest)-len(jcDone)-1:] == "/"+jcDone {
			if v, _ := j.Get(k); v != "" {
				names = append(names, rest[:len(rest)-len(jcDone)-1])
			}
		}
	}
	sort.Strings(names)
	return names
}

// DeleteAPIs deletes every API whose conversion this run verified, and
// refuses the rest by name. Irreversible: the APIs' plugins go with them
// (ON DELETE CASCADE, §6.2).
func (c *Client) DeleteAPIs(ctx context.Context, gateway string, j steps.Journal, out steps.Sink) error {
	g, err := c.gateway(gateway)
	if err != nil {
		return err
	}
	w, err := g.convWriter(ctx)
	if err != nil {
		return err
	}
	apis, err := listOld[API](ctx, w.n.admin, "/apis", nil)
	if err != nil {
		return fmt.Errorf("listing /apis through %s: %w", w.s.Name, err)
	}
	var del, left []string
	for _, a := range apis {
		if v, _ := j.Get(jConv(a.Name, jcDone)); v != "" {
			del = append(del, a.Name)
		} else {
			left = append(left, a.Name)
		}
	}
	err = parallel(ctx, len(del), g.cfg.Conversion.Concurrency, func(ctx context.Context, i int) error {
		err := w.n.admin.do(ctx, http.MethodDelete, "/apis/"+del[i], nil, nil)
		if err != nil && statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("deleting API %s: %w", del[i], err)
		}
		return j.Put(jConv(del[i], jcDeleted), "1")
	})
	if out != nil {
		out.Line("stdout", fmt.Sprintf("deleted %d converted APIs through %s", len(del), w.s.Name))
	}
	if err != nil {
		return err
	}
	if len(left) > 0 {
		sort.Strings(left)
		return fmt.Errorf("%d APIs were not converted by this run and were kept: %v", len(left), left)
	}
	return nil
}
