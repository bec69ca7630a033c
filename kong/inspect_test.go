package kong

import (
	"strings"
	"testing"

	"github.com/kongbot/kongbot/steps"
)

func TestNodeProblems(t *testing.T) {
	n := func(name, gen, v string, db bool) steps.Node {
		return steps.Node{Name: name, Generation: steps.Generation(gen), Reachable: true, Version: v, DatabaseOK: db}
	}
	tests := []struct {
		name   string
		nodes  []steps.Node
		schema steps.SchemaState
		want   []string
	}{
		{"all good", []steps.Node{n("a", "0.14.1", "0.14.1", true), n("b", "0.14.1", "0.14.1", true)}, steps.Schema014, nil},
		{"0.14 keeps running in the 1.0 pending window", []steps.Node{n("a", "0.14.1", "0.14.1", true), n("b", "1.0.3", "1.0.3", true)}, steps.Schema10Pending, nil},
		{"database unreachable from a node", []steps.Node{n("a", "0.14.1", "0.14.1", false)}, steps.Schema014,
			[]string{"node a (0.14.1) cannot reach the database"}},
		{"mixed versions", []steps.Node{n("a", "0.14.1", "0.14.1", true), n("b", "0.14.1", "0.13.1", true)}, steps.Schema014,
			[]string{"node b answers 0.13.1, its generation is 0.14.1", "schema 0.14 is ahead of node b (0.13.1)", "mixed versions in generation 0.14.1: 0.13.1 on b; 0.14.1 on a"}},
		{"schema ahead", []steps.Node{n("a", "0.13.1", "0.13.1", true)}, steps.Schema014, []string{"schema 0.14 is ahead of node a (0.13.1)"}},
		{"schema ahead after finish", []steps.Node{n("a", "0.14.1", "0.14.1", true)}, steps.Schema10, []string{"schema 1.0 is ahead of node a (0.14.1)"}},
		{"schema behind", []steps.Node{n("a", "1.0.3", "1.0.3", true)}, steps.Schema014, []string{"schema 0.14 is behind node a (1.0.3)"}},
		{"unreachable", []steps.Node{{Name: "a", Generation: "0.14.1", Error: "GET /status: connection refused"}}, steps.Schema014,
			[]string{"node a (0.14.1) unreachable: GET /status: connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nodeProblems(tc.nodes, tc.schema, true)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("problems %q lack %q", got, w)
				}
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{"0.13.1": "0.13.1", "1.0.3-enterprise": "1.0.3", "0.14": "0.14.0", " 0.14.1 ": "0.14.1"} {
		v, err := parseVersion(in)
		if err != nil || v.String() != want {
			t.Errorf("%q: %v %v", in, v, err)
		}
	}
	for _, bad := range []string{"", "x", "1.x.3", "1.0.x"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
