package kongsim

import (
	"strings"
	"testing"
)

// TestAdminUnrecordedRules covers reference rules the fixtures do not
// record: collection PUT on the old DAO, 1.0 plugin PUT upsert, invalid
// offsets, methods, form bodies with CSV arrays.
func TestAdminUnrecordedRules(t *testing.T) {
	const nestedSvc = "0b9c1f4e-6a1d-4c1e-9d3b-2f5a7c8e9d01"
	const nestedRoute = "0b9c1f4e-6a1d-4c1e-9d3b-2f5a7c8e9d02"
	k := newTestKong(t)
	k.mustMigrate(V0141, "up", "67 migrations ran")
	n14 := k.start(V0141)

	type step struct {
		name         string
		method, path string
		body         any
		want         int
		check        func(t *testing.T, got map[string]any)
	}
	steps14 := []step{
		{"PUT /plugins without id inserts", "PUT", "/plugins", map[string]any{"name": "cors"}, 201, nil},
		{"PUT /plugins with unknown id", "PUT", "/plugins", map[string]any{"id": "00000000-0000-0000-0000-000000000001", "name": "cors"}, 404, nil},
		{"second global cors conflicts", "POST", "/plugins", map[string]any{"name": "cors"}, 409, func(t *testing.T, got map[string]any) {
			if got["name"] != "already exists with value 'cors'" {
				t.Errorf("body %v", got)
			}
		}},
		{"PATCH plugin with empty body", "PATCH", "/plugins/00000000-0000-0000-0000-000000000001", map[string]any{}, 400, nil},
		{"invalid new-DAO offset", "GET", "/services?offset=nope", nil, 400, func(t *testing.T, got map[string]any) {
			if got["code"].(float64) != 7 || got["strategy"] != "postgres" {
				t.Errorf("body %v", got)
			}
		}},
		{"method not allowed", "DELETE", "/services", nil, 405, nil},
		{"old-DAO size capped", "GET", "/apis?size=5000", nil, 200, nil},
		{"0.14 PUT consumer by username creates", "PUT", "/consumers/bob", map[string]any{"custom_id": "b-1"}, 200, func(t *testing.T, got map[string]any) {
			if got["username"] != "bob" || got["custom_id"] != "b-1" {
				t.Errorf("body %v", got)
			}
		}},
		{"key-auth credential generated key", "POST", "/consumers/bob/key-auth", map[string]any{}, 201, func(t *testing.T, got map[string]any) {
			if len(got["key"].(string)) != 32 || got["consumer_id"] == nil {
				t.Errorf("body %v", got)
			}
		}},
		{"rate-limiting needs a limit", "POST", "/plugins", map[string]any{"name": "rate-limiting"}, 400, func(t *testing.T, got map[string]any) {
			if !strings.Contains(got["config"].(string), "at least one limit") {
				t.Errorf("body %v", got)
			}
		}},
		{"content_type requires a body", "POST", "/plugins", map[string]any{"name": "request-termination",
			"config": map[string]any{"content_type": "text/plain"}}, 400, func(t *testing.T, got map[string]any) {
			if got["config"] != "content_type requires a body" {
				t.Errorf("body %v", got)
			}
		}},
		{"api with route_id", "POST", "/plugins", map[string]any{"name": "acl", "api_id": "00000000-0000-0000-0000-000000000001",
			"route_id": "00000000-0000-0000-0000-000000000002"}, 400, nil},
		{"plugin on unknown api", "POST", "/plugins", map[string]any{"name": "cors", "api_id": "00000000-0000-0000-0000-000000000001"}, 404, nil},
		{"acl needs a list", "POST", "/plugins", map[string]any{"name": "acl"}, 400, func(t *testing.T, got map[string]any) {
			if got["config"] != "You must set at least a whitelist or blacklist" {
				t.Errorf("body %v", got)
			}
		}},
		// POST /services/{uuid}/routes reads the Service only when the
		// creation fails; the answers must not change.
		{"PUT service by id", "PUT", "/services/" + nestedSvc, map[string]any{"url": "http://example.test"}, 200, nil},
		{"nested route by service id", "POST", "/services/" + nestedSvc + "/routes", map[string]any{"paths": []string{"/nested"}}, 201, func(t *testing.T, got map[string]any) {
			if svc, _ := got["service"].(map[string]any); svc["id"] != nestedSvc || got["id"] == nil {
				t.Errorf("body %v", got)
			}
		}},
		{"nested route by upper-case service id", "POST", "/services/" + strings.ToUpper(nestedSvc) + "/routes", map[string]any{"paths": []string{"/nested2"}}, 201, func(t *testing.T, got map[string]any) {
			if svc, _ := got["service"].(map[string]any); svc["id"] != nestedSvc {
				t.Errorf("body %v", got)
			}
		}},
		{"nested route, invalid body", "POST", "/services/" + nestedSvc + "/routes", map[string]any{"protocols": []string{"http"}}, 400, func(t *testing.T, got map[string]any) {
			if got["name"] != "schema violation" {
				t.Errorf("body %v", got)
			}
		}},
		{"nested route on unknown service id", "POST", "/services/00000000-0000-0000-0000-0000000000aa/routes", map[string]any{"paths": []string{"/x"}}, 404, func(t *testing.T, got map[string]any) {
			if got["message"] != "Not found" {
				t.Errorf("body %v", got)
			}
		}},
		{"nested route on unknown service id, invalid body", "POST", "/services/00000000-0000-0000-0000-0000000000aa/routes", map[string]any{"protocols": []string{"http"}}, 404, nil},
		{"nested route on unknown service name", "POST", "/services/nosuch/routes", map[string]any{"paths": []string{"/x"}}, 404, nil},
		// A new 0.x plugin is inserted in one statement; a refusal is
		// explained by the checks, as before.
		{"PUT route by id", "PUT", "/routes/" + nestedRoute, map[string]any{"paths": []string{"/pr"}, "service": map[string]any{"id": nestedSvc}}, 200, nil},
		{"plugin on a route", "POST", "/plugins", map[string]any{"name": "key-auth", "route_id": nestedRoute}, 201, func(t *testing.T, got map[string]any) {
			if got["route_id"] != nestedRoute || got["id"] == nil {
				t.Errorf("body %v", got)
			}
		}},
		{"same plugin on the route", "POST", "/plugins", map[string]any{"name": "key-auth", "route_id": nestedRoute}, 409, func(t *testing.T, got map[string]any) {
			if got["name"] != "already exists with value 'key-auth'" {
				t.Errorf("body %v", got)
			}
		}},
		{"same plugin on the route for a consumer", "POST", "/plugins", map[string]any{"name": "key-auth", "route_id": nestedRoute,
			"consumer_id": "00000000-0000-0000-0000-0000000000bb"}, 404, func(t *testing.T, got map[string]any) {
			if got["consumer_id"] != "does not exist with value '00000000-0000-0000-0000-0000000000bb'" {
				t.Errorf("body %v", got)
			}
		}},
		{"plugin on an unknown route", "POST", "/plugins", map[string]any{"name": "key-auth", "route_id": "00000000-0000-0000-0000-0000000000cc"}, 404, func(t *testing.T, got map[string]any) {
			if got["route_id"] != "does not exist with value '00000000-0000-0000-0000-0000000000cc'" {
				t.Errorf("body %v", got)
			}
		}},
		{"plugin with a given id", "POST", "/plugins", map[string]any{"name": "cors", "id": "00000000-0000-0000-0000-0000000000dd", "route_id": nestedRoute}, 201, nil},
		{"plugin with a taken id", "POST", "/plugins", map[string]any{"name": "acl", "id": "00000000-0000-0000-0000-0000000000dd", "route_id": nestedRoute,
			"config": map[string]any{"whitelist": "a"}}, 409, func(t *testing.T, got map[string]any) {
			if got["id"] != "already exists with value '00000000-0000-0000-0000-0000000000dd'" {
				t.Errorf("body %v", got)
			}
		}},
	}
	for _, s := range steps14 {
		t.Run("0.14.1 "+s.name, func(t *testing.T) {
			got := k.call(n14, s.method, s.path, s.body, s.want)
			if s.check != nil {
				s.check(t, got)
			}
		})
	}

	k.mustMigrate(V103, "up", "9 pending")
	n10 := k.start(V103)
	const pid = "11111111-2222-4333-8444-555555555555"
	steps10 := []step{
		{"PUT /plugins/{id} creates", "PUT", "/plugins/" + pid, map[string]any{"name": "request-termination",
			"config": map[string]any{"status_code": 418, "body": "tea", "content_type": "text/plain"}}, 200, func(t *testing.T, got map[string]any) {
			if got["id"] != pid || got["run_on"] != "first" || got["route"] != nil {
				t.Errorf("body %v", got)
			}
		}},
		{"PUT /plugins/{id} replaces, omitted fields back to defaults", "PUT", "/plugins/" + pid, map[string]any{"name": "request-termination",
			"config": map[string]any{"message": "x"}}, 200, func(t *testing.T, got map[string]any) {
			cfg := got["config"].(map[string]any)
			if cfg["status_code"].(float64) != 503 || cfg["body"] != nil || cfg["message"] != "x" {
				t.Errorf("config %v", cfg)
			}
		}},
		{"message with body refused", "PATCH", "/plugins/" + pid, map[string]any{"config": map[string]any{"body": "b"}}, 400, func(t *testing.T, got map[string]any) {
			if !strings.Contains(got["message"].(string), "message cannot be used with content_type or body") {
				t.Errorf("body %v", got)
			}
		}},
		{"PATCH missing plugin", "PATCH", "/plugins/00000000-0000-0000-0000-000000000009", map[string]any{"enabled": false}, 404, nil},
		{"collection PUT gone", "PUT", "/plugins", map[string]any{"name": "cors"}, 405, nil},
		{"size above 1000", "GET", "/plugins?size=1001", nil, 400, nil},
		{"filter ignored", "GET", "/plugins?service_id=00000000-0000-0000-0000-000000000001", nil, 200, func(t *testing.T, got map[string]any) {
			// Every plugin: the global cors and request-termination,
			// and the two route plugins 0.14.1 made above.
			if len(got["data"].([]any)) != 4 {
				t.Errorf("data %v", got["data"])
			}
		}},
		{"apis gone", "GET", "/apis", nil, 404, nil},
		{"key-auth on 1.0 nests consumer", "POST", "/consumers/bob/key-auth", map[string]any{"key": "k1"}, 201, func(t *testing.T, got map[string]any) {
			if got["consumer"] == nil || got["consumer_id"] != nil {
				t.Errorf("body %v", got)
			}
		}},
		{"DELETE missing plugin", "DELETE", "/plugins/00000000-0000-0000-0000-000000000009", nil, 204, nil},
	}
	for _, s := range steps10 {
		t.Run("1.0.3 "+s.name, func(t *testing.T) {
			got := k.call(n10, s.method, s.path, s.body, s.want)
			if s.check != nil {
				s.check(t, got)
			}
		})
	}
}

