package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

// planMain is `kongbot plan --from VERSION [--to VERSION] [--json]`: the
// ordered runbook with each step's kind, risk, group and approvals.
func planMain(args []string) int {
	return runPlan(args, os.Stdout, os.Stderr)
}

func runPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kongbot plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "version the gateway runs now, e.g. 0.13.1 (required)")
	to := fs.String("to", steps.DefaultTarget, "target version: "+strings.Join(steps.Targets, " or "))
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	gateway := fs.String("gateway", "<gateway>", "gateway name to show in the step descriptions")
	datastore := fs.String("datastore", "<datastore>", "datastore label to show in the step descriptions")
	cfgPath := fs.String("config", "", "config file whose approval_rules to show (default: the built-in rules)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kongbot plan --from VERSION [--to VERSION] [--json] [--config FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	p, err := steps.PlanPath(*from, *to)
	if errors.Is(err, steps.ErrNothingToDo) {
		fmt.Fprintf(stdout, "nothing to do: %v\n", err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kongbot plan: %v\n", err)
		return 1
	}
	labels := steps.Labels{Gateway: *gateway, Datastore: *datastore}
	rules := steps.DefaultRules()
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "kongbot plan: %v\n", err)
			return 1
		}
		rules = approvalRules(c)
		if err := rules.Validate(); err != nil {
			fmt.Fprintf(stderr, "kongbot plan: %s: %v\n", *cfgPath, err)
			return 1
		}
	}
	if *asJSON {
		return printPlanJSON(stdout, stderr, p, labels, rules)
	}
	printPlan(stdout, p, labels, rules)
	return 0
}

type planStepJSON struct {
	N           int        `json:"n"`
	ID          string     `json:"id"`
	Hop         string     `json:"hop"`
	Title       string     `json:"title"`
	Runbook     string     `json:"runbook"`
	Description string     `json:"description"`
	Kind        steps.Kind `json:"kind"`
	Risk        steps.Risk `json:"risk"`
	Idempotent  bool       `json:"idempotent"`
	// VerifyFirst: after a restart inside the step, its Verify decides
	// whether it runs again (Step.VerifyComplete).
	VerifyFirst bool               `json:"verify_first_on_resume"`
	Skippable   bool               `json:"skippable"`
	Group       string             `json:"group,omitempty"`
	Approval    steps.StepApproval `json:"approval"`
}

func printPlanJSON(stdout, stderr io.Writer, p steps.Plan, l steps.Labels, rules steps.ApprovalRules) int {
	type hop struct {
		Name string `json:"name"`
		From string `json:"from"`
		To   string `json:"to"`
	}
	out := struct {
		From   string         `json:"from"`
		Target string         `json:"target"`
		Hops   []hop          `json:"hops"`
		Steps  []planStepJSON `json:"steps"`
	}{From: p.From, Target: p.Target}
	for _, h := range p.Hops {
		out.Hops = append(out.Hops, hop{h.Name, h.From, h.To})
	}
	for i, s := range p.Steps() {
		out.Steps = append(out.Steps, planStepJSON{
			N: i + 1, ID: s.ID, Hop: s.Hop, Title: s.Title, Runbook: s.Runbook, Description: s.Description(l),
			Kind: s.Kind, Risk: s.Risk, Idempotent: s.Idempotent, VerifyFirst: s.VerifyComplete, Skippable: s.Skippable, Group: s.Group,
			Approval: p.Approval(s.ID, rules),
		})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "kongbot plan: writing JSON: %v\n", err)
		return 1
	}
	return 0
}

func printPlan(w io.Writer, p steps.Plan, l steps.Labels, rules steps.ApprovalRules) {
	fmt.Fprintf(w, "Upgrade plan %s -> %s\n", p.From, p.Target)
	fmt.Fprintf(w, "Approval rules: normal = %s; high = %s; irreversible = %s\n",
		rules.Normal.Text(), rules.High.Text(), rules.Irreversible.Text())
	n := 0
	for _, h := range p.Hops {
		fmt.Fprintf(w, "\n%s: %s -> %s\n", h.Name, h.From, h.To)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tSTEP\tKIND\tRISK\tGROUP\tAPPROVAL")
		groups := map[string][]int{}
		var order []string
		for _, s := range h.Steps {
			n++
			if s.Group != "" {
				if groups[s.Group] == nil {
					order = append(order, s.Group)
				}
				groups[s.Group] = append(groups[s.Group], n)
			}
			g := "-"
			if s.Group != "" {
				g = s.Group
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", n, s.ID, s.Kind, s.Risk, g, p.Approval(s.ID, rules).Text)
		}
		tw.Flush()
		for _, g := range order {
			steps := groups[g]
			fmt.Fprintf(w, "  Steps %d-%d form the %s group (the outage): approved once, then run back-to-back with no approval waits.\n", steps[0], steps[len(steps)-1], g)
		}
		fmt.Fprintln(w)
		n -= len(h.Steps)
		for _, s := range h.Steps {
			n++
			flags := []string{}
			if s.Idempotent {
				flags = append(flags, "idempotent")
			}
			if s.VerifyComplete {
				flags = append(flags, "verified first after a restart")
			}
			if s.Skippable {
				flags = append(flags, "skippable")
			}
			extra := ""
			if len(flags) > 0 {
				extra = " [" + strings.Join(flags, ", ") + "]"
			}
			fmt.Fprintf(w, "  %d. %s%s\n     %s\n     does: %s\n", n, s.Title, extra, s.Runbook, s.Description(l))
		}
	}
}
