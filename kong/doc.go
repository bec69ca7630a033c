// Package kong is everything kongbot does to a Kong gateway (0.13.x, 0.14.1
// and 1.0.3 on PostgreSQL): it reads nodes and the datastore back
// (Inspect), runs the per-hop preflight checks, runs `kong migrations` with a
// configured argv and checks the result by SQL, switches the global
// request-termination plugin on and off through the right node of a mixed
// cluster, converts /apis into Services and Routes (plan, dry run, resumable
// execution, proxy verification), runs smoke probes through every proxy, and
// snapshots and restores the datastore.
//
// It implements steps.Kong. It takes its own Options (gateway name to node
// generations, datastore DSN, admin token, migration commands, termination,
// probes, snapshot directory); the wiring in cmd/kongbot maps config to them.
//
// The facts it codes against are in kong-reference.md and the recorded
// transcripts (kong-fixtures); comments cite them as §n or by fixture path.
// Admin API calls go through go-kong where GOKONG.md shows the call is safe
// on the node's version, and through plain requests on the same client for
// what go-kong lacks or decodes lossily on 0.x (/apis, old-DAO plugins with
// their flat scope keys, consumer-scoped plugin creation).
package kong
