package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The runbook, hop by hop. Step IDs are stable: runs in the store name their
// steps by them, so an ID is never reused for a different step.
//
//	hop1 0.13.x -> 0.14.1 (downtime)        hop2 0.14.1 -> 1.0.3 (no downtime)
//	  preflight-current   check               preflight-current   check
//	  preflight-new-nodes check               preflight-plugins   check
//	  preflight-plugins   check               custom-plugins      check, confirmed (high)
//	  provision-new-nodes manual (Done)       apis-plan           check (conversion dry run)
//	  snapshot            action              apis-convert        action (high)
//	  ┌ outage group, approved once (high) ┐  apis-delete         action (irreversible)
//	  │ termination-on    action           │  preflight-migrations check
//	  │                                    │  snapshot            action
//	  │ migrations-up     action           │  migrations-up       action (high)
//	  │ start-new-cluster manual (verified)│  provision-new-nodes manual (verified)
//	  │ traffic-switch    cutover          │  traffic-shift       cutover (high, gradual)
//	  │ termination-off   action           │  smoke               check
//	  └ smoke             check            ┘  decommission-old    manual (verified)
//	  decommission-old    manual (verified)   migrations-finish   action (irreversible)
//
// hop0 (0.14.0 -> 0.14.1, same schema): preflight-current, preflight-new-nodes,
// start-new-nodes (manual), traffic-switch (cutover), smoke, decommission-old.

// Bundled plugin names per version (kong-reference §5.1).
var (
	bundled013 = []string{"jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log",
		"file-log", "http-log", "key-auth", "hmac-auth", "basic-auth", "ip-restriction",
		"request-transformer", "response-transformer", "request-size-limiting", "rate-limiting",
		"response-ratelimiting", "syslog", "loggly", "datadog", "runscope", "ldap-auth", "statsd",
		"bot-detection", "aws-lambda", "request-termination"}
	bundled014 = append(slices.DeleteFunc(slices.Clone(bundled013), func(s string) bool { return s == "runscope" }),
		"azure-functions", "zipkin", "pre-function", "post-function", "prometheus")
	// 1.0.3 bundles the same 31 names as 0.14.1.
	bundled10 = bundled014
	// Deprecated in 0.13/0.14 (loaded only as custom plugins), gone in 1.0.
	deprecated = []string{"galileo"}
)

// Journal keys shared between steps.
const (
	jHop1Snapshot      = "hop1.snapshot"
	jHop2Snapshot      = "hop2.snapshot"
	jHop1CustomPlugins = "hop1.custom-plugins"
	jHop2CustomPlugins = "hop2.custom-plugins"
	jHop2APIs          = "hop2.apis"
)

const (
	gen0141 = Generation("0.14.1")
	gen103  = Generation("1.0.3")
)

