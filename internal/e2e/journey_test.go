package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// Texts the UIs must show, word for word, as the Cisco products do.
const (
	textCommitted   = "Success — Your changes have been committed."
	textPending     = "You have uncommitted changes."
	textRegistering = "A request to register your appliance with the Cisco Threat Response portal is initiated."
	textRegistered  = "Your appliance is successfully registered with Cisco Threat Response."
	textBadToken    = "The registration failed because of an invalid or expired token"
	textTROff       = "Threat Response is not enabled for organisation"
)

// moduleName is the name the journey gives the console's module.
const moduleName = "Email Security Appliance"

// TestBrowserJourney walks the seed's journey in Chromium by clicking through
// the three UIs of a fresh serve, with each troubleshooting case on the way,
// and saves a screenshot of each step.
func TestBrowserJourney(t *testing.T) {
	chromium := chromiumPath(t)
	s := startServe(t, buildSightline(t))
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
	gw.do("tick Enable and choose AMERICAS", chromedp.Click(chromedp.ID("enabled")),
		chromedp.SetValue(chromedp.ID("server"), "AMERICAS"))
	if !gw.eval(`document.querySelector("#enabled").checked`) {
		t.Fatalf("the Enable box is not ticked after a click")
	}
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

	// Troubleshooting "invalid or expired token": a token from the EUROPE
	// exchange does not register a gateway that chose AMERICAS.
	ex := b.newTab(s.europe + "/devices")
	ex.signIn("admin", adminPassword)
	europeToken := generateToken(t, ex)
	ex.shot("europe-token")
	gw.typeInto("token", europeToken)
	gw.clickButton("//main//form", "Register")
	gw.reloadUntil("wait for the registration to fail",
		`document.querySelector("#main").innerText.includes(`+strconv.Quote(textBadToken)+`)`)
	if got := gw.text(`#main .banner-error`); !strings.Contains(got, textBadToken) {
		t.Errorf("error banner after a EUROPE token = %q, want %q", got, textBadToken)
	}
	gw.shot("invalid-token")

	// Step 5: the AMERICAS exchange generates the token, read from its page.
	ex.do("open the AMERICAS exchange", chromedp.Navigate(s.americas+"/devices"))
	ex.signIn("admin", adminPassword)
	token := generateToken(t, ex)
	ex.shot("americas-token")

	// Step 6: the token pasted into the gateway registers it.
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

	// Step 7: the exchange lists the gateway, registered and connected.
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
	ex.do("show the device's details", chromedp.Click(`//main//table//button[@data-expand]`))
	if got := ex.text(`//main//table//dt[.="ID"]/following-sibling::dd[1]`); got != deviceID {
		t.Errorf("the exchange lists device ID %q, want the gateway's %q", got, deviceID)
	}
	ex.shot("exchange-devices")

	// Step 8, troubleshooting first: with Threat Response off in the
	// exchange, the console cannot list the device and says why.
	console := b.newTab(s.console + "/")
	console.signIn("admin", adminPassword)
	console.menu("Modules", "Add New Module")
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
	console.do("pick the device", chromedp.SetValue(chromedp.ID("device"), deviceID))
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
	console.menu("Investigate", "Investigate")
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

	// Troubleshooting: a malformed query shows its error.
	console.typeInto("q", `emial:"x"`)
	console.clickButton("//main//form", "Investigate")
	if got := console.text(`#main .banner-error`); !strings.Contains(got, `unknown observable type "emial"`) {
		t.Errorf("error banner for emial:\"x\" = %q, want it to name the unknown type", got)
	}
	console.shot("investigate-query-error")
}

// generateToken asks the exchange the tab shows for a token for one device
// that expires in an hour, and returns it as the page shows it.
func generateToken(t *testing.T, ex *tab) string {
	t.Helper()
	ex.clickButton("//main", "Add Devices and Generate Tokens")
	ex.typeInto("devices", "1")
	ex.do("choose 1 hour", chromedp.SetValue(chromedp.ID("expiry"), "1h"))
	ex.clickButton("//main//form", "Continue")
	token := ex.value("token")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(token) {
		t.Fatalf("the exchange shows token %q, want 32 hex digits", token)
	}
	return token
}
