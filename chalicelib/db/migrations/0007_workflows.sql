-- 0007: workflows and inquiries. A workflow's execution keeps the definition it started
-- with (`workflow`: a reload never changes a running workflow), the state machine
-- execution running it (`sfn_execution`) and the rendered `with_items` lists of its tasks
-- (`workflow_items`). Each task's child execution says which task (and item) it is, and
-- its Step Functions task token is unique, so a redelivered task message creates nothing
-- twice. An action may carry the seed's action-level `with_items`. An inquiry remembers
-- who may answer (`roles`) and when it was answered; its task token stays server-side.

ALTER TABLE attune.action ADD COLUMN with_items jsonb;
ALTER TABLE attune.action ADD COLUMN concurrency integer CHECK (concurrency IS NULL OR concurrency >= 0);

ALTER TABLE attune.execution ADD COLUMN workflow jsonb;
ALTER TABLE attune.execution ADD COLUMN workflow_items jsonb;
ALTER TABLE attune.execution ADD COLUMN sfn_execution text;
ALTER TABLE attune.execution ADD COLUMN task_name text;
ALTER TABLE attune.execution ADD COLUMN item_index integer;
CREATE UNIQUE INDEX execution_task_token_key ON attune.execution (task_token) WHERE task_token IS NOT NULL;

ALTER TABLE attune.inquiry ADD COLUMN roles text[] NOT NULL DEFAULT '{}';
ALTER TABLE attune.inquiry ADD COLUMN responded_at timestamptz;
ALTER TABLE attune.inquiry ADD COLUMN workflow_execution_id bigint REFERENCES attune.execution (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX inquiry_execution_key ON attune.inquiry (execution_id);
CREATE INDEX inquiry_workflow_idx ON attune.inquiry (workflow_execution_id) WHERE workflow_execution_id IS NOT NULL;
