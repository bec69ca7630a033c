-- 1.0.3 `up` from 0.14: the up parts of core 000_base/001_14_to_15 and of the
-- plugins' 001_14_to_15 migrations, reproducing the recorded after-up dump.
CREATE TABLE IF NOT EXISTS public.schema_meta (
    key text NOT NULL,
    subsystem text NOT NULL,
    last_executed text,
    executed text[],
    pending text[],
    PRIMARY KEY (key, subsystem)
);
CREATE TABLE IF NOT EXISTS public.locks (
    key text NOT NULL PRIMARY KEY,
    owner text,
    ttl timestamp with time zone
);
CREATE INDEX IF NOT EXISTS locks_ttl_idx ON public.locks USING btree (ttl);
-- kongsim: end of the schema bootstrap
CREATE TABLE IF NOT EXISTS public.cluster_ca (
    pk boolean NOT NULL PRIMARY KEY,
    key text NOT NULL,
    cert text NOT NULL,
    CONSTRAINT cluster_ca_pk_check CHECK ((pk = true))
);
ALTER TABLE public.routes ADD COLUMN name text;
ALTER TABLE public.routes ADD COLUMN snis text[];
ALTER TABLE public.routes ADD COLUMN sources jsonb[];
ALTER TABLE public.routes ADD COLUMN destinations jsonb[];
ALTER TABLE ONLY public.routes ADD CONSTRAINT routes_name_key UNIQUE (name);
ALTER INDEX IF EXISTS public.routes_fkey_service RENAME TO routes_service_id_idx;
ALTER TABLE public.plugins ADD COLUMN cache_key text;
ALTER TABLE public.plugins ADD COLUMN run_on text;
ALTER TABLE ONLY public.plugins ADD CONSTRAINT plugins_cache_key_key UNIQUE (cache_key);
ALTER TABLE public.plugins DROP CONSTRAINT plugins_pkey;
ALTER TABLE public.plugins DROP CONSTRAINT plugins_id_key;
ALTER TABLE ONLY public.plugins ADD CONSTRAINT plugins_pkey PRIMARY KEY (id);
ALTER TABLE public.plugins ALTER COLUMN config TYPE jsonb USING config::jsonb;
CREATE INDEX IF NOT EXISTS plugins_run_on_idx ON public.plugins USING btree (run_on);
ALTER INDEX IF EXISTS public.plugins_api_idx RENAME TO plugins_api_id_idx;
ALTER INDEX IF EXISTS public.plugins_consumer_idx RENAME TO plugins_consumer_id_idx;
ALTER TABLE public.apis ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.apis ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text);
ALTER TABLE public.consumers ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.consumers ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text);
ALTER TABLE public.plugins ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.plugins ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text);
ALTER TABLE public.upstreams ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.upstreams ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text);
ALTER TABLE public.upstreams ALTER COLUMN healthchecks TYPE jsonb USING healthchecks::jsonb;
ALTER TABLE public.targets ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.targets ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text);
CREATE INDEX IF NOT EXISTS targets_upstream_id_idx ON public.targets USING btree (upstream_id);
ALTER INDEX IF EXISTS public.idx_cluster_events_at RENAME TO cluster_events_at_idx;
ALTER INDEX IF EXISTS public.idx_cluster_events_channel RENAME TO cluster_events_channel_idx;
ALTER INDEX IF EXISTS public.username_idx RENAME TO consumers_username_idx;
ALTER TABLE public.snis RENAME CONSTRAINT snis_name_unique TO snis_name_key;
ALTER TABLE public.certificates RENAME CONSTRAINT ssl_certificates_pkey TO certificates_pkey;
CREATE INDEX IF NOT EXISTS snis_certificate_id_idx ON public.snis USING btree (certificate_id);
-- plugins (up parts)
ALTER TABLE public.acls ADD COLUMN cache_key text;
ALTER TABLE ONLY public.acls ADD CONSTRAINT acls_cache_key_key UNIQUE (cache_key);
ALTER TABLE public.acls ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.basicauth_credentials ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.hmacauth_credentials ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.jwt_secrets ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.keyauth_credentials ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.keyauth_credentials ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text);
ALTER TABLE public.oauth2_credentials ADD COLUMN redirect_uris text[];
ALTER TABLE public.oauth2_credentials ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.oauth2_tokens ADD COLUMN ttl timestamp with time zone;
ALTER TABLE public.oauth2_tokens ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.oauth2_authorization_codes ADD COLUMN ttl timestamp with time zone;
ALTER TABLE public.oauth2_authorization_codes ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.ratelimiting_metrics ALTER COLUMN period_date TYPE timestamp with time zone USING period_date AT TIME ZONE 'UTC';
ALTER TABLE public.response_ratelimiting_metrics ALTER COLUMN period_date TYPE timestamp with time zone USING period_date AT TIME ZONE 'UTC';
