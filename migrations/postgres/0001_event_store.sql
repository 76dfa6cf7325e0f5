-- The event store. The first seven columns are what postgres-es reads and
-- writes; the last three are filled by PostgreSQL itself so that postgres-es
-- inserts stay unchanged (DESIGN.md §3).
CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 0) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         jsonb                        NOT NULL,
    metadata        jsonb                        NOT NULL,
    -- handed out at insert, not at commit: never resume from it alone
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    -- the inserting transaction; commit order is (tx_id, global_position)
    tx_id           xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_commit_order ON events (tx_id, global_position);

-- Wakes the relay when events commit (NOTIFY is delivered at commit). One
-- notification per statement, not per row, keeps bulk appends cheap.
CREATE FUNCTION tessera_events_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('tessera_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT
EXECUTE FUNCTION tessera_events_notify();

-- Credentials live outside the event log: a password hash is a secret that an
-- immutable, exported, replayed log must never hold.
CREATE TABLE credentials
(
    email         text PRIMARY KEY,
    account_id    text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Where the relay has published up to, as the pair it orders by.
CREATE TABLE relay_checkpoints
(
    name            text PRIMARY KEY,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
