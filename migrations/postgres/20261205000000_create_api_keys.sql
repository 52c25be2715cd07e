-- API keys: long-lived secrets for scripts and SDKs, in place of a session
-- token that expires in a day (PostgreSQL dialect; the SQLite twin is ../sqlite/ with the same name).
--
-- The secret (`calos_sk_` and 40 random base62 characters) is never stored:
-- only its SHA-256, by which it is looked up. `prefix` is its first 12
-- characters, for people to tell their keys apart. A key belongs to one
-- account and goes with it.
create table api_keys (
    key_id        text primary key not null,
    user_id       text not null references users (user_id) on delete cascade,
    name          text not null,
    prefix        text not null,
    secret_hash   text not null unique check (length(secret_hash) = 64),
    -- Model-name globs the key may use, one per line; null: every model.
    models        text,
    -- Unix seconds; null: never.
    expires_at    bigint,
    created_at    timestamptz not null,
    last_used_at  timestamptz
);
create index idx_api_keys_user on api_keys (user_id);
