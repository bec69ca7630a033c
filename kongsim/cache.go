package kongsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Cache segments. Kong caches entity by entity; kongsim caches the few sets
// the proxy needs and drops a whole set when any key of it is invalidated,
// which keeps the observable timing (own writes at once, other nodes' writes
// at the next poll) without a per-key cache.
type segment uint8

const (
	segAPIs segment = 1 << iota
	segRouter
	segPlugins
	segConsumers
	segPluginsMap
	segAll = segAPIs | segRouter | segPlugins | segConsumers | segPluginsMap
)

// segmentsForKey maps a Kong cache key (cluster_events data) to segments.
func segmentsForKey(key string) segment {
	switch {
	case key == "router:version":
		return segRouter
	case key == "api_router:version":
		return segAPIs
	case key == "plugins_map:version":
		return segPluginsMap
	case strings.HasPrefix(key, "plugins:"):
		return segPlugins
	case strings.HasPrefix(key, "consumers:"), strings.HasPrefix(key, "keyauth_credentials:"):
		return segConsumers
	case strings.HasPrefix(key, "apis:"):
		return segAPIs
	case strings.HasPrefix(key, "services:"), strings.HasPrefix(key, "routes:"):
		return segRouter
	}
	return 0
}

type nodeCache struct {
	n *Node

	// dirty holds segment bits; writers set them without waiting for a
	// rebuild in progress, which holds only mu. gen counts invalidations:
	// an invalidation sets its bits, then bumps gen, so a snapshot built
	// from a swap of dirty that followed a read of gen covers every
	// invalidation up to that gen. dirty alone cannot tell a reader that a
	// rebuild is under way (the rebuilder has already swapped it to 0).
	dirty atomic.Uint32
	gen   atomic.Uint64
	snap  atomic.Pointer[snapshot]

	mu      sync.Mutex // serialises rebuilds
	builtMu sync.Mutex
	built   time.Time // when the snapshot was last fully read, for db_cache_ttl

	pollMu   sync.Mutex
	lastPoll time.Time
	seen     map[string]time.Time

	// pluginKeys are the plugins:… cache keys invalidated since the last
	// rebuild took them: a rebuild re-reads only those plugins, as Kong
	// evicts one key per plugin write. Recorded before the dirty bit is
	// set, so a segPlugins bit without keys (taken early by a rebuild that
	// raced the writer) falls back to reading every plugin.
	keysMu     sync.Mutex
	pluginKeys map[string]bool
}

// snapshot is an immutable ProxyView.
type snapshot struct {
	gen        uint64 // nodeCache.gen this snapshot covers
	version    Version
	loaded     map[string]bool
	apis       []API
	routes     []Route
	services   map[string]Service
	plugins    []Plugin // as stored
	pluginsMap map[string]bool
	running    []Plugin // plugins filtered by loaded and plugins_map
	consumers  map[string]Consumer
	keys       map[string]KeyAuthCredential
}

func newNodeCache(n *Node) *nodeCache {
	c := &nodeCache{n: n}
	c.dirty.Store(uint32(segAll))
	c.gen.Store(1)
	c.snap.Store(&snapshot{version: n.version, loaded: n.loaded,
		services: map[string]Service{}, consumers: map[string]Consumer{}, keys: map[string]KeyAuthCredential{}})
	return c
}

// invalidate marks segments stale on this node.
func (c *nodeCache) invalidate(keys ...string) {
	var s segment
	for _, k := range keys {
		s |= segmentsForKey(k)
		if strings.HasPrefix(k, "plugins:") {
			c.keysMu.Lock()
			if c.pluginKeys == nil {
				c.pluginKeys = map[string]bool{}
			}
			c.pluginKeys[k] = true
			c.keysMu.Unlock()
		}
	}
	if s != 0 {
		c.dirty.Or(uint32(s))
		c.gen.Add(1)
	}
}

