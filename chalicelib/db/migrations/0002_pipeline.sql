-- 0002: the event pipeline's transactional outbox, execution bookkeeping, and
-- an index for the datastore's expiry sweep.

CREATE TABLE attune.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    body jsonb NOT NULL,
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending_idx ON attune.outbox (coalesce(sent_at, created));

ALTER TABLE attune.execution ADD COLUMN pack_storage_key text;
ALTER TABLE attune.execution ADD COLUMN attempt integer NOT NULL DEFAULT 0;
CREATE INDEX execution_heartbeat_idx ON attune.execution (heartbeat_at) WHERE status = 'running';

CREATE INDEX datastore_item_expiry_idx ON attune.datastore_item (expires_at) WHERE expires_at IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON attune.outbox TO attune_app;
