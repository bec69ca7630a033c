package steps

import (
	"context"
	"strings"
	"testing"
)

// fixedInventory answers Inspect with one inventory; the rest of the Kong
// port comes from the fake gateway.
type fixedInventory struct {
	*fakeGateway
	inv Inventory
}

func (f fixedInventory) Inspect(context.Context, string) (Inventory, error) { return f.inv, nil }

// The new generation is configured before it is started: the current-version
// preflight must not count its silence, but must count the current nodes'.
func TestVerifyCurrentIgnoresOnlyOtherGenerationsSilence(t *testing.T) {
	old := Generation("0.14.0")
	up := Node{Name: "kong-old-1", Generation: old, Reachable: true, Version: "0.14.0", DatabaseOK: true}
	newDown := Node{Name: "kong-new-1", Generation: gen0141, Error: "connection refused"}
	oldDown := Node{Name: "kong-old-2", Generation: old, Error: "connection refused"}
	problem := func(n Node) string {
		return "node " + n.Name + " (" + string(n.Generation) + ") unreachable: connection refused"
	}
	cases := []struct {
		name    string
		nodes   []Node
		ok      bool
		missing string
	}{
		{"new generation not started yet", []Node{up, newDown}, true, ""},
		{"a current node down", []Node{up, oldDown, newDown}, false, "kong-old-2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := Inventory{Gateway: "prod", Nodes: tc.nodes, Schema: Schema014}
			for _, n := range tc.nodes {
				if !n.Reachable {
					inv.Problems = append(inv.Problems, problem(n))
				}
			}
			env := &Env{Gateway: "prod", Kong: fixedInventory{newFakeGateway("0.14.0"), inv}}
			c, err := verifyCurrent(old, "0.14.0", Schema014)(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			if c.OK != tc.ok || (tc.missing != "" && !strings.Contains(strings.Join(c.Missing, "; "), tc.missing)) {
				t.Fatalf("check = %+v, want ok=%v mentioning %q", c, tc.ok, tc.missing)
			}
		})
	}
}
