package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
)

// Fingerprint hashes a plan (its steps' IDs, kinds, risks, gates and groups)
// and the inventory it was made from. Volatile fields (ReadAt, error texts)
// are left out, so reading an unchanged gateway twice gives the same value.
func Fingerprint(p Plan, inv Inventory) string {
	type fpStep struct {
		ID    string `json:"id"`
		Kind  Kind   `json:"kind"`
		Risk  Risk   `json:"risk"`
		Gate  bool   `json:"gate"`
		Group string `json:"group"`
	}
	type fpNode struct {
		Name        string     `json:"name"`
		Generation  Generation `json:"gen"`
		AdminURL    string     `json:"admin"`
		ProxyURL    string     `json:"proxy"`
		Reachable   bool       `json:"reachable"`
		Version     string     `json:"version"`
		DatabaseOK  bool       `json:"db"`
		Available   []string   `json:"available"`
		EnabledInDB []string   `json:"enabled"`
	}
	var doc struct {
		From     string         `json:"from"`
		Target   string         `json:"target"`
		Steps    []fpStep       `json:"steps"`
		Gateway  string         `json:"gateway"`
		Nodes    []fpNode       `json:"nodes"`
		Schema   SchemaState    `json:"schema"`
		APIs     int            `json:"apis"`
		Services int            `json:"services"`
		Routes   int            `json:"routes"`
		Cons     int            `json:"consumers"`
		Plugins  map[string]int `json:"plugins"` // json sorts map keys
		Problems []string       `json:"problems"`
	}
	doc.From, doc.Target = p.From, p.Target
	for _, s := range p.Steps() {
		doc.Steps = append(doc.Steps, fpStep{s.ID, s.Kind, s.Risk, s.Gate, s.Group})
	}
	doc.Gateway, doc.Schema = inv.Gateway, inv.Schema
	for _, n := range inv.Nodes {
		doc.Nodes = append(doc.Nodes, fpNode{
			Name: n.Name, Generation: n.Generation, AdminURL: n.AdminURL, ProxyURL: n.ProxyURL,
			Reachable: n.Reachable, Version: n.Version, DatabaseOK: n.DatabaseOK,
			Available: sortedCopy(n.Available), EnabledInDB: sortedCopy(n.EnabledInDB),
		})
	}
	sort.Slice(doc.Nodes, func(i, j int) bool {
		if doc.Nodes[i].Generation != doc.Nodes[j].Generation {
			return doc.Nodes[i].Generation < doc.Nodes[j].Generation
		}
		return doc.Nodes[i].Name < doc.Nodes[j].Name
	})
	c := inv.Counts
	doc.APIs, doc.Services, doc.Routes, doc.Cons, doc.Plugins = c.APIs, c.Services, c.Routes, c.Consumers, c.Plugins
	doc.Problems = sortedCopy(inv.Problems)
	b, err := json.Marshal(doc)
	if err != nil {
		// Only plain strings, ints and bools are marshalled; this cannot fail.
		panic("steps: fingerprint: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
