package localslack

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Button is an interactive button found in a message's or view's blocks.
type Button struct {
	BlockID  string          `json:"block_id"`
	ActionID string          `json:"action_id"`
	Value    string          `json:"value"`
	Text     string          `json:"text"`
	Style    string          `json:"style,omitempty"` // "", "primary" or "danger"
	URL      string          `json:"url,omitempty"`
	Confirm  json.RawMessage `json:"confirm,omitempty"` // the confirm dialog, if any
	raw      json.RawMessage
}

// Buttons lists the message's buttons in block order.
func (m Message) Buttons() []Button { return buttons(m.Blocks) }

// Button returns the message's button with actionID (and value, if value is
// not empty).
func (m Message) Button(actionID, value string) (Button, bool) {
	return findButton(m.Blocks, actionID, value)
}

// BlockText returns every text in the message's blocks (header, section text
// and fields, context elements, button labels), one per line, falling back to
// Text when there are no blocks. Tests use it to check what a reader sees.
func (m Message) BlockText() string {
	if len(m.Blocks) == 0 {
		return m.Text
	}
	return blockText(m.Blocks)
}

func blockText(raw json.RawMessage) string {
	var blocks []map[string]json.RawMessage
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var lines []string
	add := func(t json.RawMessage) {
		var to struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(t, &to) == nil && to.Text != "" {
			lines = append(lines, to.Text)
		}
	}
	for _, b := range blocks {
		add(b["text"])
		var fields, elems []json.RawMessage
		_ = json.Unmarshal(b["fields"], &fields)
		for _, f := range fields {
			add(f)
		}
		_ = json.Unmarshal(b["elements"], &elems)
		for _, e := range elems {
			var el map[string]json.RawMessage
			if json.Unmarshal(e, &el) != nil {
				continue
			}
			if _, ok := el["text"]; ok {
				if len(el["text"]) > 0 && el["text"][0] == '"' {
					var s string
					_ = json.Unmarshal(el["text"], &s)
					lines = append(lines, s)
				} else {
					add(el["text"])
				}
			}
		}
		var acc map[string]json.RawMessage
		if json.Unmarshal(b["accessory"], &acc) == nil {
			add(acc["text"])
		}
	}
	return strings.Join(lines, "\n")
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func shortID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// normalizeBlocks checks that raw is a JSON array of objects with a type and
// gives every block without a block_id a generated one, as Slack does.
func normalizeBlocks(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("invalid_blocks: %w", err)
	}
	if len(blocks) > 50 {
		return nil, errors.New("invalid_blocks: more than 50 blocks")
	}
	for i, b := range blocks {
		t, _ := b["type"].(string)
		if t == "" {
			return nil, fmt.Errorf("invalid_blocks: block %d has no type", i)
		}
		if id, _ := b["block_id"].(string); id == "" {
			b["block_id"] = shortID(5)
		}
	}
	if len(blocks) == 0 {
		return nil, nil // "[]" clears a message's blocks; stored as none
	}
	out, err := json.Marshal(blocks)
	if err != nil {
		return nil, fmt.Errorf("invalid_blocks: %w", err)
	}
	return out, nil
}

type rawBlock struct {
	Type      string            `json:"type"`
	BlockID   string            `json:"block_id"`
	Elements  []json.RawMessage `json:"elements"`
	Accessory json.RawMessage   `json:"accessory"`
}

type rawButton struct {
	Type     string          `json:"type"`
	ActionID string          `json:"action_id"`
	Value    string          `json:"value"`
	URL      string          `json:"url"`
	Style    string          `json:"style"`
	Confirm  json.RawMessage `json:"confirm"`
	Text     struct {
		Text string `json:"text"`
	} `json:"text"`
}

func buttons(raw json.RawMessage) []Button {
	var blocks []rawBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	var out []Button
	consider := func(blockID string, e json.RawMessage) {
		var b rawButton
		if json.Unmarshal(e, &b) != nil || b.Type != "button" {
			return
		}
		out = append(out, Button{BlockID: blockID, ActionID: b.ActionID, Value: b.Value, Text: b.Text.Text,
			Style: b.Style, URL: b.URL, Confirm: b.Confirm, raw: e})
	}
	for _, b := range blocks {
		for _, e := range b.Elements {
			consider(b.BlockID, e)
		}
		if len(b.Accessory) > 0 {
			consider(b.BlockID, b.Accessory)
		}
	}
	return out
}

func findButton(raw json.RawMessage, actionID, value string) (Button, bool) {
	for _, b := range buttons(raw) {
		if b.ActionID == actionID && (value == "" || b.Value == value) {
			return b, true
		}
	}
	return Button{}, false
}
