-- The declared schema of Attune: what the migrations, applied in order, must
-- produce (tests/integration/test_schema.py proves it). Edit this file and add
-- a migration together.

CREATE SCHEMA IF NOT EXISTS attune;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'attune_app') THEN
        CREATE ROLE attune_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

-- Row-level security reads the tenant from a transaction-local setting that
-- the data layer sets on every tenant transaction; system work (workers,
-- login, webhooks before the trigger is known) sets the bypass flag instead.
CREATE FUNCTION attune.current_tenant() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('attune.tenant_id', true), '')::bigint $$;

CREATE FUNCTION attune.rls_bypass() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('attune.rls_bypass', true), '') = 'on' $$;

CREATE FUNCTION attune.touch_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;

CREATE FUNCTION attune.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'attune.audit_log is append-only: % refused', TG_OP
          USING ERRCODE = 'insufficient_privilege'; END $$;

CREATE TABLE attune.tenant (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE attune.app_user (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    username text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'editor', 'executor', 'viewer')),
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX app_user_username_key ON attune.app_user (lower(username));
CREATE INDEX app_user_tenant_idx ON attune.app_user (tenant_id, id);

CREATE TABLE attune.refresh_token (
    jti uuid PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES attune.app_user (id) ON DELETE CASCADE,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_token_user_idx ON attune.refresh_token (user_id);

CREATE TABLE attune.pack (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint REFERENCES attune.tenant (id) ON DELETE CASCADE,
    ref text NOT NULL CHECK (ref ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    version text NOT NULL,
    label text,
    description text,
    storage_key text NOT NULL,
    files jsonb NOT NULL DEFAULT '[]',
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pack_ref_key ON attune.pack (coalesce(tenant_id, 0), ref);
CREATE INDEX pack_tenant_idx ON attune.pack (tenant_id, id);

CREATE TABLE attune.action (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint REFERENCES attune.tenant (id) ON DELETE CASCADE,
    pack_id bigint NOT NULL REFERENCES attune.pack (id) ON DELETE CASCADE,
    ref text NOT NULL,
    name text NOT NULL,
    description text,
    runner_type text NOT NULL
        CHECK (runner_type IN ('python3', 'shell', 'node', 'http', 'container', 'workflow', 'inquiry')),
    entry_point text,
    parameters jsonb NOT NULL DEFAULT '{}',
    code text,
    timeout integer CHECK (timeout IS NULL OR timeout > 0),
    retry jsonb,
    http_config jsonb,
    image text,
    workflow jsonb,
    enabled boolean NOT NULL DEFAULT true,
    with_items jsonb,
    concurrency integer CHECK (concurrency IS NULL OR concurrency >= 0),
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX action_ref_key ON attune.action (coalesce(tenant_id, 0), ref);
CREATE INDEX action_tenant_idx ON attune.action (tenant_id, id);
CREATE INDEX action_pack_idx ON attune.action (pack_id);

CREATE TABLE attune.trigger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    ref text,
    type text NOT NULL CHECK (type IN ('webhook', 'interval', 'date', 'cron', 'sensor')),
    description text,
    parameters jsonb NOT NULL DEFAULT '{}',
    webhook_secret bytea,
    enabled boolean NOT NULL DEFAULT true,
    state jsonb NOT NULL DEFAULT '{}',
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX trigger_ref_key ON attune.trigger (tenant_id, ref) WHERE ref IS NOT NULL;
CREATE INDEX trigger_tenant_idx ON attune.trigger (tenant_id, id);

CREATE TABLE attune.rule (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    ref text NOT NULL,
    description text,
    trigger_id bigint NOT NULL REFERENCES attune.trigger (id) ON DELETE CASCADE,
    action_ref text NOT NULL,
    criteria text,
    parameters jsonb NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    notify_on_trigger boolean NOT NULL DEFAULT false,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rule_ref_key ON attune.rule (tenant_id, ref);
CREATE INDEX rule_tenant_idx ON attune.rule (tenant_id, id);
CREATE INDEX rule_trigger_idx ON attune.rule (trigger_id) WHERE enabled;

CREATE TABLE attune.event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    trigger_id bigint NOT NULL REFERENCES attune.trigger (id) ON DELETE CASCADE,
    payload jsonb NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    -- The chain (0009): a trace id and depth; an action's event beyond the depth limit is `suppressed`.
    trace text NOT NULL DEFAULT gen_random_uuid()::text,
    depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0),
    status text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'suppressed')),
    reason text,
    source_execution_id bigint
);
CREATE INDEX event_tenant_idx ON attune.event (tenant_id, id);
CREATE INDEX event_trigger_idx ON attune.event (trigger_id, id);
CREATE INDEX event_trace_idx ON attune.event (tenant_id, trace);

CREATE TABLE attune.enforcement (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    rule_id bigint NOT NULL REFERENCES attune.rule (id) ON DELETE CASCADE,
    event_id bigint NOT NULL REFERENCES attune.event (id) ON DELETE CASCADE,
    trigger_id bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('created', 'scheduled', 'succeeded', 'succeeded_with_errors',
        'failed', 'canceled')),
    error text,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_id, event_id)
);
CREATE INDEX enforcement_tenant_idx ON attune.enforcement (tenant_id, id);