// hop1 is 0.13.x -> 0.14.1. The outage group keeps the time between
// request-termination on and off free of approval waits.
func hop1(from string) Hop {
	old := Generation(from)
	const group = "hop1-outage"
	return Hop{Name: "hop1", From: from, To: "0.14.1", Steps: []Step{
		{
			ID: "hop1.preflight-current", Hop: "hop1", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: gateway runs 0.13.x",
			Runbook: "Before the downtime hop, every current node and the datastore schema are at 0.13.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("read every %s node of %s (GET /, GET /status) and the schema of datastore %s; want version %s, datastore reachable, schema 0.13", old, l.Gateway, l.Datastore, from)
			},
			Verify: withPreflighter("1", verifyCurrent(old, from, Schema013)),
		},
		{
			ID: "hop1.preflight-new-nodes", Hop: "hop1", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: 0.14.1 nodes configured",
			Runbook: "The new 0.14.1 nodes are known and point at the same datastore; none may serve yet.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("check that %s has 0.14.1 nodes configured and that any of them that answers already runs 0.14.1", l.Gateway)
			},
			Verify: verifyNewConfigured(gen0141, "0.14.1"),
		},
		{
			ID: "hop1.preflight-plugins", Hop: "hop1", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: plugins in use exist in 0.14.1",
			Runbook: "Every plugin in use must load on 0.14.1 (runscope is gone; custom plugins must be installed on the new nodes).",
			Describe: func(l Labels) string {
				return fmt.Sprintf("list the plugins in use in datastore %s and compare them with 0.14.1's bundled plugins", l.Datastore)
			},
			Do:     recordCustomPlugins(jHop1CustomPlugins, bundled014),
			Verify: verifyPlugins(bundled014, "0.14.1"),
		},
		{
			ID: "hop1.provision-new-nodes", Hop: "hop1", Kind: KindManual, Risk: RiskNormal, ConfirmDone: true,
			Title:   "Provision 0.14.1 nodes (do not start them)",
			Runbook: "New 0.14.1 nodes are provisioned against the same datastore, not started (they would refuse before migrations).",
			Describe: func(l Labels) string {
				return fmt.Sprintf("people provision the 0.14.1 nodes of %s pointing at datastore %s, with the same plugins (and custom plugins) as today, and do not start them; press Done, then the bot checks they are configured", l.Gateway, l.Datastore)
			},
			Verify: verifyNewConfigured(gen0141, "0.14.1"),
		},
		snapshotStep("hop1", jHop1Snapshot, "0.14.1"),
		{
			ID: "hop1.termination-on", Hop: "hop1", Kind: KindAction, Risk: RiskHigh, Gate: true, Group: group, Idempotent: true,
			Title:   "Stop traffic: request-termination on",
			Runbook: "Start of the outage: a global request-termination plugin answers 503 on every proxy.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("create the global request-termination plugin (status 503) through a %s node of %s, then probe every proxy for 503", old, l.Gateway)
			},
			Do: func(ctx context.Context, env *Env) error {
				if _, err := env.Kong.EnableTermination(ctx, env.Gateway, env.Journal); err != nil {
					return fmt.Errorf("enabling request-termination: %w", err)
				}
				return nil
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				return env.Kong.VerifyTermination(ctx, env.Gateway, true)
			},
		},
		migrationStep("hop1", "0.14.1", MigrateUp, RiskHigh, group, Schema014, false),
		{
			ID: "hop1.start-new-cluster", Hop: "hop1", Kind: KindManual, Risk: RiskNormal, Group: group,
			Title:   "Start the 0.14.1 cluster",
			Runbook: "People start the 0.14.1 nodes; the bot checks each: version, datastore reachable, plugins available.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("people start every 0.14.1 node of %s; the bot checks each answers 0.14.1, reaches datastore %s and has every plugin in use", l.Gateway, l.Datastore)
			},
			Verify: verifyGenerationServing(gen0141, "0.14.1"),
		},
		trafficStep("hop1", "hop1.traffic-switch", "Move traffic to 0.14.1", group,
			"Traffic moves from the 0.13 cluster to the 0.14.1 cluster at once (the old nodes now serve from cache).",
			"move all traffic of %s from the 0.13 nodes to the 0.14.1 nodes in one step, then read the weights back"),
		{
			ID: "hop1.termination-off", Hop: "hop1", Kind: KindAction, Risk: RiskNormal, Group: group, Idempotent: true,
			Title:   "Resume traffic: request-termination off",
			Runbook: "End of the outage: the bot's request-termination plugin is removed.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("delete the request-termination plugin the bot created on %s (and only that one), then probe every proxy for no 503", l.Gateway)
			},
			Do: func(ctx context.Context, env *Env) error {
				if err := env.Kong.DisableTermination(ctx, env.Gateway, env.Journal); err != nil {
					return fmt.Errorf("removing request-termination: %w", err)
				}
				return nil
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				return env.Kong.VerifyTermination(ctx, env.Gateway, false)
			},
		},
		smokeStep("hop1", gen0141, group),
		decommissionStep("hop1", old, "0.14.1"),
	}}
}

// hop0 is 0.14.0 -> 0.14.1: new nodes on the same schema, traffic moved.
func hop0(from string) Hop {
	old := Generation(from)
	return Hop{Name: "hop0", From: from, To: "0.14.1", Steps: []Step{
		{
			ID: "hop0.preflight-current", Hop: "hop0", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: gateway runs 0.14.0",
			Runbook: "0.14.0 and 0.14.1 share the schema: only the nodes change.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("read every %s node of %s and the schema of datastore %s; want version %s and schema 0.14", old, l.Gateway, l.Datastore, from)
			},
			Verify: verifyCurrent(old, from, Schema014),
		},
		{
			ID: "hop0.preflight-new-nodes", Hop: "hop0", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: 0.14.1 nodes configured",
			Runbook: "The new 0.14.1 nodes are known and point at the same datastore.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("check that %s has 0.14.1 nodes configured", l.Gateway)
			},
			Verify: verifyNewConfigured(gen0141, "0.14.1"),
		},
		{
			ID: "hop0.start-new-nodes", Hop: "hop0", Kind: KindManual, Risk: RiskNormal,
			Title:   "Start the 0.14.1 nodes",
			Runbook: "People start 0.14.1 nodes alongside 0.14.0; the bot verifies each.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("people start the 0.14.1 nodes of %s on datastore %s; the bot checks version, datastore and plugins on each", l.Gateway, l.Datastore)
			},
			Verify: verifyGenerationServing(gen0141, "0.14.1"),
		},
		trafficStep("hop0", "hop0.traffic-switch", "Move traffic to 0.14.1", "",
			"Traffic moves from the 0.14.0 nodes to the 0.14.1 nodes.",
			"move the traffic of %s from the 0.14.0 nodes to the 0.14.1 nodes with the configured stages and gates"),
		smokeStep("hop0", gen0141, ""),
		decommissionStep("hop0", old, "0.14.1"),
	}}
}

