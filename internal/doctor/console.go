package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// consoleModule is a module instance as GET /api/v1/modules lists it.
type consoleModule struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Name     string          `json:"name"`
	Enabled  bool            `json:"enabled"`
	Settings json.RawMessage `json:"settings"`
}

// consoleState is what the console told.
type consoleState struct {
	modules []consoleModule
	devices *exchangeclient.Devices // nil when the console cannot list them; devErr says why
	devErr  string
}

// probeConsole reads the console's modules and its exchange's devices;
// nil when the console cannot be asked.
func (d *doctor) probeConsole(ctx context.Context) *consoleState {
	if d.t.ConsoleURL == "" {
		return nil
	}
	a, ok := d.probe(ctx, "console", "Console", d.t.ConsoleURL, "/api/v1/modules", true, "sightline serve, or sightline console")
	if !ok {
		return nil
	}
	con := &consoleState{}
	if err := a.decode(&con.modules); err != nil || !a.ok() {
		d.add("console.modules", "Console lists its modules", StatusFail, "GET /api/v1/modules: "+a.message(),
			"Check that the URL is a Sightline console's, and its log.")
		return nil
	}
	a, err := d.get(ctx, d.t.ConsoleURL, "/api/v1/devices", true)
	switch {
	case err != nil:
		con.devErr = err.Error()
	case !a.ok():
		con.devErr = a.message()
	default:
		var devs exchangeclient.Devices
		if err := a.decode(&devs); err != nil {
			con.devErr = err.Error()
		} else {
			con.devices = &devs
		}
	}
	return con
}

const (
	titleConsoleExchange = "Console reaches its exchange"
	titleConsoleRegion   = "Console's exchange lists the gateway"
	titleModules         = "Console's modules are healthy"
)

// checkConsole checks the console's exchange, its region against the
// gateway's, and each module's health.
func (d *doctor) checkConsole(ctx context.Context, gw *cloudStatus, con *consoleState) {
	if d.t.ConsoleURL == "" {
		return
	}
	if con == nil {
		why := "The console cannot be asked (see above)."
		d.skip("console.exchange", titleConsoleExchange, why)
		d.skip("console.region", titleConsoleRegion, why)
		d.skip("console.module_region", titleModuleRegion, why)
		d.skip("console.modules", titleModules, why)
		return
	}
	if con.devices == nil {
		d.add("console.exchange", titleConsoleExchange, StatusFail, con.devErr,
			"Start the console's exchange if it is down; otherwise create an API key in that exchange (API Keys in its UI) "+
				`and give it to the console: PUT /api/v1/exchange {"api_key": "…"}.`)
	} else {
		d.add("console.exchange", titleConsoleExchange, StatusOK,
			fmt.Sprintf("Exchange %s, organisation %s, %d device(s).", con.devices.Region, con.devices.Organisation, len(con.devices.Devices)), "")
	}
	registered := gw != nil && gw.DeviceID != ""
	switch {
	case !registered:
		d.skip("console.region", titleConsoleRegion, "The gateway is not registered (or cannot be asked).")
	case con.devices == nil:
		d.skip("console.region", titleConsoleRegion, "The console cannot list its exchange's devices.")
	case consoleLists(con, gw.DeviceID):
		d.add("console.region", titleConsoleRegion, StatusOK, "Device "+gw.DeviceID+".", "")
	case !strings.EqualFold(con.devices.Region, gw.Server):
		y := con.devices.Region
		d.add("console.region", titleConsoleRegion, StatusFail,
			fmt.Sprintf("Wrong region: the gateway is registered in %s, but the console uses the exchange of %s, which does not list it; "+
				"Investigate shows no gateway data.", gw.Server, y),
			fmt.Sprintf(`Register the gateway in %s: sightline gateway cloudserviceconfig deregister; sightline gateway cloudserviceconfig settrs --server %s; `+
				`sightline gateway commit -m "…"; then register with a token of %s's exchange. Or pair the console with %s's exchange (an API key from it).`, y, y, y, gw.Server))
	default:
		d.add("console.region", titleConsoleRegion, StatusFail,
			fmt.Sprintf("The console's exchange %s does not list the gateway's device %s.", con.devices.Region, gw.DeviceID),
			"sightline gateway cloudserviceconfig deregister, then register again with a new token.")
	}
	d.checkModuleRegions(con)
	d.checkModules(ctx, gw, con)
}

const titleModuleRegion = "Console's device modules use devices of its exchange's region"

// deviceModule reports whether m reaches a device through the exchange
// (a gateway or manager module), and which.
func deviceModule(m consoleModule) (deviceID string, ok bool) {
	if m.Kind != module.KindESA && m.Kind != module.KindSMA {
		return "", false
	}
	var s struct {
		DeviceID string `json:"device_id"`
	}
	json.Unmarshal(m.Settings, &s)
	return s.DeviceID, true
}

