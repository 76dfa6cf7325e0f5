-- The embedded write side's lookups and waiting queue (state.db); same
-- tables as the PostgreSQL migration 0002.
-- Lookups the write side keeps beside the event log. They are indexes, not
-- truth: every decision is still made by an aggregate.

-- Which guild a channel belongs to (a post names only its channel).
CREATE TABLE channel_directory
(
    channel_id text PRIMARY KEY,
    guild_id   text NOT NULL
);

-- Holds and when they run out: where the sweeper finds what to expire, and
-- how a reservation id finds its schedule.
CREATE TABLE holds
(
    reservation_id text PRIMARY KEY,
    schedule_id    text    NOT NULL,
    user_id        text    NOT NULL,
    -- the coupon a payment is using, recorded before it is used
    coupon_id      text,
    expires_at_ms  integer  NOT NULL,
    settled        integer NOT NULL DEFAULT 0
);
CREATE INDEX holds_due ON holds (expires_at_ms) WHERE settled = 0;

-- The waiting queue: positions per concert, and the admission cursor that
-- one leader advances every tick.
CREATE TABLE queue_positions
(
    concert_id     text PRIMARY KEY,
    last_issued    integer NOT NULL,
    admitted_up_to integer NOT NULL DEFAULT 0
);

-- When each stretch of positions was admitted (an active token's clock
-- starts at its tick).
CREATE TABLE queue_ticks
(
    concert_id     text   NOT NULL,
    admitted_up_to integer NOT NULL,
    at_ms          integer NOT NULL,
    PRIMARY KEY (concert_id, admitted_up_to)
);

-- Tokens ended before their time (at payment), remembered until they expire.
CREATE TABLE queue_revoked
(
    jti           text PRIMARY KEY,
    expires_at_ms integer NOT NULL
);