CREATE TABLE attune.execution (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    action_ref text NOT NULL,
    action_id bigint REFERENCES attune.action (id) ON DELETE SET NULL,
    status text NOT NULL CHECK (status IN ('requested', 'scheduled', 'running', 'paused',
        'canceling', 'succeeded', 'succeeded_with_errors', 'failed', 'canceled')),
    parameters jsonb NOT NULL DEFAULT '{}',
    result jsonb,
    parent_execution_id bigint REFERENCES attune.execution (id) ON DELETE CASCADE,
    enforcement_id bigint REFERENCES attune.enforcement (id) ON DELETE SET NULL,
    retry_count integer NOT NULL DEFAULT 0,
    created_by bigint REFERENCES attune.app_user (id) ON DELETE SET NULL,
    worker_id text,
    heartbeat_at timestamptz,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    started timestamptz,
    finished timestamptz,
    pack_storage_key text,
    attempt integer NOT NULL DEFAULT 0,
    secret_parameters bytea,
    task_token text,
    attempts jsonb NOT NULL DEFAULT '[]',
    workflow jsonb,
    workflow_items jsonb,
    sfn_execution text,
    task_name text,
    item_index integer,
    trace text NOT NULL DEFAULT gen_random_uuid()::text,
    depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0)
);
CREATE INDEX execution_trace_idx ON attune.execution (tenant_id, trace, id);
CREATE INDEX execution_tenant_idx ON attune.execution (tenant_id, id);
CREATE INDEX execution_status_idx ON attune.execution (tenant_id, status, id);
CREATE INDEX execution_action_idx ON attune.execution (tenant_id, action_ref, id);
CREATE INDEX execution_parent_idx ON attune.execution (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
CREATE INDEX execution_enforcement_idx ON attune.execution (enforcement_id) WHERE enforcement_id IS NOT NULL;
CREATE UNIQUE INDEX execution_task_token_key ON attune.execution (task_token) WHERE task_token IS NOT NULL;
CREATE INDEX execution_heartbeat_idx ON attune.execution (heartbeat_at) WHERE status = 'running';

CREATE TABLE attune.ws_connection (
    connection_id text PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    user_id bigint REFERENCES attune.app_user (id) ON DELETE CASCADE,
    subscription jsonb NOT NULL DEFAULT '{}',
    connected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ws_connection_tenant_idx ON attune.ws_connection (tenant_id);

CREATE TABLE attune.inquiry (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    execution_id bigint NOT NULL REFERENCES attune.execution (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('pending', 'responded', 'expired')),
    prompt text,
    schema jsonb NOT NULL DEFAULT '{}',
    response jsonb,
    default_response jsonb,
    task_token text,
    expires_at timestamptz,
    responded_by bigint REFERENCES attune.app_user (id) ON DELETE SET NULL,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    roles text[] NOT NULL DEFAULT '{}',
    responded_at timestamptz,
    workflow_execution_id bigint REFERENCES attune.execution (id) ON DELETE CASCADE
);
CREATE INDEX inquiry_tenant_idx ON attune.inquiry (tenant_id, status, id);
CREATE UNIQUE INDEX inquiry_execution_key ON attune.inquiry (execution_id);
CREATE INDEX inquiry_workflow_idx ON attune.inquiry (workflow_execution_id) WHERE workflow_execution_id IS NOT NULL;

CREATE TABLE attune.datastore_item (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 256),
    value jsonb,
    encrypted boolean NOT NULL DEFAULT false,
    ciphertext bytea,
    wrapped_key bytea,
    expires_at timestamptz,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    CHECK ((encrypted AND value IS NULL AND ciphertext IS NOT NULL AND wrapped_key IS NOT NULL)
        OR (NOT encrypted AND ciphertext IS NULL AND wrapped_key IS NULL))
);
CREATE UNIQUE INDEX datastore_item_key ON attune.datastore_item (tenant_id, key);
CREATE INDEX datastore_item_expiry_idx ON attune.datastore_item (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE attune.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint REFERENCES attune.tenant (id) ON DELETE SET NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    action text NOT NULL,
    entity_type text NOT NULL,
    entity_id text,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_idx ON attune.audit_log (tenant_id, id);
CREATE INDEX audit_log_entity_idx ON attune.audit_log (tenant_id, entity_type, entity_id);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON attune.audit_log
    FOR EACH ROW EXECUTE FUNCTION attune.refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON attune.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION attune.refuse_change();

-- The transactional outbox: a message is written in the same transaction as the
-- change it announces, sent after commit, and deleted by its consumer once acted
-- on. The relay re-sends what was never sent (a crash between commit and send)
-- or never acknowledged (a lost message), so nothing waits forever.
CREATE TABLE attune.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    body jsonb NOT NULL,
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX outbox_pending_idx ON attune.outbox (coalesce(sent_at, created));

-- Wake the relay the moment an outbox row it must send commits (LISTEN attune_outbox); a row its
-- writer claimed at birth (sent_at set) is the writer's to send.
CREATE FUNCTION attune.outbox_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_notify('attune_outbox', ''); RETURN NULL; END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON attune.outbox
    FOR EACH ROW WHEN (NEW.sent_at IS NULL) EXECUTE FUNCTION attune.outbox_notify();
GRANT EXECUTE ON FUNCTION attune.outbox_notify() TO attune_app;

-- Liveness of the local cloud's roles (and of pollers in production): /health
-- answers 200 only when every expected role has beaten recently.
CREATE TABLE attune.component (
    role text NOT NULL,
    instance text NOT NULL,
    pid integer NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    beat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, instance)
);

-- Timer fires: one row per (timer, due time), claimed by the ticker before its
-- delayed message is sent and compare-and-set to `fired` by the fire handler in
-- the transaction that stores the event, so nothing fires twice.
CREATE TABLE attune.timer_fire (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    trigger_id bigint NOT NULL REFERENCES attune.trigger (id) ON DELETE CASCADE,
    due_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'fired', 'skipped', 'missed')),
    claimed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz,
    fired_at timestamptz,
    event_id bigint REFERENCES attune.event (id) ON DELETE SET NULL,
    UNIQUE (trigger_id, due_at)
);
CREATE INDEX timer_fire_claimed_idx ON attune.timer_fire (due_at) WHERE status = 'claimed';
CREATE INDEX timer_fire_tenant_idx ON attune.timer_fire (tenant_id, id);

