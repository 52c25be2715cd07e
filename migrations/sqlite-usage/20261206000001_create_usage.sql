-- The usage ledger (SQLite dialect; the PostgreSQL twin is
-- ../postgres/20261206000001_create_usage.sql). On SQLite it lives in a file of
-- its own beside the accounts database: its steady writes then neither queue
-- behind account writes (SQLite has one writer per file) nor look like
-- account changes to the sign-in cache, which watches that file's log.
--
-- One row per chat request, written in batches off the request path;
-- `usage_daily` is the same rows summed per UTC day, user, key and model, kept
-- after the rows themselves are pruned (CALOS_USAGE_RETENTION_DAYS).
create table usage_events (
    id                 integer primary key autoincrement,
    at_ms              integer not null,
    request_id         text not null,
    user_id            text not null,
    key_id             text,
    model              text not null,
    provider           text not null,
    upstream_model     text,
    status             integer not null,
    error_code         text,
    prompt_tokens      integer not null,
    completion_tokens  integer not null,
    -- The provider reported no token counts: these are calos's estimate.
    estimated          integer not null,
    ttft_ms            real,
    total_ms           real not null,
    cache              text not null
);
create index idx_usage_events_at on usage_events (at_ms);
create index idx_usage_events_user_at on usage_events (user_id, at_ms);

create table usage_daily (
    -- UTC, YYYY-MM-DD.
    day                text not null,
    user_id            text not null,
    -- '' for requests made without a key.
    key_id             text not null,
    model              text not null,
    requests           integer not null,
    errors             integer not null,
    prompt_tokens      integer not null,
    completion_tokens  integer not null,
    primary key (day, user_id, key_id, model)
);
create index idx_usage_daily_user_day on usage_daily (user_id, day);
create index idx_usage_daily_key_day on usage_daily (key_id, day);
