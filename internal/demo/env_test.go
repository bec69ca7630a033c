package demo

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestEnvUpAndDown brings the environment up, checks the demo state through
// the front (401 without a token, 200 with one) and the steady traffic, then
// closes it and checks nothing is left: no listener, no directory.
func TestEnvUpAndDown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noHAProxy bool
	}{{"haproxy", false}, {"manual", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.noHAProxy {
				if _, err := exec.LookPath("haproxy"); err != nil {
					t.Skip("haproxy not installed (scripts/test.sh installs it)")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			e, err := StartEnv(ctx, EnvOptions{NoHAProxy: tc.noHAProxy, Rate: 20, DBUpdateFrequency: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Smoke(ctx, e.FrontURL); err != nil {
				t.Fatalf("smoke through the front: %v", err)
			}
			if (e.HAProxy != nil) == tc.noHAProxy {
				t.Fatalf("HAProxy started: %v, want %v", e.HAProxy != nil, !tc.noHAProxy)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, ok, failed := Totals(e.Load.Between(time.Now().Add(-time.Minute), time.Now()))
				if failed > 0 {
					t.Fatalf("steady traffic failed %d requests before any change", failed)
				}
				if ok >= 20 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("steady traffic: %d answers in 10s", ok)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if len(e.Nodes(V013)) != NodesPerGeneration || !e.Nodes(V013)[1].Running() || e.Nodes(V014)[0].Running() {
				t.Fatalf("generations: want 0.13.1 running, 0.14.1 not")
			}
			// A 0.14.1 node cannot start before its migrations, as Kong.
			if err := e.StartGeneration(ctx, V014, true); err == nil {
				t.Fatal("0.14.1 node started on a 0.13 schema")
			}
			if e.Nodes(V014)[0].Err() == "" {
				t.Fatal("the refusal is not kept on the node")
			}

			// The bot's config for this environment passes config's checks.
			bc, err := e.WriteConfig(t.TempDir(), BotOptions{Migrations: []string{"/bin/false"}})
			if err != nil {
				t.Fatal(err)
			}
			wantBackend := map[bool]string{false: "haproxy", true: "manual"}[tc.noHAProxy]
			if got := bc.Config.Gateways[0].Traffic.Backend; got != wantBackend {
				t.Errorf("traffic backend %q, want %q", got, wantBackend)
			}
			if st := bc.Config.Gateways[0].Traffic.Stages; len(st) != 4 || st[0].Bake != 10*time.Second {
				t.Errorf("stages read back as %+v", st)
			}

			var addrs []string
			for _, v := range Versions {
				for _, n := range e.Nodes(v) {
					addrs = append(addrs, n.AdminAddr, n.ProxyAddr)
				}
			}
			addrs = append(addrs, e.FrontURL[len("http://"):], e.EchoURL[len("http://"):], e.Slack.URL()[len("http://"):len(e.Slack.URL())-1])
			dir := e.Dir
			e.Close()
			for _, a := range addrs {
				if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections after Close", a)
				}
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("demo dir %s left behind: %v", dir, err)
			}
		})
	}
}
