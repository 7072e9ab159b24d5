package exchange

import (
	"sync"

	"github.com/sightline/sightline/internal/exchange/registry"
)

// maxLookups bounds each map of lookups; a full map is emptied.
const maxLookups = 4096

// lookups keeps what the console's calls read on every request (the API
// key, its organisation, the device) for as long as the store's generation
// stays the same (registry.Store.Generation). A revoked key, Threat Response
// turned off, or a deleted device moves the generation in the transaction
// that makes the change, so the next request reads the store again: on
// every replica sharing the store, at once. Only what was found is kept.
// Safe for concurrent use.
type lookups struct {
	mu      sync.Mutex
	gen     int64
	keys    map[string]keyLookup // by registry.Hash of the key
	devices map[deviceLookup]registry.Device
}

// keyLookup is what an API key acts as.
type keyLookup struct {
	org  registry.Organisation
	name string // "api key <name>"
}

type deviceLookup struct{ orgID, id string }

// at makes gen the current generation, forgetting everything read before
// it. It reports false when gen is older than the current one: then what
// the caller reads must not be kept.
func (c *lookups) at(gen int64) bool {
	switch {
	case gen < c.gen:
		return false
	case gen > c.gen || c.keys == nil:
		c.gen = gen
		c.keys = make(map[string]keyLookup)
		c.devices = make(map[deviceLookup]registry.Device)
	}
	return true
}

// key returns what the key hashed to hash acts as, read at generation gen.
func (c *lookups) key(gen int64, hash string) (keyLookup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at(gen) {
		return keyLookup{}, false
	}
	k, ok := c.keys[hash]
	return k, ok
}

// putKey keeps k, read at generation gen, for the key hashed to hash.
func (c *lookups) putKey(gen int64, hash string, k keyLookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at(gen) {
		return
	}
	if len(c.keys) >= maxLookups {
		clear(c.keys)
	}
	c.keys[hash] = k
}

// device returns the organisation's device id, read at generation gen.
func (c *lookups) device(gen int64, orgID, id string) (registry.Device, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at(gen) {
		return registry.Device{}, false
	}
	d, ok := c.devices[deviceLookup{orgID, id}]
	return d, ok
}

// putDevice keeps d, read at generation gen.
func (c *lookups) putDevice(gen int64, d registry.Device) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at(gen) {
		return
	}
	if len(c.devices) >= maxLookups {
		clear(c.devices)
	}
	c.devices[deviceLookup{d.OrgID, d.ID}] = d
}
