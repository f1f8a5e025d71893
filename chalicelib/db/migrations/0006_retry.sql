-- 0006: retries wait in the queue, not in a worker. An outbox row may be due later
-- (`available_at`): the relay sends it with SQS DelaySeconds for the rest (at most 900 s
-- ahead), so a retry's backoff costs no process anything. Each attempt of an execution
-- is kept in `attempts`: its number, exit code, error and times.

ALTER TABLE attune.outbox ADD COLUMN available_at timestamptz NOT NULL DEFAULT clock_timestamp();
ALTER TABLE attune.execution ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]';