-- Sensors (0009): a pack's polling sensors, each with its own trigger (type `sensor`), the
-- state its last poll returned (NULL before the first), a lease so one poll runs at a
-- time, and what its polls did. Deleting a sensor deletes its trigger (and its rules).
CREATE TABLE attune.sensor (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    pack_id bigint NOT NULL REFERENCES attune.pack (id) ON DELETE CASCADE,
    trigger_id bigint NOT NULL REFERENCES attune.trigger (id) ON DELETE CASCADE,
    ref text NOT NULL,
    name text NOT NULL,
    description text,
    entry_point text NOT NULL,
    class_name text NOT NULL,
    poll_interval integer NOT NULL CHECK (poll_interval > 0),
    timeout integer CHECK (timeout IS NULL OR timeout > 0),
    enabled boolean NOT NULL DEFAULT true,
    state jsonb,
    lease_token uuid,
    lease_until timestamptz,
    last_poll_at timestamptz,
    last_poll_status text CHECK (last_poll_status IN ('succeeded', 'failed', 'timed_out')),
    last_error text,
    last_error_at timestamptz,
    polls bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    events_emitted bigint NOT NULL DEFAULT 0,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sensor_ref_key ON attune.sensor (tenant_id, ref);
CREATE UNIQUE INDEX sensor_trigger_key ON attune.sensor (trigger_id);
CREATE INDEX sensor_pack_idx ON attune.sensor (pack_id);
CREATE TRIGGER sensor_touch BEFORE UPDATE ON attune.sensor FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();

CREATE FUNCTION attune.sensor_drop_trigger() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN DELETE FROM attune.trigger WHERE id = OLD.trigger_id; RETURN NULL; END $$;

CREATE TRIGGER sensor_drop_trigger AFTER DELETE ON attune.sensor
    FOR EACH ROW EXECUTE FUNCTION attune.sensor_drop_trigger();

ALTER TABLE attune.sensor ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON attune.sensor USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());

