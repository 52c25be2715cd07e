-- Accounts (PostgreSQL dialect; the SQLite twin is ../sqlite/ with the same name).
--
-- user_id is a UUID stored as text in both stores, so one row type and one set of
-- queries serve SQLite and PostgreSQL; the check keeps it a real UUID here.
-- Uniqueness is case-insensitive through expression indexes on lower(...); the
-- lookups use the same expressions, so they are index scans (the seed's lesson:
-- a missing idx_users_username turned every sign-in into a table scan).
create table users (
    user_id        text primary key check (user_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    username       text not null,
    -- Optional: the seed's ephemeral test users register with a username only.
    email          text,
    -- Null for accounts that will sign in only through OAuth or an Ed25519 identity.
    password_hash  text,
    role           text not null default 'user' check (role in ('user', 'admin')),
    -- Persistent accounts are never removed by `calos users prune`.
    persistent     boolean not null default false,
    -- Bumped by logout: tokens carry the epoch they were issued in and stop
    -- working once it moves on (ASVS 7.4.1: logout really ends the session).
    session_epoch  bigint not null default 0,
    created_at     timestamptz not null,
    updated_at     timestamptz not null
);

create unique index idx_users_username on users (lower(username));
create unique index idx_users_email on users (lower(email));
