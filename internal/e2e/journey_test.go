package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-cmp/cmp"
)

// Texts the UIs must show, word for word, as the Cisco products do.
const (
	textCommitted    = "Success — Your changes have been committed."
	textPending      = "You have uncommitted changes."
	textRegistering  = "A request to register your appliance with the Cisco Threat Response portal is initiated."
	textRegistered   = "Your appliance is successfully registered with Cisco Threat Response."
	textDeregistered = "A request to deregister your appliance from the Cisco Threat Response portal is initiated."
	textBadToken     = "The registration failed because of an invalid or expired token"
	textTROff        = "Threat Response is not enabled for organisation"
)

// Texts that explain a troubleshooting case in Sightline's own words.
const (
	// textAuditOtherRegion is how the AMERICAS exchange's Audit Log explains
	// the refusal of a token that the EUROPE exchange issued.
	textAuditOtherRegion = "(not issued by this exchange, region AMERICAS: mistyped, or from another region)"
	// textModuleOtherRegion is how Investigate explains a module whose
	// device is registered in another region's exchange than the console's.
	textModuleOtherRegion = "is not registered with this exchange: check the module's Registered Device and that the console uses the device's region."
	// minVersion is the minimum device version of the exchanges of the
	// second serve, above the gateway's own.
	minVersion = "1.0"
)

// textTooOld is the gateway's detail when the exchange refuses its version.
var textTooOld = regexp.MustCompile(`^The device version \S+ is older than the minimum this exchange accepts, ` +
	regexp.QuoteMeta(minVersion) + `: upgrade the device and register again$`)

// moduleName is the name the journey gives the console's module.
const moduleName = "Email Security Appliance"

