//! `calos keys create | list | revoke`: API keys administered from the
//! command line, against the same store as `serve` (an operator making a key
//! for a service account, or revoking a leaked one). The secret is printed
//! once, alone on standard output.

use crate::auth::api_keys::{models_of, ApiKeys};
use crate::config::StoreArgs;
use crate::db::users;
use crate::db::Db;
use anyhow::{bail, Context};
use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a key for an account and print its secret (shown only now).
    Create {
        /// The account: username, email or user id.
        #[arg(long)]
        user: String,
        /// A label to tell the key apart.
        #[arg(long)]
        name: String,
        /// Model names or globs the key may use, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// How long the key works, e.g. `30d`, `12h` (default: until revoked).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        #[command(flatten)]
        limits: crate::cli::users::LimitArgs,
    },
    /// List keys (without secrets): one account's, or everyone's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn run(args: KeysArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let db = Db::connect(&args.store.target(), 2).await?;
    db.migrate().await?;
    let result = act(&db, args.action, out).await;
    db.close().await;
    result
}

async fn act(db: &Db, action: KeysAction, out: &mut impl Write) -> anyhow::Result<()> {
    // No cache: each command is one short process.
    let keys = ApiKeys::new(db.clone(), Duration::ZERO);
    match action {
        KeysAction::Create {
            user,
            name,
            models,
            expires,
            limits,
        } => {
            let owner = account(db, &user).await?;
            let limits = limits.validate()?;
            let expires_at = expires
                .map(|after| {
                    let after =
                        chrono::Duration::from_std(after).context("--expires is too long")?;
                    let at = Utc::now()
                        .checked_add_signed(after)
                        .context("--expires is too long")?;
                    anyhow::Ok(at.to_rfc3339_opts(SecondsFormat::Secs, true))
                })
                .transpose()?;
            let issued = keys
                .create(
                    &owner.view(),
                    &name,
                    models.as_deref(),
                    expires_at.as_deref(),
                    limits,
                )
                .await?;
            writeln!(out, "{}", issued.secret)?;
            eprintln!(
                "key {} for {} ({}); the secret above is not shown again",
                issued.row.key_id,
                owner.username,
                expires_at.map_or("never expires".into(), |at| format!("expires {at}"))
            );
        }
        KeysAction::List { user } => {
            let owners = match user {
                Some(user) => vec![account(db, &user).await?],
                None => users::list(db).await?,
            };
            writeln!(
                out,
                "{:<36}  {:<16}  {:<12}  {:<20}  {:<24}  limits",
                "id", "account", "prefix", "name", "models"
            )?;
            for owner in owners {
                for row in keys.list(&owner.user_id).await? {
                    let models = models_of(&row).map_or("all".into(), |m| m.join(","));
                    let limits = crate::cli::users::describe_limits(&row.limits());
                    writeln!(
                        out,
                        "{:<36}  {:<16}  {:<12}  {:<20}  {models:<24}  {limits}",
                        row.key_id, owner.username, row.prefix, row.name
                    )?;
                }
            }
        }
        KeysAction::Revoke { id } => {
            let Some(row) = crate::db::api_keys::find_by_id(db, &id).await? else {
                bail!("no key has id {id:?}")
            };
            keys.revoke(&row.user_id, &id).await?;
            writeln!(out, "revoked {id} ({})", row.name)?;
        }
    }
    Ok(())
}

async fn account(db: &Db, key: &str) -> anyhow::Result<users::UserRow> {
    match users::find_by_any(db, key).await? {
        Some(row) => Ok(row),
        None => bail!("no account matches {key:?}"),
    }
}
