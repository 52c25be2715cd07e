-- The usage ledger (PostgreSQL dialect; on SQLite the ledger has a database
-- file of its own, see ../sqlite-usage/). One row per chat request, written in
-- batches off the request path; `usage_daily` is the same rows summed per UTC
-- day, user, key and model, kept after the rows themselves are pruned
-- (CALOS_USAGE_RETENTION_DAYS), so that questions over months stay cheap.
--
-- No foreign keys: a ledger outlives the accounts and keys it names.
create table usage_events (
    id                 bigserial primary key,
    at_ms              bigint not null,
    request_id         text not null,
    user_id            text not null,
    key_id             text,
    model              text not null,
    provider           text not null,
    upstream_model     text,
    status             integer not null,
    error_code         text,
    prompt_tokens      bigint not null,
    completion_tokens  bigint not null,
    -- The provider reported no token counts: these are calos's estimate.
    estimated          boolean not null,
    ttft_ms            double precision,
    total_ms           double precision not null,
    cache              text not null
);
create index idx_usage_events_at on usage_events (at_ms);
create index idx_usage_events_user_at on usage_events (user_id, at_ms);

create table usage_daily (
    -- UTC, YYYY-MM-DD (text: it sorts as dates do, in both dialects).
    day                text not null,
    user_id            text not null,
    -- '' for requests made without a key.
    key_id             text not null,
    model              text not null,
    requests           bigint not null,
    errors             bigint not null,
    prompt_tokens      bigint not null,
    completion_tokens  bigint not null,
    primary key (day, user_id, key_id, model)
);
create index idx_usage_daily_user_day on usage_daily (user_id, day);
create index idx_usage_daily_key_day on usage_daily (key_id, day);
