//! `calos users list | create | delete | prune | invite | limits`: account administration against
//! whatever store `DATABASE_URL` / `CALOS_DATA_DIR` point at (the same as `serve`).

use crate::auth::password::Passwords;
use crate::auth::validate;
use crate::config::StoreArgs;
use crate::db::users::{self, InsertError, NewUser, Taken, UserRow};
use crate::db::Db;
use anyhow::{bail, Context};
use app::wire::Role;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::{BufRead, Write};

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub action: UsersAction,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// List accounts.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create an account; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Make the account an administrator (Mission Control access).
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go in argv).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Create an ephemeral account that `prune` may delete (default: persistent).
        #[arg(long)]
        ephemeral: bool,
    },
    /// Delete one account by username, email or user id.
    Delete { user: String },
    /// Delete ephemeral accounts whose username starts with a prefix (never persistent ones).
    Prune {
        #[arg(long, default_value = "test-user-")]
        prefix: String,
    },
    /// Make a single-use sign-up link (for `CALOS_REGISTRATION=invite`) and
    /// print it; the link is shown only now.
    Invite {
        /// Hours the link works, 1-720.
        #[arg(long, default_value_t = crate::auth::invites::DEFAULT_INVITE_HOURS)]
        hours: u32,
        /// Who it is for, shown in Mission Control's invite list.
        #[arg(long)]
        note: Option<String>,
        /// The address people open calos at (the link's start).
        #[arg(
            long,
            env = "CALOS_PUBLIC_URL",
            default_value = "http://localhost:5001"
        )]
        url: String,
        /// Open invites allowed at once, as the server's `CALOS_MAX_OPEN_INVITES`.
        #[arg(long, env = "CALOS_MAX_OPEN_INVITES", default_value_t = crate::auth::invites::DEFAULT_MAX_OPEN_INVITES)]
        max_open: u32,
    },
    /// Show an account's rate limits and token budget, or replace them (a
    /// limit not given is removed; `--clear` removes all).
    Limits {
        /// The account: username, email or user id.
        user: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Remove every limit.
        #[arg(long, conflicts_with_all = ["rpm", "tpm", "budget_tokens", "budget_period"])]
        clear: bool,
    },
}

/// Limits as flags (`calos users limits`, `calos keys create`).
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Requests per minute.
    #[arg(long)]
    pub rpm: Option<u64>,
    /// Prompt + completion tokens per minute.
    #[arg(long)]
    pub tpm: Option<u64>,
    /// Tokens per --budget-period.
    #[arg(long, requires = "budget_period")]
    pub budget_tokens: Option<u64>,
    /// day, month (UTC calendar) or total.
    #[arg(long, requires = "budget_tokens")]
    pub budget_period: Option<String>,
}

impl LimitArgs {
    pub fn given(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.budget_tokens.is_some()
    }

    pub fn validate(&self) -> anyhow::Result<crate::usage::limits::Limits> {
        Ok(crate::usage::limits::validate(
            self.rpm,
            self.tpm,
            self.budget_tokens,
            self.budget_period.as_deref(),
        )?)
    }
}

/// Limits in words, as the CLI prints them.
pub fn describe_limits(limits: &crate::usage::limits::Limits) -> String {
    match app::wire::LimitsView::from(limits).describe() {
        none if none.is_empty() => "no limits".into(),
        some => some,
    }
}

/// Prints, or replaces then prints, an account's limits. A running server
/// sees a change within its session cache time (`--session-cache-ttl`).
async fn limits(
    db: &Db,
    key: &str,
    args: &LimitArgs,
    clear: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let Some(row) = users::find_by_any(db, key).await? else {
        bail!("no account matches {key:?}")
    };
    if clear || args.given() {
        let limits = args.validate()?;
        crate::db::limits::set_for_user(db, &row.user_id, &limits).await?;
    }
    let now = crate::db::limits::for_user(db, &row.user_id).await?;
    writeln!(out, "{}: {}", row.username, describe_limits(&now))?;
    Ok(())
}

pub async fn run(args: UsersArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let db = Db::connect(&args.store.target(), 2).await?;
    db.migrate().await?;
    let result = match args.action {
        UsersAction::List { json } => list(&db, json, out).await,
        UsersAction::Create {
            username,
            email,
            admin,
            password_stdin: _,
            ephemeral,
        } => {
            let password = read_password()?;
            create(
                &db,
                &username,
                email.as_deref(),
                admin,
                !ephemeral,
                password,
                out,
            )
            .await
        }
        UsersAction::Delete { user } => {
            let deleted = delete(&db, &user, out).await;
            if deleted.is_ok() {
                forget_conversations(&args.store.target(), &db).await?;
            }
            deleted
        }
        UsersAction::Prune { prefix } => {
            let pruned = prune(&db, &prefix, out).await;
            if pruned.is_ok() {
                forget_conversations(&args.store.target(), &db).await?;
            }
            pruned
        }
        UsersAction::Invite {
            hours,
            note,
            url,
            max_open,
        } => invite(&db, hours, note.as_deref(), &url, max_open, out).await,
        UsersAction::Limits {
            user,
            limits: args,
            clear,
        } => limits(&db, &user, &args, clear, out).await,
    };
    db.close().await;
    result
}

