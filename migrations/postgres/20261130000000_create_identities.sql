-- Ways to sign in other than a password (PostgreSQL dialect; twin in ../sqlite/).
--
-- Both end in an ordinary `users` row, so tokens, sessions and roles work the same
-- whichever way a person signed in. Deleting the account deletes its identities.

-- An Ed25519 public key (32 bytes, lower-case hex) is the identity: whoever can
-- sign a fresh challenge with its private key is this user.
create table ed25519_identities (
    public_key  text primary key not null check (length(public_key) = 64),
    user_id     text not null references users (user_id) on delete cascade,
    created_at  timestamptz not null
);
create index idx_ed25519_identities_user on ed25519_identities (user_id);

-- An OAuth / OpenID Connect account, keyed by (provider, subject) as the provider
-- reports them (ASVS 10.5.2: never by a reassignable claim such as email).
create table oauth_identities (
    provider    text not null,
    subject     text not null,
    user_id     text not null references users (user_id) on delete cascade,
    -- What the provider said at the last sign-in, for display only.
    email       text,
    created_at  timestamptz not null,
    primary key (provider, subject)
);
create index idx_oauth_identities_user on oauth_identities (user_id);
