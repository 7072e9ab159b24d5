package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// stepTimeout bounds every browser step, waits included.
const stepTimeout = 30 * time.Second

// chromiumPath returns Debian's Chromium: SIGHTLINE_TEST_CHROMIUM, else
// `chromium` on the PATH. When there is none the test skips, or fails with
// CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SIGHTLINE_TEST_CHROMIUM")
	if path == "" {
		path = "chromium"
	}
	found, err := exec.LookPath(path)
	if err == nil {
		return found
	}
	msg := fmt.Sprintf("no Chromium (%v): install Debian's chromium or set SIGHTLINE_TEST_CHROMIUM to its path", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshotDir returns SIGHTLINE_SCREENSHOTS, created if need be, else a
// temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SIGHTLINE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}

// browser is one headless Chromium with a fresh profile, and the numbered
// screenshots of the steps its tabs walk.
type browser struct {
	t     *testing.T
	ctx   context.Context // the browser's; each tab derives its own
	dir   string          // where the screenshots go
	shots int             // screenshots taken so far
	front *tab            // the tab in front, nil before the first step
	tabs  int             // tabs opened so far
}

// newBrowser starts Chromium with the flags of DEVELOPERS and a fresh user
// data directory; cleanup stops it.
func newBrowser(t *testing.T, execPath, dir string) *browser {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000), // wide enough for the full navigation bar
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, within the allocator's 20 s to print
	// its address, and binds it to ctx, which has no deadline; each step then
	// gets its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", execPath, err)
	}
	return &browser{t: t, ctx: ctx, dir: dir}
}

// tab is one browser tab, for one role's UI, as a person keeps them open.
type tab struct {
	b   *browser
	ctx context.Context
}

// newTab opens a tab at url; the first is the one the browser started with.
func (b *browser) newTab(url string) *tab {
	b.t.Helper()
	tb := &tab{b: b, ctx: b.ctx}
	if b.tabs++; b.tabs > 1 {
		ctx, cancel := chromedp.NewContext(b.ctx)
		b.t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil { // opens the tab, for as long as ctx
			b.t.Fatalf("open a tab: %v", err)
		}
		tb.ctx = ctx
	}
	tb.do("open "+url, chromedp.Navigate(url))
	return tb
}

// step returns the context of one step in the tab, bounded by stepTimeout,
// after bringing the tab to the front if another one is, as a person
// switches tabs: a background tab is not rendered.
func (tb *tab) step() (context.Context, context.CancelFunc) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	if tb.b.front == tb {
		return ctx, cancel
	}
	id := chromedp.FromContext(tb.ctx).Target.TargetID
	if _, err := chromedp.CallBrowser(ctx, target.ActivateTarget, target.ActivateTargetParams{TargetID: id}); err != nil {
		cancel()
		tb.b.t.Fatalf("bring tab %s to the front: %v", id, err)
	}
	tb.b.front = tb
	return ctx, cancel
}

// do runs steps in the tab within stepTimeout; on an error it saves a
// screenshot of the page and ends the test with what it was doing.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fail(what, err)
	}
}

// fail saves a screenshot of the page, then ends the test with what went
// wrong and the page's location and text.
func (tb *tab) fail(what string, err error) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	name := "failed-" + strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(what), "-"), "-")
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		tb.b.shots++
		path := filepath.Join(tb.b.dir, fmt.Sprintf("%02d-%s.png", tb.b.shots, name))
		if os.WriteFile(path, png, 0o644) == nil {
			tb.b.t.Logf("screenshot of the failure: %s", path)
		}
	}
	tb.b.t.Fatalf("%s: %v\npage %s:\n%s", what, err, loc, body)
}

// load runs trigger, a click that submits a form or follows a link, and
// waits for the page it leads to.
func (tb *tab) load(what string, trigger chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	tb.do(what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, trigger)(ctx, t)
		return err
	}))
}

// click clicks the element sel selects and waits for the page it leads to.
func (tb *tab) click(sel string) {
	tb.b.t.Helper()
	tb.load("click "+sel, chromedp.Click(sel))
}

// clickButton clicks the button or link whose text is label, within the
// element scope selects (an XPath), and waits for the next page.
func (tb *tab) clickButton(scope, label string) {
	tb.b.t.Helper()
	tb.click(fmt.Sprintf(`%s//*[(self::button or self::a) and normalize-space()=%q]`, scope, label))
}

// menu opens a section of the navigation bar and follows one of its items.
func (tb *tab) menu(section, item string) {
	tb.b.t.Helper()
	tb.do("open the "+section+" menu", chromedp.Click(fmt.Sprintf(`//nav//button[normalize-space()=%q]`, section)))
	tb.click(fmt.Sprintf(`//nav//a[normalize-space()=%q]`, item))
}

// link follows a link of the navigation bar, e.g. the console's Modules.
func (tb *tab) link(label string) {
	tb.b.t.Helper()
	tb.click(fmt.Sprintf(`//nav//a[contains(@class,"nav-title") and normalize-space()=%q]`, label))
}

// gearSel selects the Settings gear of the navigation bar.
const gearSel = `//nav//details/summary[@aria-label="Settings"]`

// openGear clicks the Settings gear and waits for its menu to show.
func (tb *tab) openGear() {
	tb.b.t.Helper()
	tb.do("open the Settings gear", chromedp.Click(gearSel),
		chromedp.WaitVisible(gearSel+`/following-sibling::ul//a`))
}

