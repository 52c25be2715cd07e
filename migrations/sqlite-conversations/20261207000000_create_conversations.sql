-- Conversations kept by the server, and their messages (SQLite dialect, in
-- `calos-conversations.db` beside `calos.db`: a chat's writes then neither
-- queue behind account writes nor empty the sign-in cache; the PostgreSQL
-- twin is ../postgres/ with the same name).
--
-- Ids are UUIDv7: they sort by creation, so a page of the list is cut by id
-- and stays stable while conversations are updated. Times are Unix
-- milliseconds. `message_count` and `bytes` (the UTF-8 size of the contents)
-- are kept beside the messages in the same transaction, so the per-user
-- limits are one indexed sum away. The accounts are in another file, so no
-- foreign key can tie a conversation to its owner: calos deletes them with
-- the account, and sweeps any left behind (an account deleted with sqlite3).
create table conversations (
    conversation_id text primary key not null,
    user_id         text not null,
    title           text not null,
    -- True until the first user message names it (or a person does).
    untitled        boolean not null default true,
    model           text,
    created_at_ms   integer not null,
    updated_at_ms   integer not null,
    message_count   integer not null default 0,
    bytes           integer not null default 0
);
create index idx_conversations_user on conversations (user_id, conversation_id);

create table conversation_messages (
    message_id        text primary key not null,
    conversation_id   text not null references conversations (conversation_id) on delete cascade,
    -- 1, 2, 3… within the conversation: the order history is sent in.
    seq               integer not null,
    role              text not null check (role in ('system', 'user', 'assistant')),
    content           text not null,
    bytes             integer not null,
    status            text not null check (status in ('complete', 'stopped', 'failed')),
    error_code        text,
    model             text,
    provider          text,
    prompt_tokens     integer,
    completion_tokens integer,
    -- The reply's timing breakdown, as JSON.
    timings           text,
    request_id        text,
    created_at_ms     integer not null,
    unique (conversation_id, seq)
);