// hop2 is 0.14.1 -> 1.0.3, blue/green: `up`, new nodes, gradual traffic,
// old nodes gone, then the irreversible `finish`.
func hop2() Hop {
	old := gen0141
	return Hop{Name: "hop2", From: "0.14.1", To: "1.0.3", Steps: []Step{
		{
			ID: "hop2.preflight-current", Hop: "hop2", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: every node and the schema at 0.14.1",
			Runbook: "1.0's migrations start only from a complete 0.14 schema; every serving node must be 0.14.1.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("read every node of %s and the schema of datastore %s; want every serving node at 0.14.1 and schema 0.14", l.Gateway, l.Datastore)
			},
			Verify: verifyHop2Current(),
		},
		{
			ID: "hop2.preflight-plugins", Hop: "hop2", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: plugins in use exist in 1.0.3",
			Runbook: "Every plugin in use is bundled with 1.0.3 or confirmed compatible (custom plugins such as okta-auth).",
			Describe: func(l Labels) string {
				return fmt.Sprintf("list the plugins in use in datastore %s; bundled 1.0.3 plugins pass, deprecated ones fail, custom ones go to an approver to confirm", l.Datastore)
			},
			Do:     recordCustomPlugins(jHop2CustomPlugins, bundled10),
			Verify: verifyPlugins(bundled10, "1.0.3"),
		},
		{
			ID: "hop2.custom-plugins", Hop: "hop2", Kind: KindCheck, Risk: RiskHigh, Gate: true, Idempotent: true, VerifyComplete: true,
			Title:    "Confirm custom plugins work on 1.0.3",
			Runbook:  "Custom plugins are not checked by Kong: an approver confirms a 1.0.3-compatible build will be on the new nodes.",
			SkipWhen: skipWhenEmpty(jHop2CustomPlugins, "no custom plugins in use"),
			Describe: func(l Labels) string {
				return fmt.Sprintf("an approver confirms that each custom plugin in use on %s (e.g. okta-auth) has a 1.0.3-compatible build that will be installed on the 1.0.3 nodes; the bot checks them again when those nodes start", l.Gateway)
			},
			// It runs only once approved: the approval is the confirmation,
			// kept per plugin where the kong adapter's preflight reads it.
			Do: func(ctx context.Context, env *Env) error {
				list, _ := env.Journal.Get(jHop2CustomPlugins)
				for _, name := range splitList(list) {
					if err := env.Journal.Put(ConfirmPluginKeyPrefix+name, string(ChoiceApprove)); err != nil {
						return fmt.Errorf("recording confirmation of %s: %w", name, err)
					}
				}
				return nil
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				list, _ := env.Journal.Get(jHop2CustomPlugins)
				c := Check{OK: true, Facts: []Fact{{Name: "confirmed custom plugins", Value: list}}}
				for _, name := range splitList(list) {
					if v, _ := env.Journal.Get(ConfirmPluginKeyPrefix + name); v != string(ChoiceApprove) {
						c.OK = false
						c.Missing = append(c.Missing, "no confirmation recorded for plugin "+name)
					}
				}
				return c, nil
			},
		},
		{
			ID: "hop2.apis-plan", Hop: "hop2", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "API conversion plan (dry run)",
			Runbook: "1.0 refuses to migrate while /apis has rows; each API is planned as an equivalent Service + Route with its plugins.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("read the /apis of %s and show, without changing anything, the Service, Route and plugins each becomes", l.Gateway)
			},
			Do: func(ctx context.Context, env *Env) error {
				plan, err := env.Kong.PlanConversion(ctx, env.Gateway)
				if err != nil {
					return fmt.Errorf("planning API conversion: %w", err)
				}
				return env.Journal.Put(jHop2APIs, fmt.Sprint(len(plan.Items)))
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				plan, err := env.Kong.PlanConversion(ctx, env.Gateway)
				if err != nil {
					return Check{}, fmt.Errorf("planning API conversion: %w", err)
				}
				c := Check{OK: len(plan.Problems) == 0, Missing: plan.Problems}
				c.Facts = append(c.Facts, Fact{Name: "APIs to convert", Value: fmt.Sprint(len(plan.Items))})
				for _, it := range plan.Items {
					v := fmt.Sprintf("service %s, route %s", it.Service, it.Route)
					if len(it.Plugins) > 0 {
						v += ", plugins " + strings.Join(it.Plugins, ", ")
					}
					if len(it.Warnings) > 0 {
						v += " (warning: " + strings.Join(it.Warnings, "; ") + ")"
					}
					c.Facts = append(c.Facts, Fact{Name: "API " + it.API, Value: v})
				}
				return c, nil
			},
		},
		{
			ID: "hop2.apis-convert", Hop: "hop2", Kind: KindAction, Risk: RiskNormal, Gate: true, Idempotent: true, Skippable: true,
			Title: "Convert APIs to Services and Routes",
			// Normal risk: it only adds Services, Routes and plugins; the APIs
			// stay, so nothing is lost until the separate delete step.
			Runbook:  "Each API becomes a Service + Route, its plugins moved; the APIs stay until the next step.",
			SkipWhen: skipWhenZero(jHop2APIs, "no APIs to convert"),
			Describe: func(l Labels) string {
				return fmt.Sprintf("create on %s, through a 0.14.1 node, the Services, Routes and plugins shown in the conversion plan (IDs kept in the run's journal, so a re-run finds them)", l.Gateway)
			},
			Do: func(ctx context.Context, env *Env) error {
				c, err := env.Kong.Convert(ctx, env.Gateway, env.Journal, env.Out)
				if err != nil {
					return fmt.Errorf("converting APIs: %w", err)
				}
				if !c.OK {
					return &NotDoneError{Check: c}
				}
				return nil
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				return env.Kong.VerifyConversion(ctx, env.Gateway, env.Journal)
			},
		},
		{
			// No API left is everything the delete does (it refuses, and
			// fails, while an API it did not convert remains).
			ID: "hop2.apis-delete", Hop: "hop2", Kind: KindAction, Risk: RiskIrreversible, Gate: true, Idempotent: true, Skippable: true, VerifyComplete: true,
			Title:    "Delete the converted APIs",
			Runbook:  "Kong 1.0 will not migrate with APIs present; once their Services and Routes work, the APIs are deleted.",
			SkipWhen: skipWhenZero(jHop2APIs, "no APIs to delete"),
			Describe: func(l Labels) string {
				return fmt.Sprintf("DELETE every converted API (and its plugins) from %s through a 0.14.1 node; they cannot be restored except from the datastore snapshot", l.Gateway)
			},
			Do: func(ctx context.Context, env *Env) error {
				if err := env.Kong.DeleteAPIs(ctx, env.Gateway, env.Journal, env.Out); err != nil {
					return fmt.Errorf("deleting APIs: %w", err)
				}
				return nil
			},
			Verify: func(ctx context.Context, env *Env) (Check, error) {
				inv, err := env.Kong.Inspect(ctx, env.Gateway)
				if err != nil {
					return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
				}
				c := Check{OK: inv.Counts.APIs == 0, Facts: []Fact{{Name: "apis", Value: fmt.Sprint(inv.Counts.APIs)}}}
				if !c.OK {
					c.Missing = append(c.Missing, fmt.Sprintf("%d APIs still under /apis", inv.Counts.APIs))
				}
				return c, nil
			},
		},
		{
			ID: "hop2.preflight-migrations", Hop: "hop2", Kind: KindCheck, Risk: RiskNormal, Idempotent: true,
			Title:   "Preflight: ready for the 1.0.3 migrations",
			Runbook: "Right before 1.0's `up`: schema 0.14, no APIs left, every plugin in use bundled or confirmed.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("check %s again: schema 0.14 in datastore %s, no entity under /apis, every plugin in use bundled with 1.0.3 or confirmed and loaded by the 1.0.3 nodes", l.Gateway, l.Datastore)
			},
			Verify: withPreflighter("2", verifyReadyFor10()),
		},
		snapshotStep("hop2", jHop2Snapshot, "1.0.3"),
		migrationStep("hop2", "1.0.3", MigrateUp, RiskHigh, "", Schema10Pending, false),
		{
			ID: "hop2.provision-new-nodes", Hop: "hop2", Kind: KindManual, Risk: RiskNormal,
			Title:   "Start 1.0.3 nodes alongside 0.14.1",
			Runbook: "1.0.3 nodes start beside the 0.14.1 ones on the same datastore; Admin API writes stay on 0.14.1 until the end.",
			Describe: func(l Labels) string {
				return fmt.Sprintf("people start the 1.0.3 nodes of %s on datastore %s, with every plugin in use (custom ones included); keep Admin API writes on the 0.14.1 nodes until migrations finish; the bot checks version, datastore and plugins on each", l.Gateway, l.Datastore)
			},
			Verify: verifyGenerationServing(gen103, "1.0.3"),
		},
		trafficStep("hop2", "hop2.traffic-shift", "Shift traffic to 1.0.3 gradually", "",
			"Traffic moves gradually (e.g. 5, 25, 50, 100 %) with a bake time and health gates at each stage.",
			"shift the traffic of %s from the 0.14.1 nodes to the 1.0.3 nodes in the configured stages, baking and checking the health gates at each, then read the weights back"),
		smokeStep("hop2", gen103, ""),
		decommissionStep("hop2", old, "1.0.3"),
		migrationStep("hop2", "1.0.3", MigrateFinish, RiskIrreversible, "", Schema10, true),
	}}
}

