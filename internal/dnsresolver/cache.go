package dnsresolver

import (
	"container/list"
	"sync"
	"time"
)

// answer is the outcome of one question: records, or a negative answer.
type answer struct {
	rrs     []record // nil for a negative answer
	err     error    // *net.DNSError for NXDOMAIN and no-data, else nil
	expires time.Time
}

// record is the type-specific data of one resource record, already decoded.
type record struct {
	txt  string
	host string // MX exchange or PTR target, fully qualified
	pref uint16 // MX preference
	ip   []byte // A or AAAA address
}

type cacheKey struct {
	name  string // lowercased FQDN
	qtype uint16
}

// cache is a bounded LRU of answers; expired entries are dropped when met.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recently used; values are *cacheEntry
	items map[cacheKey]*list.Element
}

type cacheEntry struct {
	key cacheKey
	ans *answer
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *cache) get(k cacheKey, now time.Time) *answer {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.ans.expires) {
		c.order.Remove(el)
		delete(c.items, k)
		return nil
	}
	c.order.MoveToFront(el)
	return e.ans
}

func (c *cache) put(k cacheKey, a *answer) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*cacheEntry).ans = a
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, ans: a})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
