package doctor

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// exchange is what an exchange that answered told.
type exchange struct {
	url, region, minVersion string
	signedIn                bool
	devices                 *exchangeclient.Devices // nil when it could not be listed
}

// device returns the organisation's device id, nil when not listed.
func (x *exchange) device(id string) *exchangeclient.Device {
	if x.devices == nil {
		return nil
	}
	i := slices.IndexFunc(x.devices.Devices, func(d exchangeclient.Device) bool { return d.ID == id })
	if i < 0 {
		return nil
	}
	return &x.devices.Devices[i]
}

const startExchange = "sightline serve, or sightline exchange"

// probeExchange asks the exchange at base for its region, then its devices
// as an administrator; nil when it does not answer as an exchange.
func (d *doctor) probeExchange(ctx context.Context, base string) *exchange {
	hostID := "exchange." + base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		hostID = "exchange." + u.Host
	}
	a, err := d.get(ctx, base, "/api/v1/region", false)
	if err != nil {
		d.unreachable(hostID, "Exchange", base, err, startExchange)
		return nil
	}
	var rg exchangeclient.Region
	if err := a.decode(&rg); err != nil || !a.ok() || rg.Region == "" {
		d.add(hostID+".reachable", "Exchange answers at "+base, StatusFail,
			fmt.Sprintf("%s answers GET /api/v1/region without a region (%s): it is not a Sightline exchange.", base, a.message()),
			"Pass --exchange with the URL of an exchange.")
		return nil
	}
	x := &exchange{url: base, region: rg.Region, minVersion: rg.MinVersion}
	id, name := "exchange."+x.region, "Exchange "+x.region
	d.add(id+".reachable", name+" answers at "+base, StatusOK, "", "")
	d.checkClock(id, name, a.date)
	a, err = d.get(ctx, base, "/api/v1/devices", true)
	if err != nil {
		d.unreachable(id, name, base, err, startExchange)
		return x
	}
	if x.signedIn = d.checkCredentials(id, name, a); !x.signedIn {
		return x
	}
	var devs exchangeclient.Devices
	if err := a.decode(&devs); err != nil || !a.ok() {
		d.add(id+".devices", name+" lists its devices", StatusFail, fmt.Sprintf("GET /api/v1/devices: %s", a.message()),
			"Check the exchange's log for the cause.")
		return x
	}
	x.devices = &devs
	return x
}

// checkExchanges checks, in each exchange the gateway or the console
// uses, the organisation's Threat Response switch and the gateway's device.
func (d *doctor) checkExchanges(gw *cloudStatus, con *consoleState) {
	for _, x := range d.exchanges {
		id, name := "exchange."+x.region, "exchange "+x.region
		titleTR := "Threat Response is enabled for the organisation in " + name
		gwHere := gw != nil && gw.DeviceID != "" && strings.EqualFold(gw.Server, x.region)
		consoleHere := con != nil && con.devices != nil && strings.EqualFold(con.devices.Region, x.region)
		switch {
		case !gwHere && !consoleHere:
			d.skip(id+".threat_response", titleTR, "Neither the gateway nor the console uses region "+x.region+".")
			continue
		case x.devices == nil:
			d.skip(id+".threat_response", titleTR, "The exchange's devices cannot be listed (see above).")
			continue
		case !x.devices.ThreatResponse:
			d.add(id+".threat_response", titleTR, StatusFail,
				fmt.Sprintf("The organisation %s has not enabled Threat Response in %s, so the console cannot reach its devices "+
					"and its Registered Device list stays empty.", x.devices.Organisation, name),
				fmt.Sprintf("sightline exchange cloud-services enable --exchange %s, or Cloud Services > Threat Response: Enable in the exchange UI.", x.url))
		default:
			d.add(id+".threat_response", titleTR, StatusOK, "Organisation "+x.devices.Organisation+".", "")
		}
		if !gwHere {
			continue
		}
		title := fmt.Sprintf("The gateway's device %s is registered and connected in %s", gw.DeviceID, name)
		switch dev := x.device(gw.DeviceID); {
		case dev == nil:
			d.add(id+".device", title, StatusFail,
				fmt.Sprintf("The gateway says it is registered as device %s, but %s does not list that device: it was deleted there.", gw.DeviceID, name),
				"sightline gateway cloudserviceconfig deregister, then register again with a new token: "+tokenFix(x.region, x.url))
		case !dev.Connected:
			last := "never"
			if !dev.LastSeen.IsZero() {
				last = dev.LastSeen.UTC().Format("2006-01-02 15:04:05 UTC")
			}
			d.add(id+".device", title, StatusFail,
				fmt.Sprintf("%s has no tunnel from device %s (last seen %s).", name, dev.Name, last),
				fmt.Sprintf("Check that the gateway runs and reaches %s; see gateway.tunnel for its side.", x.url))
		default:
			d.add(id+".device", title, StatusOK, fmt.Sprintf("Device %s (%s, version %s).", dev.Name, dev.Type, dev.Version), "")
		}
	}
}
