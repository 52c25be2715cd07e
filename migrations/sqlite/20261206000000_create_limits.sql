-- Rate limits and token budgets (SQLite dialect; the PostgreSQL twin is
-- ../postgres/ with the same name). A request is allowed when every limit that
-- applies to it, its key's and its user's, has room. A null column is no limit.
--
-- rpm: requests per minute; tpm: prompt + completion tokens per minute;
-- budget_tokens over budget_period: `day` and `month` (UTC calendar periods)
-- or `total` (ever).
create table user_limits (
    user_id        text primary key not null references users (user_id) on delete cascade,
    rpm            integer check (rpm > 0),
    tpm            integer check (tpm > 0),
    budget_tokens  integer check (budget_tokens >= 0),
    budget_period  text check (budget_period in ('day', 'month', 'total')),
    updated_at     text not null,
    check ((budget_tokens is null) = (budget_period is null))
);

alter table api_keys add column rpm integer check (rpm > 0);
alter table api_keys add column tpm integer check (tpm > 0);
alter table api_keys add column budget_tokens integer check (budget_tokens >= 0);
alter table api_keys add column budget_period text check (budget_period in ('day', 'month', 'total'));
