-- 1.0.3 `finish` after an upgrade from 0.14: the teardowns of core
-- 001_14_to_15/002_15_to_1, acl 001_14_to_15, oauth2/rate-limiting/
-- response-ratelimiting 001_14_to_15 and 002_15_to_10, reproducing the recorded
-- after-finish dump (apis, plugins.api_id and upsert_schema_migrations stay).
UPDATE public.plugins SET cache_key = 'plugins:' || name || ':' || COALESCE(route_id::text, '') || ':' ||
    COALESCE(service_id::text, '') || ':' || COALESCE(consumer_id::text, '') || ':' || COALESCE(api_id::text, '')
  WHERE cache_key IS NULL;
DROP TABLE IF EXISTS public.schema_migrations;
DELETE FROM public.plugins WHERE name = 'galileo';
UPDATE public.acls SET cache_key = 'acls:' || consumer_id::text || ':' || "group" WHERE cache_key IS NULL;
DROP FUNCTION IF EXISTS public.increment_rate_limits(uuid, text, text, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.increment_rate_limits(uuid, uuid, text, text, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.increment_rate_limits_api(uuid, text, text, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.increment_response_rate_limits(uuid, text, text, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.increment_response_rate_limits(uuid, uuid, text, text, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.increment_response_rate_limits_api(uuid, text, text, timestamp with time zone, integer);
ALTER TABLE public.ratelimiting_metrics DROP CONSTRAINT IF EXISTS ratelimiting_metrics_pkey;
ALTER TABLE public.ratelimiting_metrics DROP COLUMN IF EXISTS api_id;
ALTER TABLE ONLY public.ratelimiting_metrics ADD CONSTRAINT ratelimiting_metrics_pkey PRIMARY KEY (identifier, period, period_date, service_id, route_id);
ALTER TABLE public.response_ratelimiting_metrics DROP CONSTRAINT IF EXISTS response_ratelimiting_metrics_pkey;
ALTER TABLE public.response_ratelimiting_metrics DROP COLUMN IF EXISTS api_id;
ALTER TABLE ONLY public.response_ratelimiting_metrics ADD CONSTRAINT response_ratelimiting_metrics_pkey PRIMARY KEY (identifier, period, period_date, service_id, route_id);
ALTER TABLE public.oauth2_authorization_codes DROP COLUMN IF EXISTS api_id;
ALTER TABLE public.oauth2_tokens DROP COLUMN IF EXISTS api_id;
ALTER TABLE public.oauth2_credentials DROP COLUMN IF EXISTS redirect_uri;
