// Package browser drives localslack's web page in headless Chromium (Debian's
// chromium package, through chromedp) for browser tests: act as a seeded
// user, type in the composer, open threads, click Block Kit buttons, answer
// confirm dialogs, wait for text, and save screenshots as test artifacts.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Page is localslack's page open in a headless Chromium tab.
type Page struct {
	t   testing.TB
	ctx context.Context
	// Timeout bounds each wait; default 15s.
	Timeout time.Duration
	arts    string
}

// Chromium returns the path of a Chromium binary on PATH, or "".
func Chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// ArtifactDir is where screenshots go: $KONGBOT_ARTIFACTS/<test name> when
// that is set, else a temporary directory of the test.
func ArtifactDir(t testing.TB) string {
	if base := os.Getenv("KONGBOT_ARTIFACTS"); base != "" {
		dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("browser: artifact dir: %v", err)
		}
		return dir
	}
	return t.TempDir()
}

// Open starts headless Chromium with a fresh profile and loads url (the
// localslack page, Server.URL()). It skips the test when no Chromium binary
// exists (scripts/test.sh installs one). The browser stops at test cleanup.
func Open(t testing.TB, url string) *Page {
	t.Helper()
	bin := Chromium()
	if bin == "" {
		t.Skip("no chromium binary on PATH (scripts/test.sh installs Debian's chromium package); skipping the browser test")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	// The first action starts the browser; a timeout on it would bound the
	// browser's whole life, so the waits below each get their own.
	if err := chromedp.Do(bctx); err != nil {
		cancelB()
		cancelA()
		t.Fatalf("browser: starting %s: %v", bin, err)
	}
	t.Cleanup(func() { cancelB(); cancelA() })
	p := &Page{t: t, ctx: bctx, Timeout: 15 * time.Second}
	p.do("loading the page",
		chromedp.Navigate(url),
		waitJS(`document.querySelectorAll('[data-testid="user-switcher"] option').length > 0`, p.Timeout))
	return p
}

func waitJS(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

// clickJS waits for a visible, enabled element matching the CSS selector and
// clicks it in the same JavaScript turn. The page redraws messages in place
// on every change; finding a node and clicking it in two protocol calls
// could click a node the redraw had just replaced, and the click was lost.
func clickJS(sel string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return waitJS(`(() => { const el = document.querySelector(`+js(sel)+`);
		if (!el || el.disabled || el.offsetParent === null) return false;
		el.click(); return true; })()`, timeout)
}

func (p *Page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout+5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %s: %v\n%s", what, err, p.dump())
	}
}

// dump describes the page, to explain a failure.
func (p *Page) dump() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({errors: window.localslackErrors,
		acting: (document.querySelector('[data-testid="user-switcher"]') || {}).value,
		text: document.body.innerText.slice(0, 2000)})`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page: " + s
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Context is the browser tab's context, for chromedp actions of your own.
func (p *Page) Context() context.Context { return p.ctx }

// ActAs switches the page to act as the seeded user with this ID.
func (p *Page) ActAs(userID string) {
	p.t.Helper()
	p.do("acting as "+userID,
		chromedp.SetValue(chromedp.CSS(`[data-testid="user-switcher"]`), userID),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="user-switcher"]').dispatchEvent(new Event('change')), undefined`),
		waitJS(`document.querySelector('[data-testid="user-switcher"]').value === `+js(userID)+
			` && document.body.dataset.version !== undefined`, p.Timeout))
}

// Type types text into the channel composer and presses Enter; a line
// starting with "/" is sent as a slash command by the user acted as.
func (p *Page) Type(text string) {
	p.t.Helper()
	p.do("typing "+text, chromedp.SendKeys(chromedp.CSS(`[data-testid="composer-input"]`), text+kb.Enter))
}