// TestMigrationsUnrecorded covers CLI rules the fixtures do not record.
func TestMigrationsUnrecorded(t *testing.T) {
	k := newTestKong(t)
	tests := []struct {
		v        Version
		cmd      string
		yes      bool
		wantCode int
		wantOut  string
	}{
		{V0141, "bootstrap", false, 1, ""},
		{V103, "reset", true, 1, "database not bootstrapped, nothing to reset"},
		{V0141, "up", false, 0, "67 migrations ran"},
		{V0131, "reset", false, 0, "Canceled"},
		{V0131, "list", false, 0, "core: 2015-01-12-175310_skeleton"},
		{V0131, "reset", true, 0, "Schema successfully reset"},
		{V0131, "list", false, 0, "No migrations have been run yet"},
	}
	for _, tc := range tests {
		var out, errb strings.Builder
		code := Migrate(k.ctx, MigrateOptions{Version: tc.v, DSN: k.dsn, Yes: tc.yes}, tc.cmd, &out, &errb)
		if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
			t.Errorf("%s %s (yes=%v): exit %d, stdout %q, stderr %q", tc.v, tc.cmd, tc.yes, code, out.String(), errb.String())
		}
	}
	var out, errb strings.Builder
	if code := Migrate(k.ctx, MigrateOptions{Version: V103, DSN: k.dsn, Force: true}, "finish", &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "cannot use --force with 'finish'") {
		t.Errorf("finish --force: %d %q", code, out.String())
	}
}