// TestBrowserJourney walks the seed's journey in Chromium by clicking through
// the three UIs of a fresh serve, then each troubleshooting case of the seed,
// and saves a screenshot of each step.
func TestBrowserJourney(t *testing.T) {
	chromium := chromiumPath(t)
	bin := buildSightline(t)
	s := startServe(t, bin)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)
	b := newBrowser(t, chromium, dir)

	// Step 1: the gateway's Cloud Service Settings say Threat Response is
	// disabled.
	gw := b.newTab(s.gateway + "/")
	gw.signIn("admin", adminPassword)
	gw.menu("Network", "Cloud Service Settings")
	if got := gw.text(`dl.cloud-settings`); !regexp.MustCompile(`Threat Response:\s*Disabled`).MatchString(got) {
		t.Fatalf("Cloud Service Settings show %q, want Threat Response: Disabled", got)
	}
	gw.shot("cloud-service-disabled")

	// Steps 2–3: Edit Settings, Enable, the AMERICAS server, Submit.
	gw.clickButton("//main", "Edit Settings")
	gw.do("tick Enable", chromedp.Click(chromedp.ID("enabled")))
	if !gw.eval(`document.querySelector("#enabled").checked`) {
		t.Fatalf("the Enable box is not ticked after a click")
	}
	gw.choose("server", "AMERICAS")
	gw.shot("edit-settings")
	gw.clickButton("//main//form", "Submit")

	// Troubleshooting "the gateway does not ask for a token": the change
	// waits for a commit, and until then there is no token field.
	if got := gw.text(`.pending`); !strings.Contains(got, textPending) {
		t.Errorf("banner after Submit = %q, want %q", got, textPending)
	}
	if gw.eval(`!!document.querySelector("#token")`) {
		t.Errorf("the gateway asks for a registration token before the change is committed")
	}
	gw.shot("uncommitted-no-token-field")

	// Step 4: Commit Changes, with a comment.
	gw.clickButton(`//div[contains(@class,"pending")]`, "Commit Changes")
	if got := gw.text(`#main ul.changed`); got != "Cloud Service Settings" {
		t.Errorf("Commit Changes lists the changes %q, want Cloud Service Settings", got)
	}
	gw.typeInto("comment", "Enable Threat Response with the AMERICAS server")
	gw.shot("commit-changes")
	gw.clickButton(`//form[@action="/commit"]`, "Commit Changes")
	if got := gw.text(`#main .banner-success`); got != textCommitted {
		t.Errorf("banner after the commit = %q, want %q", got, textCommitted)
	}
	if got := gw.text(`dl.cloud-settings`); !regexp.MustCompile(`Threat Response:\s*Enabled`).MatchString(got) {
		t.Errorf("after the commit the settings show %q, want Threat Response: Enabled", got)
	}
	gw.shot("committed")
	gw.reloadUntil("wait for the Registration Token field", `!!document.querySelector("#token")`)

	// Step 5: in the console, the Settings gear, Devices, Manage Devices
	// opens the console's exchange (AMERICAS), which generates the token.
	console := b.newTab(s.console + "/")
	console.signIn("admin", adminPassword)
	// The gear works from the keyboard: Enter opens it, Escape closes it and
	// leaves the focus on it.
	gearOpen := `document.querySelector("#nav details.nav-icon").open`
	console.do("focus the Settings gear and press Enter", chromedp.Focus(gearSel), chromedp.KeyEvent(kb.Enter))
	if !console.eval(gearOpen) {
		t.Errorf("Enter on the focused Settings gear does not open it")
	}
	console.do("press Escape", chromedp.KeyEvent(kb.Escape))
	if console.eval(gearOpen) || !console.eval(`document.activeElement === document.querySelector("#nav details.nav-icon > summary")`) {
		t.Errorf("Escape does not close the Settings gear and keep the focus on it")
	}
	console.openGear()
	if got, want := console.texts(`#nav details.nav-icon[open] a`), []string{"Your Account", "Devices", "API Clients", "Modules", "Users"}; !cmp.Equal(got, want) {
		t.Errorf("the Settings gear opens %q, want %q", got, want)
	}
	console.shot("console-settings-gear")
	console.click(gearSel + `/following-sibling::ul//a[normalize-space()="Devices"]`)
	if got := console.text(`#main h1`); got != "Devices" {
		t.Fatalf("Settings > Devices shows the page %q", got)
	}
	console.shot("console-devices")
	ex := console.clickNewTab(`//main//a[normalize-space()="Manage Devices"]`)
	ex.signIn("admin", adminPassword)
	if got := ex.text(`.brand .role`); got != "Exchange · AMERICAS" {
		t.Errorf("Manage Devices opens %q, want the AMERICAS exchange", got)
	}
	token := generateToken(t, ex)
	ex.shot("americas-token")

	// Troubleshooting "invalid or expired token": a token from the EUROPE
	// exchange does not register a gateway that chose AMERICAS. The gateway
	// only says that the token is invalid; the AMERICAS exchange's Audit Log
	// says that it is another region's.
	eu := b.newTab(s.europe + "/devices")
	eu.signIn("admin", adminPassword)
	europeToken := generateToken(t, eu)
	gw.typeInto("token", europeToken)
	gw.clickButton("//main//form", "Register")
	gw.reloadUntil("wait for the registration to fail",
		`document.querySelector("#main").innerText.includes(`+strconv.Quote(textBadToken)+`)`)
	gw.do("come back to the page", chromedp.Reload())
	if got := gw.text(`#main .banner-error`); got != textBadToken {
		t.Errorf("error banner after a EUROPE token = %q, want %q", got, textBadToken)
	}
	gw.shot("invalid-token")
	ex.menu("Administration", "Audit Log")
	audit := ex.table(`#main table tbody tr`)
	if len(audit) == 0 || len(audit[0]) != 8 || audit[0][3] != "device.register" || audit[0][5] != "failure" ||
		audit[0][6] != "token_unknown" || !strings.HasSuffix(audit[0][7], textAuditOtherRegion) {
		t.Errorf("the latest Audit Log entry = %q, want a failed register whose detail ends %q", audit, textAuditOtherRegion)
	}
	ex.shot("exchange-audit-other-region")

	// Step 6: the AMERICAS token pasted into the gateway registers it.
	gw.typeInto("token", token)
	gw.clickButton("//main//form", "Register")
	if got := gw.text(`#main .banner-success`); !strings.Contains(got, textRegistering) {
		t.Errorf("banner after Register = %q, want %q", got, textRegistering)
	}
	gw.shot("register-requested")
	gw.reloadUntil("wait for the registered state", `[...document.querySelectorAll("#main dt")].some(e => e.innerText === "Device ID:")`)
	if got := gw.text(`//main//dt[.="Status:"]/following-sibling::dd[1]`); got != textRegistered {
		t.Errorf("status after registering = %q, want %q", got, textRegistered)
	}
	deviceID := gw.text(`//main//dt[.="Device ID:"]/following-sibling::dd[1]`)
	if deviceID == "" {
		t.Fatal("the registered state shows an empty Device ID")
	}
	gw.shot("registered")

	// Step 7: the exchange lists the gateway, registered and connected, and
	// draws the devices by status.
	ex.menu("Devices", "Devices")
	ex.reloadUntil("wait for the device's tunnel", `document.querySelector("#main table.devices") !== null &&
		document.querySelector("#main table.devices tbody").innerText.includes("Connected")`)
	rows := ex.table(`#main table.devices tbody tr:not([hidden])`)
	if len(rows) != 1 || len(rows[0]) != 8 {
		t.Fatalf("Devices rows = %q, want one device with 8 columns", rows)
	}
	if typ, status := rows[0][3], rows[0][5]; typ != "ESA" || status != "Registered Connected" {
		t.Errorf("device's Type, Status = %q, %q, want ESA, Registered Connected", typ, status)
	}
	deviceName := rows[0][2]
	chart := "1 device: 1 Registered and connected; 0 Registered, tunnel down."
	if got := ex.texts(`#main svg[role=img] desc`); !cmp.Equal(got, []string{chart}) {
		t.Errorf("the devices-by-status chart describes %q, want %q", got, chart)
	}
	ex.do("show the device's details", chromedp.Click(`//main//table//button[@data-expand]`))
	if got := ex.text(`//main//table//dt[.="ID"]/following-sibling::dd[1]`); got != deviceID {
		t.Errorf("the exchange lists device ID %q, want the gateway's %q", got, deviceID)
	}
	ex.shot("exchange-devices")

	// Step 8, troubleshooting first: with Threat Response off in the
	// exchange, the console cannot list the device and says why.
	console.link("Modules")
	console.clickButton("//main", "Add New Module")
	console.clickButton(`//section[h2[normalize-space()="Email Security Appliance"]]`, "Add New Module")
	if got := console.text(`#main .tr-off`); !strings.Contains(got, textTROff) || !strings.Contains(got, "Cloud Services") {
		t.Errorf("module form with Threat Response off says %q, want %q and where to turn it on", got, textTROff)
	}
	console.shot("console-threat-response-off")

	ex.menu("Cloud Services", "Cloud Services")
	ex.do("turn Threat Response on", chromedp.Click(`//main//input[@name="threat_response"]`))
	ex.clickButton("//main//form", "Save")
	if got := ex.text(`#main .card`); !strings.Contains(got, "Currently enabled") {
		t.Errorf("Cloud Services after Save = %q, want Threat Response currently enabled", got)
	}
	ex.shot("exchange-cloud-services")

	console.do("reload the module form", chromedp.Reload())
	console.typeInto("name", moduleName)
	console.choose("device", deviceName)
	if got := console.eval(`document.querySelector("#device").value === ` + strconv.Quote(deviceID)); !got {
		t.Fatalf("Registered Device offers no option for the gateway's device %s", deviceID)
	}
	console.shot("console-add-module")
	console.clickButton("//main//form", "Save")
	mods := console.table(`#main table.modules tbody tr`)
	if len(mods) != 1 || len(mods[0]) < 3 || mods[0][0] != moduleName || !strings.HasPrefix(mods[0][2], deviceName+" (ESA") {
		t.Fatalf("Your Configurations rows = %q, want the module %q for the device %s", mods, moduleName, deviceName)
	}
	console.shot("console-modules")

	// Verification: a test message by SMTP, found in Message Tracking by
	// "subject begins with".
	sendTestMessage(t, s.smtp, "test test")
	gw.menu("Monitor", "Message Tracking")
	gw.do("choose Subject Begins With", chromedp.SetValue(`//main//select[@name="subject_op"]`, "begins_with"))
	gw.typeInto("subject", "test")
	gw.clickButton(`//form[input[@name="search"]]`, "Search")
	gw.reloadUntil("wait for the test message to be delivered",
		`[...document.querySelectorAll("#main table.results td.state")].some(e => e.innerText.includes("Delivered"))`)
	found := gw.table(`#main table.results tbody tr`)
	if len(found) != 1 || len(found[0]) != 7 || found[0][4] != "test test" || !strings.HasPrefix(found[0][5], "Delivered") {
		t.Errorf("Message Tracking rows = %q, want the test message, Last State Delivered", found)
	}
	gw.shot("message-tracking")

	// Investigate email_subject:"test test": the sighting row of the module.
	console.link("Investigate")
	console.typeInto("q", `email_subject:"test test"`)
	console.clickButton("//main//form", "Investigate")
	head := console.table(`#main table.sightings thead tr`)
	if want := [][]string{{"Module", "Observed", "Description", "Confidence", "Severity", "Details"}}; len(head) == 0 || !cmp.Equal(head[:1], want) {
		t.Errorf("sightings table header = %q, want %q", head, want)
	}
	sightings := console.table(`#main table.sightings tbody tr:not(.json-row)`)
	if len(sightings) == 0 {
		t.Fatal(`Investigate email_subject:"test test" shows no sighting`)
	}
	row := sightings[0]
	if len(row) != 6 || !strings.Contains(row[0], moduleName) || !regexp.MustCompile(`^(just now|\d+ minutes? ago)$`).MatchString(row[1]) ||
		!regexp.MustCompile(`^\w+ message \(Delivered\)`).MatchString(row[2]) || row[3] != "High" || row[4] != "Low" {
		t.Errorf("sighting row = %q, want Module %q, Observed just now, Description \"… message (Delivered)\", Confidence High, Severity Low", row, moduleName)
	}
	console.shot("investigate-sighting")

	// Troubleshooting "Investigate shows no gateway data", wrong syntax: a
	// malformed query shows its error.
	console.typeInto("q", `emial:"x"`)
	console.clickButton("//main//form", "Investigate")
	if got := console.text(`#main .banner-error`); !strings.Contains(got, `unknown observable type "emial"`) {
		t.Errorf("error banner for emial:\"x\" = %q, want it to name the unknown type", got)
	}
	console.shot("investigate-query-error")

	// Troubleshooting "Investigate shows no gateway data", wrong region: the
	// gateway moves to EUROPE, registered with the EUROPE token, while the
	// console and its module stay with AMERICAS.
	gw.menu("Network", "Cloud Service Settings")
	if msg := gw.clickConfirm(`//main//form//button[normalize-space()="Deregister"]`); !strings.HasPrefix(msg, "Deregister this appliance") {
		t.Errorf("Deregister asks %q, want a confirmation", msg)
	}
	if got := gw.text(`#main .banner-success`); !strings.Contains(got, textDeregistered) {
		t.Errorf("banner after Deregister = %q, want %q", got, textDeregistered)
	}
	gw.reloadUntil("wait for the deregistration", `!!document.querySelector("#token")`)
	gw.clickButton("//main", "Edit Settings")
	gw.choose("server", "EUROPE")
	gw.clickButton("//main//form", "Submit")
	gw.clickButton(`//div[contains(@class,"pending")]`, "Commit Changes")
	gw.typeInto("comment", "Move Threat Response to the EUROPE server")
	gw.clickButton(`//form[@action="/commit"]`, "Commit Changes")
	if got := gw.text(`dl.cloud-settings`); !regexp.MustCompile(`Threat Response Server:\s*EUROPE`).MatchString(got) {
		t.Errorf("after the commit the settings show %q, want the EUROPE server", got)
	}
	gw.reloadUntil("wait for the EUROPE exchange to ask for a token", `!!document.querySelector("#token")`)
	gw.typeInto("token", europeToken)
	gw.clickButton("//main//form", "Register")
	gw.reloadUntil("wait for the registration in EUROPE", `[...document.querySelectorAll("#main dt")].some(e => e.innerText === "Device ID:")`)

	console.typeInto("q", `email_subject:"test test"`)
	console.clickButton("//main//form", "Investigate")
	modErr := console.text(`#main .mod-errors`)
	if !strings.Contains(modErr, "Device "+deviceID+" "+textModuleOtherRegion) {
		t.Errorf("Investigate with the gateway in EUROPE shows %q, want %q", modErr, "Device "+deviceID+" "+textModuleOtherRegion)
	}
	if n := console.table(`#main table.sightings tbody tr:not(.json-row)`); len(n) != 0 {
		t.Errorf("Investigate with the gateway in EUROPE shows sightings %q, want none", n)
	}
	console.shot("investigate-other-region")

	// The console at a phone's width: the menu lists the pages and the
	// Settings gear opens in it.
	console.link("Modules")
	console.do("narrow the window to a phone's", chromedp.EmulateViewport(390, 844))
	console.do("open the menu", chromedp.Click(`//button[normalize-space()="Menu"]`))
	console.openGear()
	console.shot("console-phone-menu")
	console.do("widen the window again", chromedp.ResetViewport())

	// Troubleshooting, versions: an exchange that accepts devices from
	// version 1.0 refuses this gateway and names the minimum. A second serve
	// runs with --min-version, its UIs on "localhost" so that the browser
	// keeps its cookies apart from the first one's.
	old := startServe(t, bin, "--min-version", minVersion).onHost("localhost")
	gw2 := b.newTab(old.gateway + "/network/cloud-service")
	gw2.signIn("admin", adminPassword)
	gw2.clickButton("//main", "Edit Settings")
	gw2.do("tick Enable", chromedp.Click(chromedp.ID("enabled")))
	gw2.choose("server", "AMERICAS")
	gw2.clickButton("//main//form", "Submit")
	gw2.clickButton(`//div[contains(@class,"pending")]`, "Commit Changes")
	gw2.clickButton(`//form[@action="/commit"]`, "Commit Changes")
	gw2.reloadUntil("wait for the Registration Token field", `!!document.querySelector("#token")`)
	ex2 := b.newTab(old.americas + "/devices")
	ex2.signIn("admin", adminPassword)
	token2 := generateToken(t, ex2)
	gw2.typeInto("token", token2)
	gw2.clickButton("//main//form", "Register")
	gw2.reloadUntil("wait for the registration to be refused", `!!document.querySelector("#main .banner-error .hint")`)
	gw2.do("come back to the page", chromedp.Reload())
	if got := gw2.text(`#main .banner-error .hint`); !textTooOld.MatchString(got) {
		t.Errorf("the gateway explains the refusal with %q, want it to match %q", got, textTooOld)
	}
	gw2.shot("version-below-minimum")
}

// generateToken asks the exchange the tab shows for a token for one device
// that expires in an hour, the default, and returns it as the page shows it.
func generateToken(t *testing.T, ex *tab) string {
	t.Helper()
	ex.clickButton("//main", "Add Devices and Generate Tokens")
	ex.typeInto("devices", "1")
	if got := ex.value("expiry"); got != "1h" {
		t.Errorf("Token expiration defaults to %q, want 1h", got)
	}
	ex.clickButton("//main//form", "Continue")
	token := ex.value("token")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(token) {
		t.Fatalf("the exchange shows token %q, want 32 hex digits", token)
	}
	return token
}