// NotDoneError is what a Do returns when the adapter reported the work as not
// complete (a Check with OK false and no error).
type NotDoneError struct{ Check Check }

func (e *NotDoneError) Error() string {
	if len(e.Check.Missing) == 0 {
		return "not done"
	}
	return "not done: " + strings.Join(e.Check.Missing, "; ")
}

// PausedError is what a Do returns when its adapter asked to wait for a
// person (Check.Pause). The runner reports it as EvStepFailed with the Check,
// and the engine turns it into a pause instead of a failure.
type PausedError struct{ Check Check }

func (e *PausedError) Error() string {
	if e.Check.Pause == nil {
		return "paused"
	}
	return "paused: " + e.Check.Pause.Message
}

// CheckOf returns the Check carried by a Do error (paused or not done).
func CheckOf(err error) (Check, bool) {
	var p *PausedError
	if errors.As(err, &p) {
		return p.Check, true
	}
	var n *NotDoneError
	if errors.As(err, &n) {
		return n.Check, true
	}
	return Check{}, false
}

func snapshotStep(hop, key, target string) Step {
	return Step{
		// Do's last act records the archive and its counts in one write;
		// Verify reads that archive back whole.
		ID: hop + ".snapshot", Hop: hop, Kind: KindAction, Risk: RiskNormal, Idempotent: true, VerifyComplete: true,
		Title:   "Snapshot the datastore",
		Runbook: fmt.Sprintf("A consistent copy of the datastore is taken before the %s migrations.", target),
		Describe: func(l Labels) string {
			return fmt.Sprintf("take a consistent snapshot of datastore %s (label before-%s-migrations), read the archive back against its manifest, and record where it is and its row counts", l.Datastore, target)
		},
		Do: func(ctx context.Context, env *Env) error {
			archive, err := env.Kong.Snapshot(ctx, env.Gateway, "before-"+target+"-migrations")
			if err != nil {
				return fmt.Errorf("snapshotting datastore: %w", err)
			}
			// Read the new archive back before calling it a snapshot: the
			// counts recorded are the archive's, checked.
			sum, err := env.Kong.VerifySnapshot(ctx, env.Gateway, archive)
			if err != nil {
				return fmt.Errorf("the new snapshot does not read back: %w", err)
			}
			counts, err := json.Marshal(sum.Tables)
			if err != nil {
				return fmt.Errorf("recording the snapshot's counts: %w", err)
			}
			return env.Journal.PutMany(map[string]string{key: archive, key + snapshotCountsSuffix: string(counts)})
		},
		Verify: func(ctx context.Context, env *Env) (Check, error) {
			return verifySnapshot(ctx, env, key)
		},
	}
}