// TestMigrationsMutex runs two 1.0.3 `up` at once on a 0.14 database: the
// `migrations` lock lets one run; the other waits and aborts (or, if it
// came late, meets the pending migrations). locks is empty afterwards.
func TestMigrationsMutex(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V0141, "up", "67 migrations ran")
	type result struct {
		code     int
		out, err string
	}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			var out, errb strings.Builder
			code := Migrate(k.ctx, MigrateOptions{Version: V103, DSN: k.dsn}, "up", &out, &errb)
			results <- result{code, out.String(), errb.String()}
		}()
	}
	ran := 0
	for i := 0; i < 2; i++ {
		r := <-results
		switch {
		case r.code == 0 && strings.Contains(r.out, "22 migrations processed"):
			ran++
		case r.code == 0 && strings.Contains(r.out, "aborted: another node is performing database changes"):
		case r.code == 1 && strings.Contains(r.err, "database has pending migrations"):
		default:
			t.Errorf("unexpected outcome: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
		}
	}
	if ran != 1 {
		t.Fatalf("%d runs migrated, want exactly 1", ran)
	}
	if code, _, _ := k.migrate(V103, "list", nil); code != 4 {
		t.Fatalf("list after the race: exit %d, want 4", code)
	}
	pool, err := openPool(k.ctx, k.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var locks int
	if err := pool.QueryRow(k.ctx, `SELECT count(*) FROM locks`).Scan(&locks); err != nil || locks != 0 {
		t.Fatalf("locks rows after the runs: %d %v", locks, err)
	}
}

// TestSuppliedIDs: the old DAO keeps an id given in a POST body, the new DAO
// ignores it (GOKONG.md note 6).
func TestSuppliedIDs(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V0131, "up", "62 migrations ran")
	n := k.start(V0131)
	const id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	if got := k.call(n, "POST", "/consumers", map[string]any{"id": id, "username": "u"}, 201); got["id"] != id {
		t.Errorf("0.13.1 consumer id %v, want the supplied one", got["id"])
	}
	if got := k.call(n, "POST", "/plugins", map[string]any{"id": id, "name": "cors"}, 201); got["id"] != id {
		t.Errorf("0.13.1 plugin id %v, want the supplied one", got["id"])
	}
	if got := k.call(n, "POST", "/services", map[string]any{"id": id, "name": "s", "host": "h"}, 201); got["id"] == id {
		t.Error("0.13.1 service kept a supplied id; the new DAO ignores it")
	}
}
