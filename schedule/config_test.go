package schedule

import (
	"testing"
	"time"

	"github.com/kongbot/kongbot/config"
)

func TestFromConfig(t *testing.T) {
	c, err := config.Load("../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if o.Grace != 30*time.Minute || o.Digest != "0 9 * * 1-5" || o.DefaultChannel != "C0KONGOPS" || o.HealthInterval != 30*time.Second ||
		o.Rules.RemindAfter != 30*time.Minute || o.Rules.ExpireAfter != 24*time.Hour {
		t.Errorf("options %+v", o)
	}
	sat := time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC)
	if o.Rules.Windows == nil || !o.Rules.Windows.Window("prod", sat).Open || o.Rules.Windows.Window("prod", sat.Add(4*time.Hour)).Open {
		t.Error("the example's saturday-night window is not in the rules")
	}
	c.ChangeWindows = nil
	if o, _ := FromConfig(c); o.Rules.Windows != nil {
		t.Error("no windows configured, but the rules hold steps")
	}
}