// snapshotCountsSuffix: the journal key, after the snapshot's own, of the
// rows per table the snapshot step read back from its archive.
const snapshotCountsSuffix = ".counts"

// verifySnapshot checks the archive the step recorded: it must still read
// back whole against its manifest, and hold the counts recorded when it was
// taken (so another file put at that path does not pass).
func verifySnapshot(ctx context.Context, env *Env, key string) (Check, error) {
	a, ok := env.Journal.Get(key)
	if !ok || a == "" {
		return Check{Missing: []string{"no snapshot recorded"}}, nil
	}
	facts := []Fact{{Name: "snapshot", Value: a}}
	sum, err := env.Kong.VerifySnapshot(ctx, env.Gateway, a)
	if err != nil {
		if ctx.Err() != nil {
			return Check{}, fmt.Errorf("verifying snapshot %s: %w", a, err)
		}
		return Check{Missing: []string{err.Error()}, Facts: facts}, nil
	}
	facts = append(facts,
		Fact{Name: "tables", Value: fmt.Sprint(len(sum.Tables))},
		Fact{Name: "rows", Value: fmt.Sprint(sum.Rows)},
		Fact{Name: "archive size", Value: fmt.Sprintf("%d bytes", sum.Bytes)})
	c := Check{Facts: facts}
	raw, ok := env.Journal.Get(key + snapshotCountsSuffix)
	if !ok {
		// Recorded by a kongbot that kept only the path: the archive's own
		// check above is all there is to go on.
		c.Facts = append(c.Facts, Fact{Name: "recorded counts", Value: "none (snapshot recorded by an earlier kongbot)"})
		c.OK = true
		return c, nil
	}
	var recorded map[string]int64
	if err := json.Unmarshal([]byte(raw), &recorded); err != nil {
		c.Missing = append(c.Missing, fmt.Sprintf("the counts recorded with snapshot %s do not parse (%v)", a, err))
		return c, nil
	}
	c.Missing = append(c.Missing, compareCounts(a, recorded, sum.Tables)...)
	c.OK = len(c.Missing) == 0
	return c, nil
}

