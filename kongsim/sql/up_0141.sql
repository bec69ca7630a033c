-- 0.14.1 core 2018-03-27-123400_prepare_certs_and_snis .. 2018-05-17-173100_hash_on_cookie,
-- reproducing the schema difference between the recorded 0.13.1 and 0.14.1 dumps.
ALTER TABLE public.ssl_certificates RENAME TO certificates;
ALTER TABLE public.certificates ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.certificates ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text);
ALTER TABLE public.ssl_servers_names RENAME TO snis;
ALTER TABLE public.snis RENAME COLUMN ssl_certificate_id TO certificate_id;
ALTER TABLE public.snis ALTER COLUMN created_at TYPE timestamp with time zone USING created_at AT TIME ZONE 'UTC';
ALTER TABLE public.snis ALTER COLUMN created_at SET DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'utc'::text);
ALTER TABLE public.snis ADD COLUMN id uuid;
UPDATE public.snis SET id = md5(name || clock_timestamp()::text)::uuid;
ALTER TABLE public.snis DROP CONSTRAINT ssl_servers_names_ssl_certificate_id_fkey;
ALTER TABLE public.snis DROP CONSTRAINT ssl_servers_names_pkey;
ALTER TABLE public.snis ALTER COLUMN id SET NOT NULL;
ALTER TABLE ONLY public.snis ADD CONSTRAINT snis_name_unique UNIQUE (name);
ALTER TABLE ONLY public.snis ADD CONSTRAINT snis_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.snis ADD CONSTRAINT snis_certificate_id_fkey FOREIGN KEY (certificate_id) REFERENCES public.certificates(id);
ALTER TABLE public.upstreams ADD COLUMN hash_on_cookie text;
ALTER TABLE public.upstreams ADD COLUMN hash_on_cookie_path text;