// checkModuleRegions checks that no gateway or manager module points at a
// device registered in another region's exchange than the console's: the
// console reaches devices through its own exchange only.
func (d *doctor) checkModuleRegions(con *consoleState) {
	const id = "console.module_region"
	if con.devices == nil {
		d.skip(id, titleModuleRegion, "The console cannot list its exchange's devices.")
		return
	}
	here := con.devices.Region
	var wrong []string
	var first struct{ module, region string }
	n := 0
	for _, m := range con.modules {
		devID, ok := deviceModule(m)
		if !ok {
			continue
		}
		n++
		if consoleLists(con, devID) {
			continue
		}
		for _, x := range d.exchanges {
			dev := x.device(devID)
			if dev == nil || strings.EqualFold(x.region, here) {
				continue
			}
			wrong = append(wrong, fmt.Sprintf("module %q points at device %s (%s), which is registered in %s", m.Name, devID, dev.Name, x.region))
			if first.module == "" {
				first.module, first.region = m.Name, x.region
			}
		}
	}
	switch {
	case n == 0:
		d.skip(id, titleModuleRegion, "The console has no gateway or manager module.")
	case len(wrong) > 0:
		them := "these modules"
		if len(wrong) == 1 {
			them = "that module"
		}
		d.add(id, titleModuleRegion, StatusFail,
			fmt.Sprintf("Wrong region: %s; the console uses the exchange of region %s, so Investigate gets no data through %s.",
				strings.Join(wrong, "; "), here, them),
			fmt.Sprintf("Run the console with the exchange of region %s (sightline console --exchange %s --exchange-api-key KEY, with an API key of that exchange), "+
				`or register the device in region %s (sightline gateway cloudserviceconfig deregister; sightline gateway cloudserviceconfig settrs --server %s; `+
				`sightline gateway commit -m "…"; then register with a token of %s's exchange) and edit the module to choose its new device (Modules > %s > Edit).`,
				first.region, first.region, here, here, here, first.module))
	default:
		d.add(id, titleModuleRegion, StatusOK,
			fmt.Sprintf("No module points at a device registered in another region than the console's exchange (%s).", here), "")
	}
}

func consoleLists(con *consoleState, deviceID string) bool {
	for _, dev := range con.devices.Devices {
		if dev.ID == deviceID {
			return true
		}
	}
	return false
}

// healthFixes are the fixes of the gateway module's health error codes.
var healthFixes = map[string]string{
	"authorization error": `Check the console's exchange API key (API Keys in the exchange; PUT /api/v1/exchange on the console) and that the gateway grants Message Tracking to its tunnel.`,
	"permission denied":   "Enable Threat Response for the organisation under the exchange's Cloud Services (sightline exchange cloud-services enable), or grant Message Tracking to the exchange's requests on the gateway.",
	"not found":           "Edit the module (Modules > the module > Edit) and choose a Registered Device of the console's region.",
	"web server is down":  "Start the console's exchange (see its checks above).",
	"service unavailable": "Check the gateway's tunnel and the exchange (see the checks above); the module retries on the next request.",
}

// checkModules checks each module's health, and that each gateway module
// points at a device the console's exchange lists.
func (d *doctor) checkModules(ctx context.Context, gw *cloudStatus, con *consoleState) {
	esa := 0
	for _, m := range con.modules {
		id, title := "console.module."+m.ID, fmt.Sprintf("Module %q is healthy", m.Name)
		if !m.Enabled {
			d.add(id, title, StatusWarn, "The module is disabled: Investigate does not ask it.",
				"Enable it under Modules in the console, or delete it.")
			continue
		}
		if m.Kind == module.KindESA {
			esa++
		}
		if devID, ok := deviceModule(m); ok {
			if con.devices != nil && !consoleLists(con, devID) {
				d.add(id, title, StatusFail, d.strayDevice(con, devID),
					fmt.Sprintf("Edit the module (Modules > %s > Edit) and choose a Registered Device of region %s, or register that gateway in region %s.",
						m.Name, con.devices.Region, con.devices.Region))
				continue
			}
		}
		var h struct {
			Status string
			Errors []struct{ Code, Message string }
		}
		if err := d.getJSON(ctx, d.t.ConsoleURL, "/api/v1/modules/"+url.PathEscape(m.ID)+"/health", &h); err != nil {
			d.add(id, title, StatusFail, "The console cannot check it: "+err.Error(), "Check the console's log.")
			continue
		}
		if h.Status == "ok" && len(h.Errors) == 0 {
			d.add(id, title, StatusOK, "", "")
			continue
		}
		var msgs []string
		fix := "Follow the module's message; the checks above name the broken part."
		for _, e := range h.Errors {
			msgs = append(msgs, fmt.Sprintf("%s (%s)", e.Message, e.Code))
			if f, ok := healthFixes[e.Code]; ok {
				fix = f
			}
		}
		d.add(id, title, StatusFail, strings.Join(msgs, "; "), fix)
	}
	if esa == 0 && gw != nil && gw.DeviceID != "" {
		d.add("console.modules", "Console has a module for the gateway", StatusWarn,
			"No Email Security Appliance module: Investigate does not search the gateway's Message Tracking.",
			fmt.Sprintf("sightline console module add esa --device %s --timeframe 30, or Modules > Add Module > Email Security Appliance in the console.", gw.DeviceID))
	}
}

// strayDevice explains a gateway module whose device the console's
// exchange does not list, naming the region that does.
func (d *doctor) strayDevice(con *consoleState, deviceID string) string {
	msg := fmt.Sprintf("The module points at device %s, which the console's exchange (%s) does not list", deviceID, con.devices.Region)
	for _, x := range d.exchanges {
		if x.device(deviceID) != nil && !strings.EqualFold(x.region, con.devices.Region) {
			return msg + fmt.Sprintf(": it is registered in %s (wrong region).", x.region)
		}
	}
	return msg + ": it was deregistered or deleted."
}
