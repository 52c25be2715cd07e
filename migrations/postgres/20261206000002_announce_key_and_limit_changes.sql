-- Announces, on the accounts' channel `calos_account_changed`, a revoked or
-- changed API key (`key:<user id>`) and changed account limits
-- (`limits:<user id>`), whoever makes the change: another replica, the `calos
-- keys` and `calos users limits` commands, an operator's SQL. Each calos
-- process then forgets its remembered copy, so a revocation holds everywhere at
-- once. `last_used_at` is written about once a minute per key and is not
-- announced. (On SQLite the caches' short time to live bounds how long another
-- process's change goes unseen.)
create or replace function calos_announce_key_change() returns trigger
language plpgsql as $$
begin
    perform pg_notify('calos_account_changed', 'key:' || old.user_id);
    return null;
end;
$$;

create trigger api_keys_announce_change
    after update of models, expires_at, rpm, tpm, budget_tokens, budget_period or delete on api_keys
    for each row execute function calos_announce_key_change();

create or replace function calos_announce_limits_change() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('calos_account_changed', 'limits:' || old.user_id);
    else
        perform pg_notify('calos_account_changed', 'limits:' || new.user_id);
    end if;
    return null;
end;
$$;

create trigger user_limits_announce_change
    after insert or update or delete on user_limits
    for each row execute function calos_announce_limits_change();