-- Rate limiting (0008): one token bucket per key (`user:<id>`, `execution:<id>`,
-- `webhook:<trigger id>`, `auth-addr:<address>`, `auth-user:<name>`), kept as the moment
-- it is full again (one upsert refills and takes a token; a passed `full_at` equals no
-- row, and the relay deletes those), and failed logins per lowercased user name for the
-- login back-off. System tables like the outbox (no tenant, no RLS): limited before any
-- tenant is known, in autocommit statements. No index on `full_at`, so updates stay HOT.
-- UNLOGGED: no WAL flush per request; a crash or failover empties them (buckets refill).
CREATE UNLOGGED TABLE attune.rate_limit (
    key text PRIMARY KEY,
    full_at timestamptz NOT NULL,
    refused integer NOT NULL DEFAULT 0
);

CREATE UNLOGGED TABLE attune.login_failure (
    username text PRIMARY KEY,
    failures integer NOT NULL,
    last_failed timestamptz NOT NULL
);

CREATE TRIGGER app_user_touch BEFORE UPDATE ON attune.app_user FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER pack_touch BEFORE UPDATE ON attune.pack FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER action_touch BEFORE UPDATE ON attune.action FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER trigger_touch BEFORE UPDATE ON attune.trigger FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER rule_touch BEFORE UPDATE ON attune.rule FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER enforcement_touch BEFORE UPDATE ON attune.enforcement FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER execution_touch BEFORE UPDATE ON attune.execution FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER inquiry_touch BEFORE UPDATE ON attune.inquiry FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();
CREATE TRIGGER datastore_item_touch BEFORE UPDATE ON attune.datastore_item FOR EACH ROW EXECUTE FUNCTION attune.touch_updated();

-- Row-level security: the second wall behind the tenant filter in every query.
-- Tenant rows are readable and writable by their tenant; system rows
-- (tenant_id IS NULL: the core pack) are readable by all, writable by none
-- but the system.
ALTER TABLE attune.app_user ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.refresh_token ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.pack ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.action ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.trigger ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.rule ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.event ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.enforcement ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.execution ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.inquiry ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.datastore_item ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.timer_fire ENABLE ROW LEVEL SECURITY;
ALTER TABLE attune.ws_connection ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_rw ON attune.app_user USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.refresh_token USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.pack USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY system_read ON attune.pack FOR SELECT USING (tenant_id IS NULL);
CREATE POLICY tenant_rw ON attune.action USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY system_read ON attune.action FOR SELECT USING (tenant_id IS NULL);
CREATE POLICY tenant_rw ON attune.trigger USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.rule USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.event USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.enforcement USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.execution USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.inquiry USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.datastore_item USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.audit_log USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.timer_fire USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
CREATE POLICY tenant_rw ON attune.ws_connection USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());

GRANT USAGE ON SCHEMA attune TO attune_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA attune TO attune_app;
REVOKE UPDATE, DELETE, TRUNCATE ON attune.audit_log FROM attune_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA attune TO attune_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA attune TO attune_app;
