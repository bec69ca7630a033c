package kongsim

import _ "embed"

// Schema DDL. base_0131.sql and bootstrap_103.sql are the recorded pg_dump
// outputs of a fresh 0.13.1 install and a fresh 1.0.3 bootstrap (only
// ownership, session settings and comments removed); the others reproduce
// the recorded differences between dumps.
var (
	//go:embed sql/base_0131.sql
	sqlBase0131 string
	//go:embed sql/up_0141.sql
	sqlUp0141 string
	//go:embed sql/up_103.sql
	sqlUp103 string
	//go:embed sql/finish_103.sql
	sqlFinish103 string
	//go:embed sql/bootstrap_103.sql
	sqlBootstrap103 string
)

// legacySubsystem is one row of schema_migrations (0.13/0.14).
type legacySubsystem struct {
	name       string
	migrations []string
}

var core0131 = []string{"2015-01-12-175310_skeleton", "2015-01-12-175310_init_schema",
	"2015-11-23-817313_nodes", "2016-02-29-142793_ttls", "2016-09-05-212515_retries",
	"2016-09-16-141423_upstreams", "2016-12-14-172100_move_ssl_certs_to_core",
	"2016-11-11-151900_new_apis_router_1", "2016-11-11-151900_new_apis_router_2",
	"2016-11-11-151900_new_apis_router_3", "2016-01-25-103600_unique_custom_id",
	"2017-01-24-132600_upstream_timeouts", "2017-01-24-132600_upstream_timeouts_2",
	"2017-03-27-132300_anonymous", "2017-04-18-153000_unique_plugins_id",
	"2017-04-18-153000_unique_plugins_id_2", "2017-05-19-180200_cluster_events",
	"2017-05-19-173100_remove_nodes_table", "2017-06-16-283123_ttl_indexes",
	"2017-07-28-225000_balancer_orderlist_remove", "2017-10-02-173400_apis_created_at_ms_precision",
	"2017-11-07-192000_upstream_healthchecks", "2017-10-27-134100_consistent_hashing_1",
	"2017-11-07-192100_upstream_healthchecks_2", "2017-10-27-134100_consistent_hashing_2",
	"2017-09-14-121200_routes_and_services", "2017-10-25-180700_plugins_routes_and_services"}

var core0141Extra = []string{"2018-03-27-123400_prepare_certs_and_snis", "2018-03-27-125400_fill_in_snis_ids",
	"2018-03-27-130400_make_ids_primary_keys_in_snis", "2018-05-17-173100_hash_on_cookie"}

const jwt0141Extra = "2018-03-15-150000_jwt_maximum_expiration"

// legacyPlugins are the plugin subsystems in the order the recorded 0.13.1
// `up` ran them.
var legacyPlugins = []legacySubsystem{
	{"jwt", []string{"2015-06-09-jwt-auth", "2016-03-07-jwt-alg", "2017-05-22-jwt_secret_not_unique",
		"2017-07-31-120200_jwt-auth_preflight_default", "2017-10-25-211200_jwt_cookie_names_default"}},
	{"acl", []string{"2015-08-25-841841_init_acl"}},
	{"cors", []string{"2017-03-14_multiple_orgins"}},
	{"oauth2", []string{"2015-08-03-132400_init_oauth2", "2016-07-15-oauth2_code_credential_id",
		"2016-12-22-283949_serialize_redirect_uri", "2016-09-19-oauth2_api_id", "2016-12-15-set_global_credentials",
		"2017-04-24-oauth2_client_secret_not_unique", "2017-10-19-set_auth_header_name_default",
		"2017-10-11-oauth2_new_refresh_token_ttl_config_value", "2018-01-09-oauth2_pg_add_service_id"}},
	{"tcp-log", []string{"2017-12-13-120000_tcp-log_tls"}},
	{"key-auth", []string{"2015-07-31-172400_init_keyauth", "2017-07-31-120200_key-auth_preflight_default"}},
	{"hmac-auth", []string{"2015-09-16-132400_init_hmacauth", "2017-06-21-132400_init_hmacauth"}},
	{"basic-auth", []string{"2015-08-03-132400_init_basicauth", "2017-01-25-180400_unique_username"}},
	{"ip-restriction", []string{"2016-05-24-remove-cache"}},
	{"request-transformer", []string{"2016-05-04-160000_req_trans_schema_changes"}},
	{"response-transformer", []string{"2016-05-04-160000_resp_trans_schema_changes"}},
	{"rate-limiting", []string{"2015-08-03-132400_init_ratelimiting", "2016-07-25-471385_ratelimiting_policies",
		"2017-11-30-120000_add_route_and_service_id"}},
	{"response-ratelimiting", []string{"2015-08-03-132400_init_response_ratelimiting",
		"2016-08-04-321512_response-rate-limiting_policies",
		"2017-12-19-120000_add_route_and_service_id_to_response_ratelimiting"}},
	{"datadog", []string{"2017-06-09-160000_datadog_schema_changes"}},
	{"ldap-auth", []string{"2017-10-23-150900_header_type_default"}},
	{"statsd", []string{"2017-06-09-160000_statsd_schema_changes"}},
	{"galileo", []string{"2016-04-15_galileo-import-mashape-analytics"}},
}

