package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/kong"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
	"github.com/kongbot/kongbot/traffic"
)

// kongOptions maps the config's gateways to package kong's options. Secrets
// are read from the environment here, once; a missing one is an error that
// names the variable, never its value.
func kongOptions(cfg *config.Config, hc *http.Client) (kong.Options, error) {
	opts := kong.Options{Gateways: map[string]kong.Gateway{}, HTTPClient: hc}
	var errs []error
	for i := range cfg.Gateways {
		g := &cfg.Gateways[i]
		dsn, err := g.DSN()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		token, err := g.AdminToken()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kg := kong.Gateway{
			DatastoreDSN:     dsn,
			AdminToken:       token,
			AdminTokenHeader: g.AdminTokenHeader,
			Migrations:       map[string]kong.MigrationCommand{},
			Termination: kong.Termination{
				Status:  g.Termination.Status,
				Message: g.Termination.Message,
				Probes:  kongProbes(g.Termination.Probes),
			},
			Probes:      kongProbes(g.SmokeProbes),
			SnapshotDir: g.SnapshotDir,
			PGDump:      g.PGDump,
		}
		for _, v := range g.Versions() {
			gen := kong.GenerationNodes{Version: v}
			for _, n := range g.Generations[v].Nodes {
				gen.Nodes = append(gen.Nodes, kong.NodeOptions{Name: n.Name, AdminURL: n.AdminURL, ProxyURL: n.ProxyURL, Plugins: n.Plugins})
			}
			kg.Generations = append(kg.Generations, gen)
		}
		for target, m := range g.Migrations {
			kg.Migrations[target] = kong.MigrationCommand{Argv: m.Argv, Env: m.Env, Config: m.Config, Timeout: m.Timeout}
		}
		opts.Gateways[g.Name] = kg
	}
	return opts, errors.Join(errs...)
}

func kongProbes(ps []config.Probe) []kong.Probe {
	var out []kong.Probe
	for _, p := range ps {
		out = append(out, kong.Probe{Name: p.Name, Method: p.Method, Path: p.Path, Host: p.Host,
			Headers: p.Headers, Want: p.ExpectStatus, Generation: p.Generation})
	}
	return out
}

// hopGens names the old and the new generation of each hop a gateway's
// generations allow, as package steps names the hops.
func hopGens(g *config.Gateway) map[string][2]string {
	var v013, v0140, v0141, v10 string
	for _, v := range g.Versions() {
		switch {
		case strings.HasPrefix(v, "0.13."):
			v013 = v
		case v == "0.14.0":
			v0140 = v
		case v == "0.14.1":
			v0141 = v
		case strings.HasPrefix(v, "1.0.") && (v10 == "" || v == "1.0.3"):
			v10 = v
		}
	}
	out := map[string][2]string{}
	if v013 != "" && v0141 != "" {
		out["hop1"] = [2]string{v013, v0141}
	}
	if v0140 != "" && v0141 != "" {
		out["hop0"] = [2]string{v0140, v0141}
	}
	if v0141 != "" && v10 != "" {
		out["hop2"] = [2]string{v0141, v10}
	}
	return out
}

// hopOrder is the order hops run in; the last configured one is also the
// gateway's default backend.
var hopOrder = []string{"hop1", "hop0", "hop2"}