// view returns a snapshot that includes every invalidation made before the
// call. A reader that arrives while another rebuilds waits for that rebuild
// (or does the next one itself) instead of taking the older snapshot, so a
// node's own writes are seen by every request that follows them, as in Kong.
func (c *nodeCache) view(ctx context.Context) (ProxyView, error) {
	want := c.gen.Load()
	if s := c.snap.Load(); s.gen >= want && !c.expired() {
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired() {
		c.dirty.Or(uint32(segAll))
		c.gen.Add(1)
	}
	cur := c.snap.Load()
	if cur.gen >= want && !c.expired() {
		// Another reader rebuilt while this one waited.
		return cur, nil
	}
	g := c.gen.Load()
	d := segment(c.dirty.Swap(0))
	c.keysMu.Lock()
	pluginKeys := c.pluginKeys
	c.pluginKeys = nil
	c.keysMu.Unlock()
	next := *cur
	next.gen = g
	if d == 0 {
		c.snap.Store(&next)
		return &next, nil
	}
	if err := c.rebuild(ctx, &next, d, pluginKeys); err != nil {
		// Like Kong's cache, keep serving what was cached when the datastore
		// cannot be read (schema moved, database down); retry next request
		// (every plugin then: the keys taken are not put back).
		c.dirty.Or(uint32(d))
		c.n.log.Warn("cache refresh failed, serving cached entities", "err", err)
		return c.snap.Load(), nil
	}
	if d == segAll {
		c.builtMu.Lock()
		c.built = time.Now()
		c.builtMu.Unlock()
	}
	c.snap.Store(&next)
	return &next, nil
}

// expired reports db_cache_ttl expiry.
func (c *nodeCache) expired() bool {
	ttl := c.n.opts.DBCacheTTL
	if ttl <= 0 {
		return false
	}
	c.builtMu.Lock()
	defer c.builtMu.Unlock()
	return !c.built.IsZero() && time.Since(c.built) > ttl
}

func (c *nodeCache) rebuild(ctx context.Context, s *snapshot, d segment, pluginKeys map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db := c.n.pool
	v := c.n.version
	if d&segAPIs != 0 {
		if v.Is10() {
			s.apis = nil
		} else {
			apis, err := selectAPIs(ctx, db, "", nil)
			if err != nil {
				return err
			}
			sort.SliceStable(apis, func(i, j int) bool { return apis[i].CreatedAt.Before(apis[j].CreatedAt) })
			s.apis = apis
		}
	}
	if d&segRouter != 0 {
		routes, err := selectRoutes(ctx, db, v, "", nil)
		if err != nil {
			return err
		}
		sort.SliceStable(routes, func(i, j int) bool {
			if routes[i].RegexPriority != routes[j].RegexPriority {
				return routes[i].RegexPriority > routes[j].RegexPriority
			}
			return routes[i].CreatedAt.Before(routes[j].CreatedAt)
		})
		svcs, err := selectServices(ctx, db, "", nil)
		if err != nil {
			return err
		}
		s.routes = routes
		s.services = make(map[string]Service, len(svcs))
		for _, sv := range svcs {
			s.services[sv.ID] = sv
		}
	}
	pluginsChanged := d&segPlugins != 0
	if d&segPlugins != 0 {
		var ps []Plugin
		var err error
		// A few keys are re-read one by one; after many writes (a batch of
		// them) one read of the whole table costs less than a query per key.
		if d != segAll && len(pluginKeys) > 0 && len(pluginKeys) <= maxPluginKeyReads {
			ps, err = reloadPluginKeys(ctx, db, v, s.plugins, pluginKeys)
		} else {
			ps, err = selectPlugins(ctx, db, v, "", nil)
		}
		if err != nil {
			return err
		}
		s.plugins = ps
	}
	if v.Is10() && (d&segPluginsMap != 0 || s.pluginsMap == nil) {
		// 1.0 caches the set of configured plugin names under
		// plugins_map:version; only that key's invalidation rebuilds it.
		names := map[string]bool{}
		rows, err := db.Query(ctx, `SELECT DISTINCT name FROM plugins`)
		if err != nil {
			return fmt.Errorf("reading plugins map: %w", err)
		}
		for rows.Next() {
			var nm string
			if err := rows.Scan(&nm); err != nil {
				rows.Close()
				return err
			}
			names[nm] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		s.pluginsMap = names
		pluginsChanged = true
	}
	if d&segConsumers != 0 {
		cs, err := selectConsumers(ctx, db, "", nil)
		if err != nil {
			return err
		}
		s.consumers = make(map[string]Consumer, len(cs))
		for _, cn := range cs {
			s.consumers[cn.ID] = cn
		}
		ks, err := selectKeyAuth(ctx, db, "", nil)
		if err != nil {
			return err
		}
		s.keys = make(map[string]KeyAuthCredential, len(ks))
		for _, k := range ks {
			s.keys[k.Key] = k
		}
	}
	if !pluginsChanged {
		// s.running is unchanged: keeping the same slice lets the proxy
		// keep its plugin index.
		return nil
	}
	s.running = s.running[:0:0]
	for _, p := range s.plugins {
		if !s.loaded[p.Name] {
			continue
		}
		if v.Is10() && !s.pluginsMap[p.Name] {
			continue
		}
		s.running = append(s.running, p)
	}
	return nil
}

// maxPluginKeyReads is how many invalidated plugin keys a rebuild re-reads
// one by one before it reads every plugin instead.
const maxPluginKeyReads = 32

// reloadPluginKeys replaces, in cur, the plugins named by the invalidated
// cache keys (plugins:<name>:<route>:<service>:<consumer>:<api>) with what
// the datastore holds for them now. cur is not modified.
func reloadPluginKeys(ctx context.Context, db querier, v Version, cur []Plugin, keys map[string]bool) ([]Plugin, error) {
	type tuple struct{ name, route, service, consumer, api string }
	want := make(map[tuple]bool, len(keys))
	for k := range keys {
		f := strings.Split(strings.TrimPrefix(k, "plugins:"), ":")
		if len(f) != 5 {
			return nil, fmt.Errorf("plugin cache key %q: want plugins:<name>:<route>:<service>:<consumer>:<api>", k)
		}
		want[tuple{f[0], f[1], f[2], f[3], f[4]}] = true
	}
	out := make([]Plugin, 0, len(cur)+len(want))
	for _, p := range cur {
		if !want[tuple{p.Name, p.RouteID, p.ServiceID, p.ConsumerID, p.APIID}] {
			out = append(out, p)
		}
	}
	for t := range want {
		where := "WHERE name = $1"
		args := []any{t.name}
		cols := []struct{ col, val string }{{"route_id", t.route}, {"service_id", t.service}, {"consumer_id", t.consumer}}
		if !v.Is10() {
			cols = append(cols, struct{ col, val string }{"api_id", t.api})
		}
		for _, c := range cols {
			if c.val == "" {
				where += " AND " + c.col + " IS NULL"
				continue
			}
			args = append(args, c.val)
			where += fmt.Sprintf(" AND %s = $%d::uuid", c.col, len(args))
		}
		ps, err := selectPlugins(ctx, db, v, where, args)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

func (s *snapshot) Version() Version { return s.version }
func (s *snapshot) APIs() []API      { return s.apis }
func (s *snapshot) Routes() []Route  { return s.routes }
func (s *snapshot) Service(id string) (Service, bool) {
	sv, ok := s.services[id]
	return sv, ok
}
func (s *snapshot) Plugins() []Plugin { return s.running }
func (s *snapshot) Consumer(id string) (Consumer, bool) {
	c, ok := s.consumers[id]
	return c, ok
}
func (s *snapshot) ConsumerByKey(key string) (KeyAuthCredential, Consumer, bool) {
	k, ok := s.keys[key]
	if !ok {
		return KeyAuthCredential{}, Consumer{}, false
	}
	c, ok := s.consumers[k.ConsumerID]
	return k, c, ok
}
func (s *snapshot) PluginLoaded(name string) bool { return s.loaded[name] }

// broadcast invalidates keys locally and tells the other nodes through
// cluster_events, as Kong's DAO events do. Rows are written by flushEvents
// in batches (one INSERT, so cluster_events' expiry trigger runs once per
// batch rather than per Admin API write); other nodes only read them every
// DBUpdateFrequency anyway.
func (n *Node) broadcast(ctx context.Context, keys ...string) {
	n.cache.invalidate(keys...)
	if len(keys) == 0 {
		return
	}
	n.eventsMu.Lock()
	for _, k := range keys {
		if !n.pendingSet[k] {
			n.pendingSet[k] = true
			n.pendingKeys = append(n.pendingKeys, k)
		}
	}
	n.eventsMu.Unlock()
	select {
	case n.eventsKick <- struct{}{}:
	default:
	}
}

// flushEvents writes pending invalidations until ctx ends, then once more.
func (n *Node) flushEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n.writeEvents(fctx)
			cancel()
			return
		case <-n.eventsKick:
		}
		// Let concurrent writes join the batch. Each batch's INSERT runs
		// cluster_events' expiry trigger, a scan of the whole table, so
		// a longer window saves datastore work under a stream of writes;
		// a tenth of the polling interval keeps other nodes' view of a
		// write as timely as Kong's (one poll).
		select {
		case <-time.After(n.eventsWindow()):
		case <-ctx.Done():
		}
		n.writeEvents(ctx)
	}
}

// eventsWindow is how long flushEvents lets writes gather: a tenth of
// DBUpdateFrequency, between 10 and 50 ms.
func (n *Node) eventsWindow() time.Duration {
	return min(max(n.opts.DBUpdateFrequency/10, 10*time.Millisecond), 50*time.Millisecond)
}

func (n *Node) writeEvents(ctx context.Context) {
	n.eventsMu.Lock()
	keys := n.pendingKeys
	n.pendingKeys, n.pendingSet = nil, map[string]bool{}
	n.eventsMu.Unlock()
	if len(keys) == 0 {
		return
	}
	ids := make([]string, len(keys))
	for i := range keys {
		ids[i] = newUUID()
	}
	_, err := n.pool.Exec(ctx, `INSERT INTO cluster_events (id, node_id, at, nbf, expire_at, channel, data)
		SELECT u.id::uuid, $1, now(), NULL, now() + interval '3600 seconds', 'invalidations', u.data
		FROM unnest($2::text[], $3::text[]) AS u(id, data)`, n.nodeID, ids, keys)
	if err != nil {
		n.log.Warn("could not broadcast invalidations", "keys", len(keys), "err", err)
	}
}

// poll reads other nodes' invalidations every DBUpdateFrequency.
func (c *nodeCache) poll(ctx context.Context) {
	t := time.NewTicker(c.n.opts.DBUpdateFrequency)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.pollOnce(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.n.log.Warn("cluster_events poll failed", "err", err)
		}
	}
}

