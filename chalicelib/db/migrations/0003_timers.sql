-- 0003: timer fires. One row per (timer, due time), claimed by the ticker
-- before its delayed message is sent and compare-and-set to `fired` by the
-- fire handler in the transaction that stores the event: the unique key is
-- what makes a duplicate tick or a redelivered message emit nothing twice.

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

ALTER TABLE attune.timer_fire ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON attune.timer_fire USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON attune.timer_fire TO attune_app;
