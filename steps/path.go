package steps

import (
	"fmt"
	"strconv"
	"strings"
)

// Targets are the versions a run can end at.
var Targets = []string{"0.14.1", "1.0.3"}

// DefaultTarget is the target when none is asked for.
const DefaultTarget = "1.0.3"

const supportedText = "kongbot upgrades gateways running 0.13.x, 0.14.0 or 0.14.1 to 0.14.1 or 1.0.3"

// version is a parsed Kong version "major.minor.patch".
type version struct{ major, minor, patch int }

func parseVersion(s string) (version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return version{}, fmt.Errorf("%w: version %q is not major.minor.patch", ErrUnsupportedPath, s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return version{}, fmt.Errorf("%w: version %q is not major.minor.patch", ErrUnsupportedPath, s)
		}
		v[i] = n
	}
	return version{v[0], v[1], v[2]}, nil
}

// IsTarget reports whether v is a supported target version.
func IsTarget(v string) bool {
	for _, t := range Targets {
		if t == v {
			return true
		}
	}
	return false
}

// PlanPath plans the hops from the version detected on the gateway to the
// target ("" means DefaultTarget):
//
//	0.13.x -> hop1 (to 0.14.1), then hop2 (to 1.0.3)
//	0.14.0 -> hop0 (new 0.14.1 nodes; same schema), then hop2
//	0.14.1 -> hop2
//	1.0.x  -> nothing to do (ErrNothingToDo)
//
// Anything else is refused with ErrUnsupportedPath naming what is supported.
func PlanPath(from, to string) (Plan, error) {
	if to == "" {
		to = DefaultTarget
	}
	if !IsTarget(to) {
		return Plan{}, fmt.Errorf("%w: unknown target version %s; supported targets: %s", ErrUnsupportedPath, to, strings.Join(Targets, ", "))
	}
	v, err := parseVersion(from)
	if err != nil {
		return Plan{}, fmt.Errorf("%w; %s", err, supportedText)
	}
	p := Plan{From: from, Target: to}
	switch {
	case v.major == 0 && v.minor == 13:
		p.Hops = append(p.Hops, hop1(from))
		if to == "1.0.3" {
			p.Hops = append(p.Hops, hop2())
		}
	case v.major == 0 && v.minor == 14 && v.patch == 0:
		p.Hops = append(p.Hops, hop0(from))
		if to == "1.0.3" {
			p.Hops = append(p.Hops, hop2())
		}
	case v.major == 0 && v.minor == 14 && v.patch == 1:
		if to == "0.14.1" {
			return Plan{}, fmt.Errorf("%w: gateway already runs 0.14.1", ErrNothingToDo)
		}
		p.Hops = append(p.Hops, hop2())
	case v.major == 1 && v.minor == 0:
		if to == "0.14.1" {
			return Plan{}, fmt.Errorf("%w: gateway runs %s; downgrading to 0.14.1 is not supported", ErrUnsupportedPath, from)
		}
		return Plan{}, fmt.Errorf("%w: gateway already runs %s (1.0.x)", ErrNothingToDo, from)
	default:
		return Plan{}, fmt.Errorf("%w: gateway runs %s; %s", ErrUnsupportedPath, from, supportedText)
	}
	return p, nil
}
