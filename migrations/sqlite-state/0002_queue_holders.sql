-- One place in line per user and concert: the position a user holds, and
-- how often its active window was extended.
CREATE TABLE queue_holders
(
    concert_id        TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    position          BIGINT NOT NULL,
    extensions        BIGINT NOT NULL DEFAULT 0,
    extended_until_ms BIGINT,
    PRIMARY KEY (concert_id, user_id)
);