func compareCounts(archive string, recorded, now map[string]int64) []string {
	var names []string
	for n := range recorded {
		names = append(names, n)
	}
	for n := range now {
		if _, ok := recorded[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		r, inRec := recorded[n]
		a, inArc := now[n]
		switch {
		case !inArc:
			out = append(out, fmt.Sprintf("snapshot %s: table %s (%d rows when the snapshot was taken) is not in the archive", archive, n, r))
		case !inRec:
			out = append(out, fmt.Sprintf("snapshot %s: table %s (%d rows) is in the archive but was not when the snapshot was taken", archive, n, a))
		case r != a:
			out = append(out, fmt.Sprintf("snapshot %s: table %s has %d rows in the archive, %d when the snapshot was taken", archive, n, a, r))
		}
	}
	return out
}

func migrationStep(hop, target string, verb MigrationVerb, risk Risk, group string, want SchemaState, idempotent bool) Step {
	id := fmt.Sprintf("%s.migrations-%s", hop, verb)
	runbook := fmt.Sprintf("`kong migrations %s` of %s runs once against the datastore; the schema is then verified by SQL.", verb, target)
	if verb == MigrateFinish {
		runbook = "`kong migrations finish` of 1.0.3 removes what 0.14 needs: after it, 0.14 nodes cannot start and there is no way back."
	}
	return Step{
		// The schema by SQL, once a migration still running has ended, is
		// all a migration leaves behind.
		ID: id, Hop: hop, Kind: KindAction, Risk: risk, Gate: true, Group: group, Idempotent: idempotent, VerifyComplete: true,
		Title:   fmt.Sprintf("kong migrations %s (%s)", verb, target),
		Runbook: runbook,
		Describe: func(l Labels) string {
			return fmt.Sprintf("run `kong migrations %s` of %s against datastore %s, stream its output here, then check by SQL that the schema is %s", verb, target, l.Datastore, want)
		},
		Do: func(ctx context.Context, env *Env) error {
			var (
				res MigrationResult
				err error
			)
			if jm, ok := env.Kong.(JournaledMigrator); ok && env.Journal != nil {
				res, err = jm.MigrateJournaled(ctx, env.Gateway, target, verb, env.Journal, env.Out)
			} else {
				res, err = env.Kong.Migrate(ctx, env.Gateway, target, verb, env.Out)
			}
			if err != nil {
				return fmt.Errorf("kong migrations %s (%s): %w", verb, target, err)
			}
			if res.Refusal != "" {
				hint := ""
				if res.Refusal == "apis-present" {
					hint = "; convert and delete the APIs first (steps hop2.apis-convert, hop2.apis-delete)"
				}
				return fmt.Errorf("kong migrations %s (%s) refused: %s%s", verb, target, res.Refusal, hint)
			}
			if res.ExitCode != 0 {
				return fmt.Errorf("kong migrations %s (%s) exited %d", verb, target, res.ExitCode)
			}
			return nil
		},
		Verify: func(ctx context.Context, env *Env) (Check, error) {
			// After a restart the migration an earlier bot started may
			// still run: the schema is judged once it has ended.
			if jm, ok := env.Kong.(JournaledMigrator); ok && env.Journal != nil {
				if _, err := jm.AwaitMigration(ctx, env.Gateway, target, verb, env.Journal, env.Out); err != nil {
					return Check{}, err
				}
			}
			inv, err := env.Kong.Inspect(ctx, env.Gateway)
			if err != nil {
				return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
			}
			c := Check{OK: inv.Schema == want, Facts: []Fact{{Name: "schema", Value: string(inv.Schema)}}}
			if !c.OK {
				c.Missing = append(c.Missing, fmt.Sprintf("schema is %s, want %s", inv.Schema, want))
			}
			return c, nil
		},
	}
}

func trafficStep(hop, id, title, group, runbook, describe string) Step {
	return Step{
		ID: id, Hop: hop, Kind: KindCutover, Risk: RiskHigh, Gate: true, Group: group, Idempotent: true,
		Title: title, Runbook: runbook,
		Describe: func(l Labels) string { return fmt.Sprintf(describe, l.Gateway) },
		Do: func(ctx context.Context, env *Env) error {
			c, err := env.Traffic.Shift(ctx, env.Gateway, hop, env.Journal, env.Out)
			if err != nil {
				return fmt.Errorf("shifting traffic: %w", err)
			}
			if c.Pause != nil {
				return &PausedError{Check: c}
			}
			if !c.OK {
				return &NotDoneError{Check: c}
			}
			return nil
		},
		Verify: func(ctx context.Context, env *Env) (Check, error) {
			return env.Traffic.VerifyWeights(ctx, env.Gateway, 100)
		},
	}
}

func smokeStep(hop string, gen Generation, group string) Step {
	return Step{
		ID: hop + ".smoke", Hop: hop, Kind: KindCheck, Risk: RiskNormal, Group: group, Idempotent: true,
		Title:   fmt.Sprintf("Smoke probes through %s", gen),
		Runbook: "The configured smoke probes pass through every new proxy.",
		Describe: func(l Labels) string {
			return fmt.Sprintf("run the configured smoke probes of %s through every %s proxy", l.Gateway, gen)
		},
		Verify: func(ctx context.Context, env *Env) (Check, error) {
			return env.Kong.Smoke(ctx, env.Gateway, gen)
		},
	}
}

func decommissionStep(hop string, old Generation, newVersion string) Step {
	return Step{
		ID: hop + ".decommission-old", Hop: hop, Kind: KindManual, Risk: RiskNormal,
		Title:   fmt.Sprintf("Decommission the %s nodes", old),
		Runbook: fmt.Sprintf("The %s nodes are stopped once %s serves everything; the bot checks they get no traffic.", old, newVersion),
		Describe: func(l Labels) string {
			return fmt.Sprintf("people stop the %s nodes of %s; the bot checks they no longer answer and get no traffic", old, l.Gateway)
		},
		Verify: func(ctx context.Context, env *Env) (Check, error) {
			inv, err := env.Kong.Inspect(ctx, env.Gateway)
			if err != nil {
				return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
			}
			var c Check
			for _, n := range inv.Nodes {
				if n.Generation == old && n.Reachable {
					c.Missing = append(c.Missing, fmt.Sprintf("node %s still answers (%s)", n.Name, n.Version))
				}
			}
			t, err := env.Traffic.VerifyDecommissioned(ctx, env.Gateway)
			if err != nil {
				return Check{}, fmt.Errorf("reading traffic of %s: %w", old, err)
			}
			c.Missing = append(c.Missing, t.Missing...)
			c.Facts = append(c.Facts, t.Facts...)
			c.OK = len(c.Missing) == 0 && t.OK
			return c, nil
		},
	}
}

// verifyCurrent checks every node of gen answers version want, reaches the
// datastore, and the schema is schema.
func verifyCurrent(gen Generation, want string, schema SchemaState) func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		var c Check
		nodes := nodesOf(inv, gen)
		if len(nodes) == 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("no %s nodes configured", gen))
		}
		for _, n := range nodes {
			c.Missing = append(c.Missing, nodeProblems(n, want)...)
		}
		if inv.Schema != schema {
			c.Missing = append(c.Missing, fmt.Sprintf("schema is %s, want %s", inv.Schema, schema))
		}
		// The new generation's nodes are configured before they are started:
		// that they do not answer yet is expected here, not a problem.
		for _, p := range inv.Problems {
			if !silentNode(inv, gen, p) {
				c.Missing = append(c.Missing, p)
			}
		}
		c.Facts = append(c.Facts, Fact{Name: "nodes", Value: fmt.Sprint(len(nodes))}, Fact{Name: "schema", Value: string(inv.Schema)})
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}

