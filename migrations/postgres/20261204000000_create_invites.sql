-- Invitations to create an account, for CALOS_REGISTRATION=invite (PostgreSQL
-- dialect; the SQLite twin is ../sqlite/ with the same name).
--
-- Only a SHA-256 of the invite's secret is kept: a copy of the database does
-- not hand out accounts. An invite is used once: redeeming it sets `used_at`
-- in the same transaction that creates the account, guarded by
-- `used_at is null`, so two people racing with one link get one account.
create table invites (
    invite_id    text primary key not null,
    token_hash   text not null unique check (length(token_hash) = 64),
    -- The administrator who made it (null once that account is gone).
    created_by   text references users (user_id) on delete set null,
    note         text,
    created_at   timestamptz not null,
    -- Unix seconds: compared as numbers in both stores.
    expires_at   bigint not null,
    used_at      timestamptz,
    used_by      text references users (user_id) on delete set null
);
create index idx_invites_expires on invites (expires_at);