// legacyMigrations lists the subsystems and migrations a 0.x node of version
// v knows, for the plugins it loads.
func legacyMigrations(v Version, loaded map[string]bool) []legacySubsystem {
	core := append([]string(nil), core0131...)
	if v == V0141 {
		core = append(core, core0141Extra...)
	}
	out := []legacySubsystem{{"core", core}}
	for _, p := range legacyPlugins {
		if !loaded[p.name] {
			continue
		}
		m := append([]string(nil), p.migrations...)
		if v == V0141 && p.name == "jwt" {
			m = append(m, jwt0141Extra)
		}
		out = append(out, legacySubsystem{p.name, m})
	}
	return out
}

// newMigration is one migration of the 1.0 framework.
type newMigration struct {
	name     string
	teardown bool // has a Postgres teardown: "pending" after up
}

type newSubsystem struct {
	name       string
	migrations []newMigration
}

// newSubsystems are 1.0.3's subsystems in the recorded run order.
var newSubsystems = []newSubsystem{
	{"core", []newMigration{{"000_base", false}, {"001_14_to_15", true}, {"002_15_to_1", true}}},
	{"jwt", []newMigration{{"000_base_jwt", false}, {"001_14_to_15", false}}},
	{"acl", []newMigration{{"000_base_acl", false}, {"001_14_to_15", true}}},
	{"oauth2", []newMigration{{"000_base_oauth2", false}, {"001_14_to_15", true}, {"002_15_to_10", true}}},
	{"key-auth", []newMigration{{"000_base_key_auth", false}, {"001_14_to_15", false}}},
	{"hmac-auth", []newMigration{{"000_base_hmac_auth", false}, {"001_14_to_15", false}}},
	{"basic-auth", []newMigration{{"000_base_basic_auth", false}, {"001_14_to_15", false}}},
	{"rate-limiting", []newMigration{{"000_base_rate_limiting", false}, {"001_14_to_15", true}, {"002_15_to_10", true}}},
	{"response-ratelimiting", []newMigration{{"000_base_response_rate_limiting", false}, {"001_14_to_15", true}, {"002_15_to_10", true}}},
}

func loadedNewSubsystems(loaded map[string]bool) []newSubsystem {
	var out []newSubsystem
	for _, s := range newSubsystems {
		if s.name == "core" || loaded[s.name] {
			out = append(out, s)
		}
	}
	return out
}

// is014Required are the subsystems 1.0's is_014 check requires in
// schema_migrations (core last so that a 0.13 database names a plugin, as
// recorded).
var is014Required = []string{"jwt", "response-transformer", "ip-restriction", "statsd", "cors",
	"basic-auth", "key-auth", "ldap-auth", "hmac-auth", "datadog", "tcp-log", "acl",
	"response-ratelimiting", "request-transformer", "rate-limiting", "oauth2", "core"}