// verifyHop2Current: every reachable node is 0.14.1, at least one 0.14.1 node
// serves, and the schema is 0.14 (a 0.13 node left over would be hurt by 1.0).
func verifyHop2Current() func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		var c Check
		serving := 0
		for _, n := range inv.Nodes {
			switch {
			case n.Generation == gen0141:
				c.Missing = append(c.Missing, nodeProblems(n, "0.14.1")...)
				serving++
			case n.Generation == gen103:
				if n.Reachable {
					c.Missing = append(c.Missing, fmt.Sprintf("1.0.3 node %s already answers; it must start after migrations up", n.Name))
				}
			case n.Reachable:
				c.Missing = append(c.Missing, fmt.Sprintf("node %s answers %s, want 0.14.1", n.Name, n.Version))
			}
		}
		if serving == 0 {
			c.Missing = append(c.Missing, "no 0.14.1 nodes configured")
		}
		if len(nodesOf(inv, gen103)) == 0 {
			c.Missing = append(c.Missing, "no 1.0.3 nodes configured")
		}
		if inv.Schema != Schema014 {
			c.Missing = append(c.Missing, fmt.Sprintf("schema is %s, want %s", inv.Schema, Schema014))
		}
		// A full 0.13 -> 1.0.3 path configures the decommissioned 0.13 nodes
		// and the 1.0.3 nodes that may only start after `up`: that they do
		// not answer is expected here, not a problem.
		for _, p := range inv.Problems {
			if !silentNode(inv, gen0141, p) {
				c.Missing = append(c.Missing, p)
			}
		}
		c.Facts = append(c.Facts, Fact{Name: "0.14.1 nodes", Value: fmt.Sprint(serving)}, Fact{Name: "schema", Value: string(inv.Schema)}, Fact{Name: "apis", Value: fmt.Sprint(inv.Counts.APIs)})
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}

// silentNode reports whether an inventory problem only says that a node
// outside generation gen does not answer.
func silentNode(inv Inventory, gen Generation, problem string) bool {
	for _, n := range inv.Nodes {
		if n.Generation != gen && !n.Reachable && strings.HasPrefix(problem, "node "+n.Name+" (") && strings.Contains(problem, "unreachable") {
			return true
		}
	}
	return false
}

// verifyNewConfigured: the new generation has nodes in config, and any that
// already answers runs the new version.
func verifyNewConfigured(gen Generation, want string) func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		var c Check
		nodes := nodesOf(inv, gen)
		if len(nodes) == 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("no %s nodes configured for %s", gen, env.Gateway))
		}
		started := 0
		for _, n := range nodes {
			if n.Reachable {
				started++
				if n.Version != want {
					c.Missing = append(c.Missing, fmt.Sprintf("node %s answers %s, want %s", n.Name, n.Version, want))
				}
			}
		}
		c.Facts = append(c.Facts, Fact{Name: string(gen) + " nodes", Value: fmt.Sprint(len(nodes))}, Fact{Name: "answering", Value: fmt.Sprint(started)})
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}

// verifyGenerationServing: every node of gen answers version want, reaches
// the datastore, and has every plugin in use available.
func verifyGenerationServing(gen Generation, want string) func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		var c Check
		nodes := nodesOf(inv, gen)
		if len(nodes) == 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("no %s nodes configured", gen))
		}
		inUse := pluginsInUse(inv)
		for _, n := range nodes {
			p := nodeProblems(n, want)
			c.Missing = append(c.Missing, p...)
			if len(p) > 0 {
				continue
			}
			for _, name := range inUse {
				if !slices.Contains(n.Available, name) {
					c.Missing = append(c.Missing, fmt.Sprintf("node %s lacks plugin %s, which is in use", n.Name, name))
				}
			}
		}
		c.Facts = append(c.Facts, Fact{Name: string(gen) + " nodes", Value: fmt.Sprint(len(nodes))}, Fact{Name: "plugins in use", Value: strings.Join(inUse, ", ")})
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}

