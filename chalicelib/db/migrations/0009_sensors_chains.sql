-- 0009: sensors, and the chain every event and execution carries.
-- Chains: an event starts a trace (a new id, depth 0) unless an action emitted it; then it
-- carries its execution's trace at the execution's depth + 1, and past the depth limit it
-- is stored `suppressed` with the reason and never evaluated. An execution carries the
-- trace and depth of the event (or parent execution) it came from.
-- Sensors: a pack's polling sensors, each with its own trigger (type `sensor`), the state
-- its poll returned (NULL before the first poll), a lease so one poll runs at a time, and
-- what its polls did. Deleting a sensor (its pack deleted or reloaded without it) deletes
-- its trigger, and with it the trigger's rules, as deleting the trigger itself would.

ALTER TABLE attune.event ADD COLUMN trace text NOT NULL DEFAULT gen_random_uuid()::text;
ALTER TABLE attune.event ADD COLUMN depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0);
ALTER TABLE attune.event ADD COLUMN status text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'suppressed'));
ALTER TABLE attune.event ADD COLUMN reason text;
ALTER TABLE attune.event ADD COLUMN source_execution_id bigint;
CREATE INDEX event_trace_idx ON attune.event (tenant_id, trace);

ALTER TABLE attune.execution ADD COLUMN trace text NOT NULL DEFAULT gen_random_uuid()::text;
ALTER TABLE attune.execution ADD COLUMN depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0);
CREATE INDEX execution_trace_idx ON attune.execution (tenant_id, trace, id);

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

GRANT SELECT, INSERT, UPDATE, DELETE ON attune.sensor TO attune_app;
GRANT EXECUTE ON FUNCTION attune.sensor_drop_trigger() TO attune_app;