func (c *nodeCache) pollOnce(ctx context.Context) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var now time.Time
	if err := c.n.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return fmt.Errorf("reading db time: %w", err)
	}
	if c.lastPoll.IsZero() {
		c.lastPoll = now
		c.seen = map[string]time.Time{}
		return nil
	}
	// A second of overlap catches rows whose transaction committed after
	// the previous poll although their `at` is earlier; ids dedupe.
	rows, err := c.n.pool.Query(ctx, `SELECT id::text, data FROM cluster_events
		WHERE channel = 'invalidations' AND node_id <> $1 AND at > $2 AND at <= $3`,
		c.n.nodeID, c.lastPoll.Add(-time.Second), now)
	if err != nil {
		return fmt.Errorf("polling cluster_events: %w", err)
	}
	var keys []string
	for rows.Next() {
		var id, data string
		if err := rows.Scan(&id, &data); err != nil {
			rows.Close()
			return err
		}
		if _, dup := c.seen[id]; dup {
			continue
		}
		c.seen[id] = now
		keys = append(keys, data)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for id, at := range c.seen {
		if now.Sub(at) > 10*time.Second {
			delete(c.seen, id)
		}
	}
	c.lastPoll = now
	c.invalidate(keys...)
	return nil
}

// decodeConfig parses a stored plugin config, keeping numbers exact.
func decodeConfig(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding plugin config: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