// trafficOptions maps the config's traffic sections to package traffic: one
// backend per hop (the old and new generation differ per hop), the plans
// (hop 1 fast inside the outage, hop 0 and hop 2 from the configured stages),
// the gates, and the smoke probes sent while a stage bakes (through the
// front, and per hop to the proxies of the generation it moves to).
func trafficOptions(cfg *config.Config, st *store.Store) (traffic.Options, error) {
	opts := traffic.Options{Gateways: map[string]*traffic.Gateway{}, HopOf: hopOfStore(st)}
	var errs []error
	for i := range cfg.Gateways {
		g := &cfg.Gateways[i]
		path := fmt.Sprintf("gateways[%d].traffic", i)
		tg, err := trafficGateway(g, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		opts.Gateways[g.Name] = tg
	}
	return opts, errors.Join(errs...)
}

func trafficGateway(g *config.Gateway, path string) (*traffic.Gateway, error) {
	t := g.Traffic
	hops := hopGens(g)
	if len(hops) == 0 {
		return nil, fmt.Errorf("%s: gateway %s has no pair of generations to move traffic between (versions %s)", path, g.Name, strings.Join(g.Versions(), ", "))
	}
	tg := &traffic.Gateway{
		HopBackends: map[string]traffic.Backend{},
		Plans:       map[string]traffic.Plan{},
		Gates: traffic.Gates{
			Max5xxRatio: t.Gates.Max5xxRatio,
			MinRequests: int64(t.Gates.MinRequests),
			MaxLatency:  t.Gates.MaxP95Latency,
		},
		Prober: frontProber,
	}
	var errs []error
	for _, hop := range hopOrder {
		gens, ok := hops[hop]
		if !ok {
			continue
		}
		b, err := backendFor(g, path, gens[0], gens[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s, %s -> %s): %w", path, hop, gens[0], gens[1], err))
			continue
		}
		tg.HopBackends[hop] = b
		tg.Backend = b
		if hop == "hop1" {
			bake := t.OutageBake
			if bake <= 0 {
				bake = config.DefaultOutageBake
			}
			p := traffic.FastPlan(bake)
			p.OutageStatus = g.Termination.Status
			tg.Plans[hop] = p
		} else {
			tg.Plans[hop] = gradualPlan(t.Stages)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var front *url.URL
	if f := t.Front; f != nil {
		u, err := url.Parse(f.URL)
		if err != nil {
			return nil, fmt.Errorf("%s.front.url: not a URL", path)
		}
		front = u
	}
	// Probes without a generation go through the front, whatever the hop;
	// a probe naming a generation goes to that generation's proxies during
	// the hop that moves traffic to it. Without a front, the probes without
	// a generation go to the new generation's proxies too.
	for _, p := range g.SmokeProbes {
		if p.Generation == "" && front != nil {
			tg.Probes = append(tg.Probes, trafficProbe(p, p.Name, front))
		}
	}
	for hop, gens := range hops {
		if _, ok := tg.HopBackends[hop]; !ok {
			continue
		}
		for _, p := range g.SmokeProbes {
			if p.Generation != gens[1] && (p.Generation != "" || front != nil) {
				continue
			}
			for _, n := range g.Generations[gens[1]].Nodes {
				base, err := url.Parse(n.ProxyURL)
				if n.ProxyURL == "" || err != nil {
					continue // config.Check names it; kong's smoke step skips it too
				}
				if tg.HopProbes == nil {
					tg.HopProbes = map[string][]traffic.Probe{}
				}
				tg.HopProbes[hop] = append(tg.HopProbes[hop], trafficProbe(p, cmp.Or(p.Name, p.Path)+" via "+n.Name, base))
			}
		}
	}
	return tg, nil
}

// trafficProbe aims a configured probe at base (a front or a node's proxy).
func trafficProbe(p config.Probe, name string, base *url.URL) traffic.Probe {
	u := *base
	u.Path, u.RawQuery = p.Path, ""
	if q := strings.IndexByte(p.Path, '?'); q >= 0 {
		u.Path, u.RawQuery = p.Path[:q], p.Path[q+1:]
	}
	h := http.Header{}
	for k, v := range p.Headers {
		h.Set(k, v)
	}
	if p.Host != "" {
		h.Set("Host", p.Host)
	}
	return traffic.Probe{Name: name, Method: p.Method, URL: u.String(), Header: h, WantStatus: p.ExpectStatus}
}

// gradualPlan turns configured stages into a traffic plan. A stage with no
// bake still samples once: traffic plans need a positive bake.
func gradualPlan(stages []config.Stage) traffic.Plan {
	var p traffic.Plan
	for _, s := range stages {
		bake := s.Bake
		if bake <= 0 {
			bake = time.Second
		}
		p.Stages = append(p.Stages, traffic.Stage{NewPct: s.Percent, Bake: bake, Approval: s.Approval})
	}
	return p
}

func shareProbe(f *config.Front, oldV, newV string) traffic.ShareProbe {
	if f == nil {
		return traffic.ShareProbe{}
	}
	h := http.Header{}
	for k, v := range f.Headers {
		h.Set(k, v)
	}
	if f.Host != "" {
		h.Set("Host", f.Host)
	}
	return traffic.ShareProbe{URL: f.URL, Header: h, OldVersion: oldV, NewVersion: newV, Requests: f.Requests,
		Prober: frontProber}
}

// frontProber sends the traffic package's probes (a "Host" entry in a
// probe's headers is sent as the request's Host, see traffic.Probe).
var frontProber = traffic.Prober{Timeout: 5 * time.Second}

func backendFor(g *config.Gateway, path, oldV, newV string) (traffic.Backend, error) {
	t := g.Traffic
	switch t.Backend {
	case "haproxy":
		h := t.HAProxy
		if h == nil {
			return nil, fmt.Errorf("%s.haproxy: missing", path)
		}
		return traffic.NewHAProxy(traffic.HAProxyOptions{Address: h.RuntimeAPI, Backend: h.Backend,
			Old: h.Servers[oldV], New: h.Servers[newV], Timeout: h.Timeout, UpWait: h.UpWait})
	case "exec":
		e := t.Exec
		if e == nil {
			return nil, fmt.Errorf("%s.exec: missing", path)
		}
		argv, err := expandArgv(e.Argv, config.ExecVars{Gateway: g.Name, OldGeneration: oldV, NewGeneration: newV})
		if err != nil {
			return nil, fmt.Errorf("%s.exec.argv: %w", path, err)
		}
		return traffic.NewExec(traffic.ExecOptions{Command: argv, Health: e.Health, Drain: e.Drain, Timeout: e.Timeout,
			Share: shareProbe(t.Front, oldV, newV)})
	case "manual":
		if t.Front == nil {
			return nil, fmt.Errorf("%s.front: missing: the manual backend verifies each move through the load balancer", path)
		}
		return traffic.NewManual(traffic.ManualOptions{OldName: "the " + oldV + " cluster", NewName: "the " + newV + " cluster",
			Where: t.Front.Where, Share: shareProbe(t.Front, oldV, newV)})
	}
	return nil, fmt.Errorf("%s.backend: %q is not haproxy, exec or manual", path, t.Backend)
}

func expandArgv(argv []string, vars config.ExecVars) ([]string, error) {
	out := make([]string, len(argv))
	for i, a := range argv {
		tpl, err := template.New("argv").Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		var b strings.Builder
		if err := tpl.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = b.String()
	}
	return out, nil
}

// hopOfStore answers traffic's "which hop is this gateway's active run in"
// from the store: the hop prefix of the run's current step ("hop2.cutover").
func hopOfStore(st *store.Store) func(gateway string) (string, bool) {
	return func(gateway string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recs, err := st.Runs(ctx, store.RunFilter{Gateway: gateway, ActiveOnly: true, Limit: 1})
		if err != nil || len(recs) == 0 {
			return "", false
		}
		var run steps.Run
		if err := json.Unmarshal(recs[0].Data, &run); err != nil || run.Current == "" {
			return "", false
		}
		hop, _, ok := strings.Cut(run.Current, ".")
		return hop, ok
	}
}