// choose picks the option of the drop-down list sel that starts with text,
// by typing it into the focused list as a person does, and checks the
// choice.
func (tb *tab) choose(sel chromedp.ID, text string) {
	tb.b.t.Helper()
	tb.do(fmt.Sprintf("type %q into the list #%s", text, sel), chromedp.SendKeys(sel, text))
	js := fmt.Sprintf(`(s => s.selectedIndex >= 0 && s.options[s.selectedIndex].text.startsWith(%q))(document.getElementById(%q))`, text, sel)
	if !tb.eval(js) {
		tb.fail(fmt.Sprintf("choose %q in #%s", text, sel), errors.New("another option is selected"))
	}
}

// clickConfirm clicks the element sel selects, accepts the confirmation
// dialog it opens as a person presses OK, and waits for the next page. It
// returns the dialog's message.
func (tb *tab) clickConfirm(sel string) string {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	msg := make(chan string, 1)
	go func() {
		for ev, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			msg <- ev.Message
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			return
		}
	}()
	tb.load("click "+sel+" and confirm", chromedp.Click(sel))
	select {
	case m := <-msg:
		return m
	default:
		tb.fail("click "+sel+" and confirm", errors.New("no confirmation dialog opened"))
		return ""
	}
}

// clickNewTab clicks the link sel selects, which opens its page in a new
// tab, and returns that tab.
func (tb *tab) clickNewTab(sel string) *tab {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	opened := chromedp.WaitNewTarget(tb.ctx, func(info *target.Info) bool { return info.URL != "" && info.URL != "about:blank" })
	if err := chromedp.Do(ctx, chromedp.Click(sel)); err != nil {
		tb.fail("click "+sel, err)
	}
	var id target.ID
	select {
	case id = <-opened:
	case <-ctx.Done():
		tb.fail("click "+sel, errors.New("no new tab opened"))
	}
	if id == "" {
		tb.fail("click "+sel, errors.New("no new tab opened"))
	}
	tctx, tcancel := chromedp.NewContext(tb.b.ctx, chromedp.WithTargetID(id))
	tb.b.t.Cleanup(tcancel)
	if err := chromedp.Do(tctx); err != nil { // attaches to the tab, for as long as tctx
		tb.fail("attach to the new tab", err)
	}
	tb.b.tabs++
	nt := &tab{b: tb.b, ctx: tctx}
	nt.do("wait for the new tab's page", chromedp.WaitReady("body"))
	return nt
}

// signIn fills the sign-in form the tab shows and submits it.
func (tb *tab) signIn(user, password string) {
	tb.b.t.Helper()
	tb.do("fill the sign-in form", chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("passphrase"), password))
	tb.clickButton("//main", "Sign in")
	if tb.eval(`!!document.querySelector("#passphrase")`) {
		tb.fail("sign in as "+user, errors.New("the sign-in form is still shown"))
	}
}

// typeInto replaces the value of the field sel selects by typing text.
func (tb *tab) typeInto(sel chromedp.ID, text string) {
	tb.b.t.Helper()
	tb.do(fmt.Sprintf("type %q into #%s", text, sel),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, sel)),
		chromedp.SendKeys(sel, text))
}

// text returns the visible text of the element sel selects.
func (tb *tab) text(sel string) string {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		tb.fail("read the text of "+sel, err)
	}
	return s
}

// value returns the value of the form field sel selects.
func (tb *tab) value(sel chromedp.ID) string {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(sel))
	if err != nil {
		tb.fail("read the value of #"+string(sel), err)
	}
	return s
}

// eval returns the boolean value of a JavaScript expression on the page.
func (tb *tab) eval(expr string) bool {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		tb.fail("evaluate "+expr, err)
	}
	return ok
}

// table returns the text of the cells of the rows rows selects (a CSS
// selector), one slice a row: the cells' textContent with space collapsed,
// as the HTML has it (CSS may change the case it is shown in).
func (tb *tab) table(rows string) [][]string {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q), r =>
		Array.from(r.cells, c => c.textContent.replace(/\s+/g, " ").trim()))`, rows)
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](js))
	if err != nil {
		tb.fail("read the table rows "+rows, err)
	}
	return cells
}

// texts returns the text of every element the CSS selector sel selects, as
// the page shows it (an SVG element's text content).
func (tb *tab) texts(sel string) []string {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q), e => (e.innerText ?? e.textContent).trim())`, sel)
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		tb.fail("read the texts of "+sel, err)
	}
	return out
}

// reloadUntil reloads the page until the JavaScript expression cond holds,
// for pages that show a state reached in the background. It fails the test
// after stepTimeout.
func (tb *tab) reloadUntil(what, cond string) {
	tb.b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for !tb.eval(cond) {
		if time.Now().After(deadline) {
			tb.fail(what, fmt.Errorf("%s is still false after %v", cond, stepTimeout))
		}
		tb.do("wait before reloading", chromedp.Sleep(100*time.Millisecond))
		tb.do("reload", chromedp.Reload())
	}
}

// shot saves a PNG of the whole page as NN-name.png, NN counting the steps.
func (tb *tab) shot(name string) {
	tb.b.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.fail("screenshot "+name, err)
	}
	tb.b.shots++
	path := filepath.Join(tb.b.dir, fmt.Sprintf("%02d-%s.png", tb.b.shots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.b.t.Fatalf("save screenshot: %v", err)
	}
}
