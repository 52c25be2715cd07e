-- Announces every change to or deletion of an account on the channel
-- `calos_account_changed`, with the user id, whoever makes it: another calos
-- replica, the `calos users` command or an operator's own SQL. Each calos
-- process remembers recently checked accounts for a few seconds and forgets
-- the ones announced here, so a logout or deletion takes effect everywhere at
-- once. (SQLite has no equivalent; there the cache's short time to live bounds
-- how long another process's change goes unseen.)
create or replace function calos_announce_account_change() returns trigger
language plpgsql as $$
begin
    perform pg_notify('calos_account_changed', old.user_id);
    return null;
end;
$$;

create trigger users_announce_change
    after update or delete on users
    for each row execute function calos_announce_account_change();