func nodeProblems(n Node, want string) []string {
	if !n.Reachable {
		msg := fmt.Sprintf("node %s does not answer", n.Name)
		if n.Error != "" {
			msg += ": " + n.Error
		}
		return []string{msg}
	}
	var out []string
	if n.Version != want {
		out = append(out, fmt.Sprintf("node %s answers %s, want %s", n.Name, n.Version, want))
	}
	if !n.DatabaseOK {
		out = append(out, fmt.Sprintf("node %s cannot reach its datastore", n.Name))
	}
	return out
}

func nodesOf(inv Inventory, gen Generation) []Node {
	var out []Node
	for _, n := range inv.Nodes {
		if n.Generation == gen {
			out = append(out, n)
		}
	}
	return out
}

// pluginsInUse lists the plugin names with rows in the datastore, sorted.
func pluginsInUse(inv Inventory) []string {
	var out []string
	for name, n := range inv.Counts.Plugins {
		if n > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// classifyPlugins splits the plugins in use into those the target bundles,
// the deprecated or removed ones (which block), and custom ones.
func classifyPlugins(inUse, bundled []string) (ok, blocked, custom []string) {
	for _, p := range inUse {
		switch {
		case slices.Contains(bundled, p):
			ok = append(ok, p)
		case slices.Contains(deprecated, p) || slices.Contains(bundled013, p):
			blocked = append(blocked, p)
		default:
			custom = append(custom, p)
		}
	}
	return ok, blocked, custom
}

func recordCustomPlugins(key string, bundled []string) func(context.Context, *Env) error {
	return func(ctx context.Context, env *Env) error {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		_, _, custom := classifyPlugins(pluginsInUse(inv), bundled)
		return env.Journal.Put(key, strings.Join(custom, ","))
	}
}

func verifyPlugins(bundled []string, target string) func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		ok, blocked, custom := classifyPlugins(pluginsInUse(inv), bundled)
		var c Check
		for _, p := range blocked {
			c.Missing = append(c.Missing, fmt.Sprintf("plugin %s (%d in use) does not exist in %s; remove it first", p, inv.Counts.Plugins[p], target))
		}
		c.Facts = append(c.Facts, Fact{Name: "bundled with " + target, Value: strings.Join(ok, ", ")})
		if len(custom) > 0 {
			c.Facts = append(c.Facts, Fact{Name: "custom (must be installed on " + target + " nodes)", Value: strings.Join(custom, ", ")})
		}
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}

func skipWhenEmpty(key, reason string) func(map[string]string) (bool, string) {
	return func(j map[string]string) (bool, string) {
		v, ok := j[key]
		return ok && v == "", reason
	}
}

func skipWhenZero(key, reason string) func(map[string]string) (bool, string) {
	return func(j map[string]string) (bool, string) {
		v, ok := j[key]
		return ok && v == "0", reason
	}
}

// ConfirmPluginKeyPrefix prefixes the journal keys that hold an approver's
// confirmation that a custom plugin works on 1.0.3 (one key per plugin); the
// kong adapter's Preflight reads the same keys.
const ConfirmPluginKeyPrefix = "plugin-compatible/"

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// withPreflighter prefers the adapter's own preflight for a hop when it has
// one (it knows more: DNS of new nodes, plugins declared in config, why a
// plugin needs confirming), and falls back to the checks here otherwise.
func withPreflighter(hop string, fallback func(context.Context, *Env) (Check, error)) func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		pf, ok := env.Kong.(Preflighter)
		if !ok {
			return fallback(ctx, env)
		}
		c, err := pf.Preflight(ctx, env.Gateway, hop, env.Journal)
		if err != nil {
			return Check{}, fmt.Errorf("preflight of hop %s: %w", hop, err)
		}
		return c, nil
	}
}

// verifyReadyFor10: what 1.0.3's `migrations up` needs (kong-reference §4.2).
func verifyReadyFor10() func(context.Context, *Env) (Check, error) {
	return func(ctx context.Context, env *Env) (Check, error) {
		inv, err := env.Kong.Inspect(ctx, env.Gateway)
		if err != nil {
			return Check{}, fmt.Errorf("inspecting %s: %w", env.Gateway, err)
		}
		var c Check
		if inv.Schema != Schema014 {
			c.Missing = append(c.Missing, fmt.Sprintf("schema is %s, want %s", inv.Schema, Schema014))
		}
		if inv.Counts.APIs > 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("%d APIs under /apis: 1.0.3 `migrations up` refuses while any exists", inv.Counts.APIs))
		}
		_, blocked, custom := classifyPlugins(pluginsInUse(inv), bundled10)
		for _, p := range blocked {
			c.Missing = append(c.Missing, fmt.Sprintf("plugin %s does not exist in 1.0.3", p))
		}
		for _, p := range custom {
			if v, _ := env.Journal.Get(ConfirmPluginKeyPrefix + p); v != string(ChoiceApprove) && v != string(ChoiceDone) {
				c.Missing = append(c.Missing, fmt.Sprintf("plugin %s is not confirmed compatible with 1.0.3", p))
			}
		}
		c.Facts = append(c.Facts, Fact{Name: "schema", Value: string(inv.Schema)}, Fact{Name: "apis", Value: fmt.Sprint(inv.Counts.APIs)})
		c.OK = len(c.Missing) == 0
		return c, nil
	}
}
