package runner

import (
	"testing"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

func TestRulesFromConfig(t *testing.T) {
	c, err := config.Load("../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := RulesFromConfig(c)
	d := steps.DefaultRules()
	if got.Normal != d.Normal || got.High != d.High || got.Irreversible != d.Irreversible {
		t.Fatalf("example rules %+v differ from the engine's defaults %+v", got, d)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	c.ApprovalRules["high"] = config.ApprovalRule{Count: 2}
	if r := RulesFromConfig(c).High; r.Approvers != 2 || !r.AllowRequester {
		t.Fatalf("high = %+v", r)
	}
}