/// Prints the link on standard output (alone, for scripts) and what it is on
/// standard error.
async fn invite(
    db: &Db,
    hours: u32,
    note: Option<&str>,
    url: &str,
    max_open: u32,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use crate::auth::invites;
    let issued = invites::issue(db, None, note, hours, max_open).await?;
    let link = format!(
        "{}{}",
        url.trim_end_matches('/'),
        invites::link_path(&issued.token)
    );
    writeln!(out, "{link}")?;
    eprintln!(
        "invite {} works once, for {hours} h (until {})",
        issued.row.invite_id,
        DateTime::from_timestamp(issued.row.expires_at, 0).unwrap_or_default()
    );
    Ok(())
}

/// One line of `calos users list --json`: the CLI's own output, read by no
/// other component. Fields in the order it has always printed them (sorted,
/// as `json!` wrote them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedUser<'a> {
    created_at: &'a DateTime<Utc>,
    email: Option<&'a str>,
    persistent: bool,
    role: &'a str,
    user_id: &'a str,
    username: &'a str,
}

impl<'a> From<&'a UserRow> for ListedUser<'a> {
    fn from(row: &'a UserRow) -> Self {
        Self {
            created_at: &row.created_at,
            email: row.email.as_deref(),
            persistent: row.persistent,
            role: &row.role,
            user_id: &row.user_id,
            username: &row.username,
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn list(db: &Db, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let rows = users::list(db).await?;
    if json {
        for row in &rows {
            let line = serde_json::to_string(&ListedUser::from(row))?;
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<36}  {:<24}  {:<28}  {:<5}  {:<10}  created",
        "user id", "username", "email", "role", "persistent"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<36}  {:<24}  {:<28}  {:<5}  {:<10}  {}",
            row.user_id,
            row.username,
            row.email.as_deref().unwrap_or("-"),
            row.role,
            if row.persistent { "yes" } else { "no" },
            row.created_at.format("%Y-%m-%d %H:%M:%S"),
        )?;
    }
    writeln!(out, "{} account(s)", rows.len())?;
    Ok(())
}

async fn create(
    db: &Db,
    username: &str,
    email: Option<&str>,
    admin: bool,
    persistent: bool,
    password: String,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let username = validate::username(username)?;
    let email = email.map(validate::email).transpose()?;
    validate::password(&password)?;
    let hash = Passwords::new()?.hash(password).await?;
    let role = if admin { Role::Admin } else { Role::User };
    let new_user = NewUser {
        username,
        email: email.as_deref(),
        password_hash: Some(&hash),
        role,
        persistent,
    };
    match users::insert(db, new_user).await {
        Ok(row) => {
            writeln!(
                out,
                "created {} ({}, {}) id {}",
                row.username,
                row.role,
                if row.persistent {
                    "persistent"
                } else {
                    "ephemeral"
                },
                row.user_id
            )?;
            Ok(())
        }
        Err(InsertError::Taken(Taken::Username)) => bail!("username {username:?} is already taken"),
        Err(InsertError::Taken(Taken::Email)) => bail!("that email is already registered"),
        Err(InsertError::Taken(Taken::Identity)) => {
            bail!("that sign-in identity already has an account")
        }
        Err(InsertError::Db(e)) => Err(e.into()),
    }
}

async fn delete(db: &Db, key: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(row) = users::find_by_any(db, key).await? else {
        bail!("no account matches {key:?}")
    };
    users::delete(db, &row.user_id).await?;
    writeln!(out, "deleted {} ({})", row.username, row.user_id)?;
    Ok(())
}

/// Deletes the conversations of accounts that are gone. On PostgreSQL the
/// foreign key already did; on SQLite they are in a file of their own.
async fn forget_conversations(target: &crate::db::DbTarget, db: &Db) -> anyhow::Result<()> {
    let store = crate::conversations::store::ConversationStore::open(target, db, 2).await?;
    let conversations = crate::conversations::Conversations::new(store, Default::default());
    conversations.sweep_orphans(db).await?;
    Ok(())
}

async fn prune(db: &Db, prefix: &str, out: &mut impl Write) -> anyhow::Result<()> {
    if prefix.trim().is_empty() {
        bail!("--prefix must not be empty: prune deletes accounts whose username starts with it");
    }
    let removed = users::prune(db, prefix).await?;
    for name in &removed {
        writeln!(out, "deleted {name}")?;
    }
    writeln!(
        out,
        "pruned {} account(s) with prefix {prefix:?} (persistent accounts are kept)",
        removed.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes `users list --json` printed when it built its lines with `json!`.
    #[test]
    fn json_lines_are_byte_for_byte_what_json_macro_built() {
        let mut row = UserRow {
            user_id: "u1".into(),
            username: "ann".into(),
            email: Some("ann@example.com".into()),
            password_hash: Some("secret".into()),
            role: "admin".into(),
            persistent: true,
            session_epoch: 3,
            created_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap_or_default(),
        };
        for _ in 0..2 {
            let old = json!({
                "userId": row.user_id, "username": row.username, "email": row.email,
                "role": row.role, "persistent": row.persistent, "createdAt": row.created_at,
            });
            let line = serde_json::to_string(&ListedUser::from(&row)).unwrap_or_default();
            assert_eq!(line, old.to_string());
            assert!(!line.contains("secret"), "never the password hash");
            (row.email, row.persistent) = (None, false);
        }
    }
}
