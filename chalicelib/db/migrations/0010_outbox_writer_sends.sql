-- 0010: a row its writer claimed at birth (sent_at set: the writer sends it itself, see
-- pipeline/outbox.py WRITER_SENT_QUEUES) does not wake the relay, which would find nothing to send.
DROP TRIGGER outbox_notify ON attune.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON attune.outbox
    FOR EACH ROW WHEN (NEW.sent_at IS NULL) EXECUTE FUNCTION attune.outbox_notify();