// OpenThread opens the thread under the channel message parentTS.
func (p *Page) OpenThread(parentTS string) {
	p.t.Helper()
	sel := fmt.Sprintf(`[data-testid="thread-link"][data-thread-ts="%s"]`, parentTS)
	p.do("opening thread "+parentTS,
		clickJS(sel, p.Timeout),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-testid="thread-panel"][data-thread-ts="%s"]`, parentTS))))
}

// buttonSel finds the button in the thread panel first (a reply is shown
// there), else in the channel.
func buttonSel(ts, actionID string) string {
	return fmt.Sprintf(`[data-testid="thread-panel"]:not([hidden]) [data-ts="%[1]s"] [data-action-id="%[2]s"], `+
		`[data-testid="message-list"] [data-ts="%[1]s"] [data-action-id="%[2]s"]`, ts, actionID)
}

// ClickButton clicks the button actionID on the message ts. A button with a
// confirm dialog leaves the dialog open: call Confirm or Deny next.
func (p *Page) ClickButton(ts, actionID string) {
	p.t.Helper()
	sel := buttonSel(ts, actionID)
	p.do("clicking "+actionID+" on "+ts, clickJS(sel, p.Timeout))
}

// ConfirmTitle waits for the confirm dialog and returns its title.
func (p *Page) ConfirmTitle() string {
	p.t.Helper()
	p.do("waiting for the confirm dialog", chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-dialog"] [data-testid="confirm-ok"]`)))
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#confirm-title`)))
	if err != nil {
		p.t.Fatalf("browser: reading the confirm dialog: %v", err)
	}
	return title
}

// Confirm presses the confirm dialog's confirm button.
func (p *Page) Confirm() {
	p.t.Helper()
	p.do("confirming", clickJS(`[data-testid="confirm-ok"]`, p.Timeout),
		chromedp.WaitNotVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)))
}

// Deny presses the confirm dialog's cancel button.
func (p *Page) Deny() {
	p.t.Helper()
	p.do("denying", clickJS(`[data-testid="confirm-deny"]`, p.Timeout),
		chromedp.WaitNotVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)))
}

// OpenHome opens the app's Home tab (which sends app_home_opened).
func (p *Page) OpenHome() {
	p.t.Helper()
	p.do("opening App Home", chromedp.Click(chromedp.CSS(`[data-testid="nav-home"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="app-home"]`)))
}

// WaitJS waits until the JavaScript expression is truthy in the page.
func (p *Page) WaitJS(what, expr string) {
	p.t.Helper()
	p.do(what, waitJS(expr, p.Timeout))
}

// WaitMessageText waits until a message with ts (in the channel, a thread
// or ephemeral) shows text containing substr.
func (p *Page) WaitMessageText(ts, substr string) {
	p.t.Helper()
	p.WaitJS(fmt.Sprintf("message %s showing %q", ts, substr), fmt.Sprintf(
		`[...document.querySelectorAll('[data-ts=%s]')].some(m => m.textContent.includes(%s))`, js(ts), js(substr)))
}

// WaitText waits until substr appears anywhere on the page.
func (p *Page) WaitText(substr string) {
	p.t.Helper()
	p.WaitJS(fmt.Sprintf("page showing %q", substr), `document.body.innerText.includes(`+js(substr)+`)`)
}

// Screenshot saves a PNG of the page as name in ArtifactDir (and at every
// path in also), logs where, and returns the artifact path.
func (p *Page) Screenshot(name string, also ...string) string {
	p.t.Helper()
	if p.arts == "" {
		p.arts = ArtifactDir(p.t)
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		p.t.Fatalf("browser: screenshot: %v", err)
	}
	out := filepath.Join(p.arts, name)
	for _, path := range append([]string{out}, also...) {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			p.t.Fatalf("browser: writing screenshot: %v", err)
		}
		p.t.Logf("screenshot: %s", path)
	}
	return out
}

// ClickButtonIn clicks the button actionID inside the element matching the
// CSS selector scope (e.g. `[data-testid="app-home"]`).
func (p *Page) ClickButtonIn(scope, actionID string) {
	p.t.Helper()
	sel := fmt.Sprintf(`%s [data-action-id="%s"]`, scope, actionID)
	p.do("clicking "+actionID+" in "+scope, clickJS(sel, p.Timeout))
}

// ModalTitle waits for a modal view and returns its title.
func (p *Page) ModalTitle() string {
	p.t.Helper()
	p.do("waiting for the modal", chromedp.WaitVisible(chromedp.CSS(`[data-testid="modal"] [data-testid="modal-submit"]`)))
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#view-title`)))
	if err != nil {
		p.t.Fatalf("browser: reading the modal: %v", err)
	}
	return title
}

// ModalType types text into the modal's input (block_id, action_id).
func (p *Page) ModalType(blockID, actionID, text string) {
	p.t.Helper()
	sel := fmt.Sprintf(`[data-testid="modal-input"][data-block-id="%s"][data-action-id="%s"]`, blockID, actionID)
	p.do("typing into "+blockID, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// ModalSubmit presses the modal's submit button.
func (p *Page) ModalSubmit() {
	p.t.Helper()
	p.do("submitting the modal", chromedp.Click(chromedp.CSS(`[data-testid="modal-submit"]`)))
}
