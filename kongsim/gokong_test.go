package kongsim

import (
	"errors"
	"net/http"
	"testing"

	"github.com/kong/go-kong/kong"
)

func apiStatus(err error) int {
	var ae *kong.APIError
	if errors.As(err, &ae) {
		return ae.Code()
	}
	return 0
}

// TestGoKongClient uses go-kong v0.66.1, the real client, against kongsim
// 0.14.1 and 1.0.3 for services, routes and plugins, expecting what
// GOKONG.md recorded from real Kong.
func TestGoKongClient(t *testing.T) {
	for _, v := range []Version{V0141, V103} {
		t.Run(string(v), func(t *testing.T) {
			k := newTestKong(t)
			if v.Is10() {
				k.mustMigrate(v, "bootstrap", "22 executed")
			} else {
				k.mustMigrate(v, "up", "67 migrations ran")
			}
			n := k.start(v)
			ctx := k.ctx
			url := n.AdminURL()
			c, err := kong.NewClient(&url, nil)
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Root(ctx)
			if err != nil || info["version"] != string(v) {
				t.Fatalf("Root: %v %v", info["version"], err)
			}

			// Services.
			svc, err := c.Services.Create(ctx, &kong.Service{Name: kong.String("svc"), URL: kong.String("http://127.0.0.1:15555/up")})
			if err != nil {
				t.Fatalf("Services.Create: %v", err)
			}
			if *svc.Host != "127.0.0.1" || *svc.Port != 15555 || *svc.Path != "/up" || *svc.Retries != 5 || svc.ID == nil {
				t.Fatalf("created service: %+v", svc)
			}
			if _, err := c.Services.Create(ctx, &kong.Service{Name: kong.String("svc"), Host: kong.String("x")}); apiStatus(err) != http.StatusConflict {
				t.Fatalf("duplicate service: %v", err)
			}
			svc.ReadTimeout = kong.Int(30000)
			if up, err := c.Services.Update(ctx, svc); err != nil || *up.ReadTimeout != 30000 {
				t.Fatalf("Services.Update: %v %v", up, err)
			}
			if _, err := c.Services.Create(ctx, &kong.Service{Name: kong.String("svc2"), Host: kong.String("127.0.0.1")}); err != nil {
				t.Fatal(err)
			}
			page, next, err := c.Services.List(ctx, &kong.ListOpt{Size: 1})
			if err != nil || len(page) != 1 || next == nil {
				t.Fatalf("Services.List size 1: %d %v %v", len(page), next, err)
			}
			page2, next2, err := c.Services.List(ctx, next)
			if err != nil || len(page2) != 1 || next2 != nil || *page2[0].ID == *page[0].ID {
				t.Fatalf("Services.List second page: %v %v %v", page2, next2, err)
			}
			all, err := c.Services.ListAll(ctx)
			if err != nil || len(all) != 2 {
				t.Fatalf("Services.ListAll: %d %v", len(all), err)
			}

			// Routes.
			rt, err := c.Routes.CreateInService(ctx, svc.ID, &kong.Route{Paths: kong.StringSlice("/r"),
				Methods: kong.StringSlice("GET"), StripPath: kong.Bool(false)})
			if err != nil {
				t.Fatalf("Routes.CreateInService: %v", err)
			}
			if *rt.Service.ID != *svc.ID || len(rt.Protocols) != 2 || *rt.StripPath {
				t.Fatalf("created route: %+v", rt)
			}
			rt.Paths = kong.StringSlice("/r2")
			if up, err := c.Routes.Update(ctx, rt); err != nil || *up.Paths[0] != "/r2" {
				t.Fatalf("Routes.Update: %v %v", up, err)
			}
			if got, err := c.Routes.Get(ctx, rt.ID); err != nil || *got.Paths[0] != "/r2" {
				t.Fatalf("Routes.Get: %v %v", got, err)
			}
			routes, _, err := c.Routes.ListForService(ctx, svc.ID, nil)
			if err != nil || len(routes) != 1 {
				t.Fatalf("ListForService: %v %v", routes, err)
			}
			_, _, err = c.Routes.ListForService(ctx, svc.ID, &kong.ListOpt{Size: 10})
			if v == V0141 {
				if apiStatus(err) != http.StatusInternalServerError {
					t.Fatalf("0.14.1 ListForService with Size: want the recorded 500, got %v", err)
				}
			} else if err != nil {
				t.Fatalf("ListForService with Size: %v", err)
			}
			if err := c.Services.Delete(ctx, svc.ID); apiStatus(err) != http.StatusBadRequest {
				t.Fatalf("deleting a service with routes: %v", err)
			}

			// Plugins.
			term, err := c.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("request-termination"),
				Config: kong.Configuration{"status_code": 503, "message": "Maintenance"}})
			if err != nil {
				t.Fatalf("Plugins.Create global: %v", err)
			}
			if _, err := c.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("request-termination")}); apiStatus(err) != http.StatusConflict {
				t.Fatalf("duplicate global plugin: %v", err)
			}
			ka, err := c.Plugins.CreateForRoute(ctx, rt.ID, &kong.Plugin{Name: kong.String("key-auth")})
			if err != nil {
				t.Fatalf("CreateForRoute: %v", err)
			}
			// 0.x returns route_id, which go-kong's struct drops (GOKONG.md ⚠️).
			if v.Is10() != (ka.Route != nil) {
				t.Fatalf("CreateForRoute route in struct: %+v", ka.Route)
			}
			forRoute, err := c.Plugins.ListAllForRoute(ctx, rt.ID)
			if err != nil || len(forRoute) != 1 || *forRoute[0].Name != "key-auth" {
				t.Fatalf("ListAllForRoute: %v %v", forRoute, err)
			}
			term.Config["message"] = "Back soon"
			if up, err := c.Plugins.Update(ctx, term); err != nil || up.Config["message"] != "Back soon" || up.Config["status_code"] == nil {
				t.Fatalf("Plugins.Update: %v %v", up, err)
			}
			if _, err := c.Plugins.UpdateForRoute(ctx, rt.ID, &kong.Plugin{ID: ka.ID, Name: kong.String("key-auth"),
				Config: kong.Configuration{"hide_credentials": true}}); v.Is10() != (err == nil) {
				t.Fatalf("UpdateForRoute on %s: %v", v, err)
			}
			plugins, err := c.Plugins.ListAll(ctx)
			if err != nil || len(plugins) != 2 {
				t.Fatalf("Plugins.ListAll: %v %v", plugins, err)
			}
			if err := c.Plugins.Delete(ctx, term.ID); err != nil {
				t.Fatalf("Plugins.Delete: %v", err)
			}
			// Create with a preset id: PUT /plugins/{id}, 405 on 0.14.1.
			id := kong.String(newUUID())
			_, err = c.Plugins.Create(ctx, &kong.Plugin{ID: id, Name: kong.String("cors")})
			if v.Is10() != (err == nil) || (!v.Is10() && apiStatus(err) != http.StatusMethodNotAllowed) {
				t.Fatalf("plugin create with id on %s: %v", v, err)
			}
			if err := c.Routes.Delete(ctx, rt.ID); err != nil {
				t.Fatal(err)
			}
			if err := c.Services.Delete(ctx, svc.ID); err != nil {
				t.Fatalf("Services.Delete: %v", err)
			}
			if _, err := c.Services.Get(ctx, svc.ID); !kong.IsNotFoundErr(err) {
				t.Fatalf("deleted service still found: %v", err)
			}
		})
	}
}
