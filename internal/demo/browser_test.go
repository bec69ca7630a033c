package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/localslack/browser"
	"github.com/kongbot/kongbot/store"
)

// TestDemoCommandInBrowser is the README's path: `kongbot demo` (the built
// binary) in the background; the page it prints opened in headless Chromium;
// the on-call engineer starts the upgrade and marks the provisioning done,
// a lead approves the outage on the page; then SIGINT, and nothing the
// demo started is left: no process, no listening port, no directory.
func TestDemoCommandInBrowser(t *testing.T) {
	if browser.Chromium() == "" {
		t.Skip("chromium not installed (scripts/test.sh installs it)")
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (scripts/test.sh installs it)")
	}
	bin := kongbotBinary(t)
	cmd := exec.Command(bin, "demo", "--rate", "2", "--bake", "2s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		// Whatever happened, the demo goes: SIGINT lets it stop what it
		// started (HAProxy and Postgres run in their own process groups);
		// only a demo that hangs is killed.
		if syscall.Kill(-cmd.Process.Pid, 0) != nil {
			return
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if syscall.Kill(-cmd.Process.Pid, 0) != nil {
				return
			}
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})

	// The banner: page URL, gateway front, bot admin, Postgres, files.
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var banner []string
	reURL := regexp.MustCompile(`Slack-like page:\s+(http://\S+)`)
	var page string
	deadline := time.After(2 * time.Minute)
	for page == "" || !strings.Contains(strings.Join(banner, "\n"), "Ctrl-C stops everything") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kongbot demo exited before it was ready: %s\n%s", strings.Join(banner, "\n"), stderr.String())
			}
			banner = append(banner, l)
			if m := reURL.FindStringSubmatch(l); m != nil {
				page = m[1]
			}
		case <-deadline:
			t.Fatalf("kongbot demo did not print its banner in 2 minutes: %s\n%s", strings.Join(banner, "\n"), stderr.String())
		}
	}
	// Keep draining the status lines so the demo never blocks on stdout.
	go func() {
		for range lines {
		}
	}()
	text := strings.Join(banner, "\n")
	for _, want := range []string{"/kong check demo", "/kong upgrade start demo to 1.0.3"} {
		if !strings.Contains(text, want) {
			t.Errorf("the banner does not say to type %q:\n%s", want, text)
		}
	}
	addrs := regexp.MustCompile(`127\.0\.0\.1:\d+`).FindAllString(text, -1)
	dir := regexp.MustCompile(`Files:\s+(\S+)`).FindStringSubmatch(text)
	if len(addrs) < 4 || dir == nil {
		t.Fatalf("the banner lacks the addresses (page, gateway, bot admin, Postgres) or the files:\n%s", text)
	}

	p := browser.Open(t, page)
	p.ActAs(localslack.OnCallID)
	p.Type("/kong upgrade start demo to 1.0.3")
	parent := waitButton(t, page, localslack.OnCallID, "step_done", "hop1.provision-new-nodes")
	p.OpenThread(parent.thread)
	p.ClickButton(parent.ts, "step_done")
	appr := waitButton(t, page, localslack.Lead1ID, "step_approve", "hop1.termination-on")
	p.ActAs(localslack.Lead1ID)
	p.OpenThread(appr.thread)
	p.ClickButton(appr.ts, "step_approve")
	// Approving asks first, as Slack's confirm dialog does.
	if title := p.ConfirmTitle(); title != "Approve this step?" {
		t.Errorf("confirm dialog %q, want \"Approve this step?\"", title)
	}
	p.Confirm()
	p.WaitText("Approved by")
	p.Screenshot("demo-approved.png")
	// The bot recorded the lead's approval of the outage group.
	adminAddr := regexp.MustCompile(`Bot admin:\s+(\S+)`).FindStringSubmatch(text)
	if adminAddr == nil {
		t.Fatalf("the banner lacks the bot's admin address:\n%s", text)
	}
	approved := false
	for end := time.Now().Add(30 * time.Second); !approved && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		runs, err := admin.NewClient(adminAddr[1]).Runs(context.Background(), store.RunFilter{Limit: 1})
		if err != nil || len(runs) == 0 {
			continue
		}
		full, err := admin.NewClient(adminAddr[1]).Run(context.Background(), runs[0].ID)
		if err != nil {
			continue
		}
		r, err := ReadRun(full)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range r.Approvals["hop1.termination-on"] {
			approved = approved || a.User == localslack.Lead1ID
		}
	}
	if !approved {
		t.Errorf("the approval clicked on the page is not in the bot's run")
	}

	// Ctrl-C.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("kongbot demo exited with %v after SIGINT: %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("kongbot demo still running 60s after SIGINT")
	}
	if err := syscall.Kill(-cmd.Process.Pid, 0); err == nil {
		t.Errorf("processes of the demo's group are still running")
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", a)
		}
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the demo's files %s are still there", dir[1])
	}
	if left := processesMentioning(dir[1]); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

type shownButton struct{ ts, thread string }

// waitButton reads the page's own state as user until a kongbot button
// actionID for step shows in a thread.
func waitButton(t *testing.T, page, user, actionID, step string) shownButton {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var st struct {
			Channels []struct {
				ID      string                          `json:"id"`
				Threads map[string][]localslack.Message `json:"threads"`
			} `json:"channels"`
		}
		if err := getJSON(page+"ui/state?user="+user, &st); err == nil {
			for _, c := range st.Channels {
				for parent, msgs := range c.Threads {
					for _, m := range msgs {
						for _, b := range m.Buttons() {
							if v, ok := ButtonRun(b); ok && v.Step == step && b.ActionID == actionID {
								return shownButton{ts: m.TS, thread: parent}
							}
						}
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %q button for %s on the page after 90s", actionID, step)
	return shownButton{}
}

func getJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.Unmarshal(raw, v)
}

// processesMentioning lists processes whose command line names path.
func processesMentioning(path string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(raw), "\x00", " ")
		if strings.Contains(cl, path) {
			out = append(out, strings.TrimSpace(cl))
		}
	}
	return out
}
