-- 0004: wake the relay the moment an outbox row commits (LISTEN attune_outbox), so
-- messages are sent in batches by one process instead of one by one by every writer.

CREATE FUNCTION attune.outbox_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_notify('attune_outbox', ''); RETURN NULL; END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON attune.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION attune.outbox_notify();

GRANT EXECUTE ON FUNCTION attune.outbox_notify() TO attune_app;
