-- 0005: the execution lifecycle owns status. Enforcements follow their execution to
-- its final status; secret parameters are stored sealed, apart from the readable ones;
-- a Step Functions task token is remembered so completion can answer it; WebSocket
-- connections are recorded so status changes are notified only when someone listens.

ALTER TABLE attune.enforcement DROP CONSTRAINT enforcement_status_check;
ALTER TABLE attune.enforcement ADD CONSTRAINT enforcement_status_check
    CHECK (status IN ('created', 'scheduled', 'succeeded', 'succeeded_with_errors', 'failed', 'canceled'));

ALTER TABLE attune.execution ADD COLUMN secret_parameters bytea;
ALTER TABLE attune.execution ADD COLUMN task_token text;

CREATE TABLE attune.ws_connection (
    connection_id text PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES attune.tenant (id) ON DELETE CASCADE,
    user_id bigint REFERENCES attune.app_user (id) ON DELETE CASCADE,
    subscription jsonb NOT NULL DEFAULT '{}',
    connected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ws_connection_tenant_idx ON attune.ws_connection (tenant_id);
ALTER TABLE attune.ws_connection ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON attune.ws_connection USING (attune.rls_bypass() OR tenant_id = attune.current_tenant()) WITH CHECK (attune.rls_bypass() OR tenant_id = attune.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON attune.ws_connection TO attune_app;
