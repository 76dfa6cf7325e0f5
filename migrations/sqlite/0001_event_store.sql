-- The embedded event store. The first seven columns are what sqlite-es reads
-- and writes. SQLite serializes writers, so insert order is commit order;
-- global_position is copied from a counter by a trigger (not the rowid, which
-- VACUUM may renumber).
CREATE TABLE events
(
    aggregate_type  text                          NOT NULL,
    aggregate_id    text                          NOT NULL,
    sequence        integer CHECK (sequence >= 0) NOT NULL,
    event_type      text                          NOT NULL,
    event_version   text                          NOT NULL,
    payload         text                          NOT NULL,
    metadata        text                          NOT NULL,
    global_position integer,
    recorded_at     text                          NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE UNIQUE INDEX events_global_position ON events (global_position);

CREATE TRIGGER events_global_position
    AFTER INSERT ON events
BEGIN
    UPDATE events
    SET global_position = (SELECT coalesce(max(global_position), 0) + 1 FROM events)
    WHERE rowid = NEW.rowid;
END;
