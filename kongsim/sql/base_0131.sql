
CREATE FUNCTION public.delete_expired_cluster_events() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
      BEGIN
          DELETE FROM cluster_events WHERE expire_at <= NOW();
          RETURN NEW;
      END;
      $$;

CREATE FUNCTION public.increment_rate_limits(a_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE ratelimiting_metrics SET value = value + v WHERE api_id = a_id AND identifier = i AND period = p AND period_date = p_date;
          IF found then
            RETURN;
          END IF;

          BEGIN
            INSERT INTO ratelimiting_metrics(api_id, period, period_date, identifier, value) VALUES(a_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN

          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.increment_rate_limits(r_id uuid, s_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE ratelimiting_metrics
          SET value = value + v
          WHERE route_id = r_id
            AND service_id = s_id
            AND identifier = i
            AND period = p
            AND period_date = p_date;
          IF found then RETURN;
          END IF;

          BEGIN
            INSERT INTO ratelimiting_metrics(route_id, service_id, period, period_date, identifier, value)
                        VALUES(r_id, s_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN
          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.increment_rate_limits_api(a_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE ratelimiting_metrics SET value = value + v WHERE api_id = a_id AND identifier = i AND period = p AND period_date = p_date;
          IF found then
            RETURN;
          END IF;

          BEGIN
            INSERT INTO ratelimiting_metrics(api_id, period, period_date, identifier, value) VALUES(a_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN

          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.increment_response_rate_limits(a_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE response_ratelimiting_metrics SET value = value + v WHERE api_id = a_id AND identifier = i AND period = p AND period_date = p_date;
          IF found then
            RETURN;
          END IF;

          BEGIN
            INSERT INTO response_ratelimiting_metrics(api_id, period, period_date, identifier, value) VALUES(a_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN

          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.increment_response_rate_limits(r_id uuid, s_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE response_ratelimiting_metrics
          SET value = value + v
          WHERE route_id = r_id
            AND service_id = s_id
            AND identifier = i
            AND period = p
            AND period_date = p_date;
          IF found then RETURN;
          END IF;

          BEGIN
            INSERT INTO response_ratelimiting_metrics(route_id, service_id, period,
                                                      period_date, identifier, value)
            VALUES(r_id, s_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN
          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.increment_response_rate_limits_api(a_id uuid, i text, p text, p_date timestamp with time zone, v integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE response_ratelimiting_metrics SET value = value + v WHERE api_id = a_id AND identifier = i AND period = p AND period_date = p_date;
          IF found then
            RETURN;
          END IF;

          BEGIN
            INSERT INTO response_ratelimiting_metrics(api_id, period, period_date, identifier, value) VALUES(a_id, p, p_date, i, v);
            RETURN;
          EXCEPTION WHEN unique_violation THEN

          END;
        END LOOP;
      END;
      $$;

CREATE FUNCTION public.upsert_schema_migrations(identifier text, migration_name character varying) RETURNS void
    LANGUAGE plpgsql
    AS $$
      DECLARE
      BEGIN
          UPDATE schema_migrations SET migrations = array_append(migrations, migration_name) WHERE id = identifier;
          IF NOT FOUND THEN
          INSERT INTO schema_migrations(id, migrations) VALUES(identifier, ARRAY[migration_name]);
          END IF;
      END;
      $$;

CREATE FUNCTION public.upsert_ttl(v_primary_key_value text, v_primary_uuid_value uuid, v_primary_key_name text, v_table_name text, v_expire_at timestamp without time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
      BEGIN
        LOOP
          UPDATE ttls SET expire_at = v_expire_at WHERE primary_key_value = v_primary_key_value AND table_name = v_table_name;
          IF found then
            RETURN;
          END IF;
          BEGIN
            INSERT INTO ttls(primary_key_value, primary_uuid_value, primary_key_name, table_name, expire_at) VALUES(v_primary_key_value, v_primary_uuid_value, v_primary_key_name, v_table_name, v_expire_at);
            RETURN;
          EXCEPTION WHEN unique_violation THEN
            -- Do nothing, and loop to try the UPDATE again.
          END;
        END LOOP;
      END;
      $$;

CREATE TABLE public.acls (
    id uuid NOT NULL,
    consumer_id uuid,
    "group" text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.apis (
    id uuid NOT NULL,
    name text,
    upstream_url text,
    preserve_host boolean NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP(3),
    retries smallint DEFAULT 5,
    https_only boolean,
    http_if_terminated boolean,
    hosts text,
    uris text,
    methods text,
    strip_uri boolean,
    upstream_connect_timeout integer,
    upstream_send_timeout integer,
    upstream_read_timeout integer
);

CREATE TABLE public.basicauth_credentials (
    id uuid NOT NULL,
    consumer_id uuid,
    username text,
    password text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.cluster_events (
    id uuid NOT NULL,
    node_id uuid NOT NULL,
    at timestamp with time zone NOT NULL,
    nbf timestamp with time zone,
    expire_at timestamp with time zone NOT NULL,
    channel text,
    data text
);

CREATE TABLE public.consumers (
    id uuid NOT NULL,
    custom_id text,
    username text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.hmacauth_credentials (
    id uuid NOT NULL,
    consumer_id uuid,
    username text,
    secret text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.jwt_secrets (
    id uuid NOT NULL,
    consumer_id uuid,
    key text,
    secret text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text),
    algorithm text,
    rsa_public_key text
);

CREATE TABLE public.keyauth_credentials (
    id uuid NOT NULL,
    consumer_id uuid,
    key text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.oauth2_authorization_codes (
    id uuid NOT NULL,
    code text,
    authenticated_userid text,
    scope text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text),
    credential_id uuid,
    api_id uuid,
    service_id uuid
);

CREATE TABLE public.oauth2_credentials (
    id uuid NOT NULL,
    name text,
    consumer_id uuid,
    client_id text,
    client_secret text,
    redirect_uri text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.oauth2_tokens (
    id uuid NOT NULL,
    credential_id uuid,
    access_token text,
    token_type text,
    refresh_token text,
    expires_in integer,
    authenticated_userid text,
    scope text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text),
    api_id uuid,
    service_id uuid
);

CREATE TABLE public.plugins (
    id uuid NOT NULL,
    name text NOT NULL,
    api_id uuid,
    consumer_id uuid,
    config json NOT NULL,
    enabled boolean NOT NULL,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text),
    route_id uuid,
    service_id uuid
);

CREATE TABLE public.ratelimiting_metrics (
    api_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL,
    identifier text NOT NULL,
    period text NOT NULL,
    period_date timestamp without time zone NOT NULL,
    value integer,
    route_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL,
    service_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL
);

CREATE TABLE public.response_ratelimiting_metrics (
    api_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL,
    identifier text NOT NULL,
    period text NOT NULL,
    period_date timestamp without time zone NOT NULL,
    value integer,
    route_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL,
    service_id uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL
);

CREATE TABLE public.routes (
    id uuid NOT NULL,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    protocols text[],
    methods text[],
    hosts text[],
    paths text[],
    regex_priority bigint,
    strip_path boolean,
    preserve_host boolean,
    service_id uuid
);

CREATE TABLE public.schema_migrations (
    id text NOT NULL,
    migrations character varying(100)[]
);

CREATE TABLE public.services (
    id uuid NOT NULL,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    name text,
    retries bigint,
    protocol text,
    host text,
    port bigint,
    path text,
    connect_timeout bigint,
    write_timeout bigint,
    read_timeout bigint
);

CREATE TABLE public.ssl_certificates (
    id uuid NOT NULL,
    cert text,
    key text,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.ssl_servers_names (
    name text NOT NULL,
    ssl_certificate_id uuid,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.targets (
    id uuid NOT NULL,
    target text NOT NULL,
    weight integer NOT NULL,
    upstream_id uuid,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'utc'::text)
);

CREATE TABLE public.ttls (
    primary_key_value text NOT NULL,
    primary_uuid_value uuid,
    table_name text NOT NULL,
    primary_key_name text NOT NULL,
    expire_at timestamp without time zone NOT NULL
);

CREATE TABLE public.upstreams (
    id uuid NOT NULL,
    name text,
    slots integer NOT NULL,
    created_at timestamp without time zone DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'utc'::text),
    healthchecks json,
    hash_on text,
    hash_fallback text,
    hash_on_header text,
    hash_fallback_header text
);

ALTER TABLE ONLY public.acls
    ADD CONSTRAINT acls_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.apis
    ADD CONSTRAINT apis_name_key UNIQUE (name);

ALTER TABLE ONLY public.apis
    ADD CONSTRAINT apis_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.basicauth_credentials
    ADD CONSTRAINT basicauth_credentials_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.basicauth_credentials
    ADD CONSTRAINT basicauth_credentials_username_key UNIQUE (username);

ALTER TABLE ONLY public.cluster_events
    ADD CONSTRAINT cluster_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.consumers
    ADD CONSTRAINT consumers_custom_id_key UNIQUE (custom_id);

ALTER TABLE ONLY public.consumers
    ADD CONSTRAINT consumers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.consumers
    ADD CONSTRAINT consumers_username_key UNIQUE (username);

ALTER TABLE ONLY public.hmacauth_credentials
    ADD CONSTRAINT hmacauth_credentials_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.hmacauth_credentials
    ADD CONSTRAINT hmacauth_credentials_username_key UNIQUE (username);

ALTER TABLE ONLY public.jwt_secrets
    ADD CONSTRAINT jwt_secrets_key_key UNIQUE (key);

ALTER TABLE ONLY public.jwt_secrets
    ADD CONSTRAINT jwt_secrets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.keyauth_credentials
    ADD CONSTRAINT keyauth_credentials_key_key UNIQUE (key);

ALTER TABLE ONLY public.keyauth_credentials
    ADD CONSTRAINT keyauth_credentials_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth2_authorization_codes
    ADD CONSTRAINT oauth2_authorization_codes_code_key UNIQUE (code);

ALTER TABLE ONLY public.oauth2_authorization_codes
    ADD CONSTRAINT oauth2_authorization_codes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth2_credentials
    ADD CONSTRAINT oauth2_credentials_client_id_key UNIQUE (client_id);

ALTER TABLE ONLY public.oauth2_credentials
    ADD CONSTRAINT oauth2_credentials_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_access_token_key UNIQUE (access_token);

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_refresh_token_key UNIQUE (refresh_token);

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_id_key UNIQUE (id);

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_pkey PRIMARY KEY (id, name);

ALTER TABLE ONLY public.ratelimiting_metrics
    ADD CONSTRAINT ratelimiting_metrics_pkey PRIMARY KEY (api_id, route_id, service_id, identifier, period_date, period);

ALTER TABLE ONLY public.response_ratelimiting_metrics
    ADD CONSTRAINT response_ratelimiting_metrics_pkey PRIMARY KEY (api_id, route_id, service_id, identifier, period_date, period);

ALTER TABLE ONLY public.routes
    ADD CONSTRAINT routes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.services
    ADD CONSTRAINT services_name_key UNIQUE (name);

ALTER TABLE ONLY public.services
    ADD CONSTRAINT services_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ssl_certificates
    ADD CONSTRAINT ssl_certificates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ssl_servers_names
    ADD CONSTRAINT ssl_servers_names_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.targets
    ADD CONSTRAINT targets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ttls
    ADD CONSTRAINT ttls_pkey PRIMARY KEY (primary_key_value, table_name);

ALTER TABLE ONLY public.upstreams
    ADD CONSTRAINT upstreams_name_key UNIQUE (name);

ALTER TABLE ONLY public.upstreams
    ADD CONSTRAINT upstreams_pkey PRIMARY KEY (id);

CREATE INDEX acls_consumer_id ON public.acls USING btree (consumer_id);

CREATE INDEX acls_group ON public.acls USING btree ("group");

CREATE INDEX apis_name_idx ON public.apis USING btree (name);

CREATE INDEX basicauth_consumer_id_idx ON public.basicauth_credentials USING btree (consumer_id);

CREATE INDEX basicauth_username_idx ON public.basicauth_credentials USING btree (username);

CREATE INDEX custom_id_idx ON public.consumers USING btree (custom_id);

CREATE INDEX hmacauth_credentials_consumer_id ON public.hmacauth_credentials USING btree (consumer_id);

CREATE INDEX hmacauth_credentials_username ON public.hmacauth_credentials USING btree (username);

CREATE INDEX idx_cluster_events_at ON public.cluster_events USING btree (at);

CREATE INDEX idx_cluster_events_channel ON public.cluster_events USING btree (channel);

CREATE INDEX jwt_secrets_consumer_id ON public.jwt_secrets USING btree (consumer_id);

CREATE INDEX jwt_secrets_key ON public.jwt_secrets USING btree (key);

CREATE INDEX jwt_secrets_secret ON public.jwt_secrets USING btree (secret);

CREATE INDEX keyauth_consumer_idx ON public.keyauth_credentials USING btree (consumer_id);

CREATE INDEX keyauth_key_idx ON public.keyauth_credentials USING btree (key);

CREATE INDEX oauth2_accesstoken_idx ON public.oauth2_tokens USING btree (access_token);

CREATE INDEX oauth2_authorization_userid_idx ON public.oauth2_authorization_codes USING btree (authenticated_userid);

CREATE INDEX oauth2_autorization_code_idx ON public.oauth2_authorization_codes USING btree (code);

CREATE INDEX oauth2_credentials_client_idx ON public.oauth2_credentials USING btree (client_id);

CREATE INDEX oauth2_credentials_consumer_idx ON public.oauth2_credentials USING btree (consumer_id);

CREATE INDEX oauth2_credentials_secret_idx ON public.oauth2_credentials USING btree (client_secret);

CREATE INDEX oauth2_token_refresh_idx ON public.oauth2_tokens USING btree (refresh_token);

CREATE INDEX oauth2_token_userid_idx ON public.oauth2_tokens USING btree (authenticated_userid);

CREATE INDEX plugins_api_idx ON public.plugins USING btree (api_id);

CREATE INDEX plugins_consumer_idx ON public.plugins USING btree (consumer_id);

CREATE INDEX plugins_name_idx ON public.plugins USING btree (name);

CREATE INDEX plugins_route_id_idx ON public.plugins USING btree (route_id);

CREATE INDEX plugins_service_id_idx ON public.plugins USING btree (service_id);

CREATE INDEX routes_fkey_service ON public.routes USING btree (service_id);

CREATE INDEX targets_target_idx ON public.targets USING btree (target);

CREATE INDEX ttls_primary_uuid_value_idx ON public.ttls USING btree (primary_uuid_value);

CREATE INDEX upstreams_name_idx ON public.upstreams USING btree (name);

CREATE INDEX username_idx ON public.consumers USING btree (lower(username));

CREATE TRIGGER delete_expired_cluster_events_trigger AFTER INSERT ON public.cluster_events FOR EACH STATEMENT EXECUTE FUNCTION public.delete_expired_cluster_events();

ALTER TABLE ONLY public.acls
    ADD CONSTRAINT acls_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.basicauth_credentials
    ADD CONSTRAINT basicauth_credentials_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.hmacauth_credentials
    ADD CONSTRAINT hmacauth_credentials_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.jwt_secrets
    ADD CONSTRAINT jwt_secrets_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.keyauth_credentials
    ADD CONSTRAINT keyauth_credentials_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_authorization_codes
    ADD CONSTRAINT oauth2_authorization_codes_api_id_fkey FOREIGN KEY (api_id) REFERENCES public.apis(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_authorization_codes
    ADD CONSTRAINT oauth2_authorization_codes_credential_id_fkey FOREIGN KEY (credential_id) REFERENCES public.oauth2_credentials(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_authorization_codes
    ADD CONSTRAINT oauth2_authorization_codes_service_id_fkey FOREIGN KEY (service_id) REFERENCES public.services(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_credentials
    ADD CONSTRAINT oauth2_credentials_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_api_id_fkey FOREIGN KEY (api_id) REFERENCES public.apis(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_credential_id_fkey FOREIGN KEY (credential_id) REFERENCES public.oauth2_credentials(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth2_tokens
    ADD CONSTRAINT oauth2_tokens_service_id_fkey FOREIGN KEY (service_id) REFERENCES public.services(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_api_id_fkey FOREIGN KEY (api_id) REFERENCES public.apis(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_consumer_id_fkey FOREIGN KEY (consumer_id) REFERENCES public.consumers(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_route_id_fkey FOREIGN KEY (route_id) REFERENCES public.routes(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.plugins
    ADD CONSTRAINT plugins_service_id_fkey FOREIGN KEY (service_id) REFERENCES public.services(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.routes
    ADD CONSTRAINT routes_service_id_fkey FOREIGN KEY (service_id) REFERENCES public.services(id);

ALTER TABLE ONLY public.ssl_servers_names
    ADD CONSTRAINT ssl_servers_names_ssl_certificate_id_fkey FOREIGN KEY (ssl_certificate_id) REFERENCES public.ssl_certificates(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.targets
    ADD CONSTRAINT targets_upstream_id_fkey FOREIGN KEY (upstream_id) REFERENCES public.upstreams(id) ON DELETE CASCADE;

