//! Building and running the server: everything `calos serve` does, callable from
//! tests, which start exactly what users start on `127.0.0.1:0`.

use crate::auth::jwt::{JwtKeys, Secret};
use crate::auth::password::Passwords;
use crate::auth::throttle::{LoginThrottle, ThrottlePolicy};
use crate::auth::AuthService;
use crate::config::ServeArgs;
use crate::db::Db;
use crate::http::routes;
use crate::http::serve::{self, ConnectionLimits};
use crate::http::state::{AppState, Runtime, Services};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A built, bound server, not yet serving.
pub struct Application {
    api_listener: TcpListener,
    dashboard_listener: TcpListener,
    state: Services,
    grace: Duration,
    /// Caps and timeouts for both listeners' connections.
    limits: ConnectionLimits,
    /// Declared in the config file; started by `run`.
    processes: Vec<crate::ops::processes::config::ProcessSpec>,
    /// How often components and deployments are health-checked.
    probe_every: Duration,
    /// How long to keep accepting after SIGTERM while health says draining.
    drain: Duration,
    /// Redis, when replicas share state.
    shared: Option<crate::cluster::SharedState>,
}

impl Application {
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let secret = match args.jwt_secret.as_deref() {
            Some(value) => Secret::from_configured(value)?,
            None => Secret::load_or_create(&args.store.data_dir)?,
        };
        let target = args.store.target();
        let db = Db::connect(&target, args.store.db_max_connections).await?;
        db.migrate().await?;
        tracing::info!(database = %target.describe(), "database ready");
        let shared = match args.cluster.redis_url.as_deref() {
            Some(url) => Some(
                crate::cluster::SharedState::connect(
                    url,
                    &args.cluster.redis_prefix,
                    args.cluster.redis_failure,
                    args.cluster.redis_timeout,
                )
                .await?,
            ),
            None => None,
        };
        if shared.is_some() && args.jwt_secret.is_none() {
            // Each replica would sign with a secret of its own and refuse the
            // others' tokens: say so at the start, not at the first 401.
            tracing::warn!("REDIS_URL is set but CALOS_JWT_SECRET is not: every replica must share one signing secret, or a token from one is refused by the others");
        }
        let replica = (shared.is_some() || args.cluster.replica_id.is_some())
            .then(|| crate::cluster::replica::name(args.cluster.replica_id.as_deref()));

        let passwords = Passwords::new().context("preparing password hashing")?;
        let jwt = JwtKeys::new(&secret, Duration::from_secs(args.token_ttl_hours * 3600))?;
        let throttle = LoginThrottle::new(ThrottlePolicy {
            account_burst: args.login_failure_burst,
            account_refill: args.login_failure_refill,
            signup_burst: args.signup_burst,
            signup_refill: args.signup_refill,
        });
        let metrics = crate::observability::metrics::Metrics::new(
            args.metrics_max_series,
            crate::observability::exporter::Exporter::new(),
        );
        // Read now so a bad file stops startup; the processes start in `run`.
        let config = crate::ops::processes::config::load_or_default(args.config.as_deref())?;
        let routing = crate::chat::setup::Routing::from(&config);
        let processes = config.processes;
        let chat =
            crate::chat::setup::build_chat(&args.llm, &routing, metrics.clone(), shared.clone())
                .await?;
        let trusted = std::sync::Arc::new(args.trusted_proxies());
        let limits = ConnectionLimits {
            admission: serve::admission::Admission::new(serve::admission::Caps {
                global: args.max_connections.get(),
                per_peer: args.max_connections_per_ip.get(),
                exempt: trusted.clone(),
            }),
            refuser: serve::refusal::Refuser::default(),
            timeouts: serve::activity::Timeouts {
                header_read: args.header_read_timeout,
                keep_alive: args.keep_alive_timeout,
                write: args.write_timeout,
            },
        };
        let bots = crate::http::routes::BotGuard::new();
        let traces = crate::observability::otel::Tracing::start(&args.otel)?;
        let trusted_proxies = crate::http::client_ip::TrustedProxies(trusted);

        let mut leptos = leptos::config::get_configuration(None)
            .context("reading the Leptos site configuration (LEPTOS_* variables)")?
            .leptos_options;
        let ip = args.bind_ip();
        let api_listener = TcpListener::bind(SocketAddr::new(ip, args.port))
            .await
            .with_context(|| format!("binding {ip}:{} for the pages and API", args.port))?;
        let dashboard_listener = TcpListener::bind(SocketAddr::new(ip, args.dashboard_port))
            .await
            .with_context(|| format!("binding {ip}:{} for Mission Control", args.dashboard_port))?;
        leptos.site_addr = api_listener.local_addr()?;
        let public_url = args.public_url(leptos.site_addr.port());
        let sqlite_file = match &target {
            crate::db::DbTarget::SqliteFile(file) => Some(file.clone()),
            crate::db::DbTarget::Url(_) => None,
        };
        let accounts =
            crate::auth::sessions::AccountCache::new(args.session_cache_ttl, sqlite_file);
        let registration = crate::auth::invites::RegistrationPolicy {
            mode: args.registration,
            max_open_invites: args.max_open_invites,
        };
        tracing::info!(registration = args.registration.as_str(), "sign-up policy");
        let auth = AuthService::new(
            db.clone(),
            passwords,
            jwt,
            throttle,
            &public_url,
            accounts,
            registration,
        )
        .sharing_challenges(shared.clone());
        let oauth =
            crate::auth::oauth::OAuthService::new(&args.oauth, &public_url, shared.clone())?;
        for provider in oauth.configured() {
            tracing::info!(provider = provider.name(), "oauth sign-in enabled");
        }

        let keys = crate::auth::api_keys::ApiKeys::new(db.clone(), args.session_cache_ttl);
        let chat = if args.usage_ledger == "on" {
            let store =
                crate::usage::store::UsageStore::open(&target, &db, args.store.db_max_connections)
                    .await?;
            chat.with_usage(crate::usage::Usage::start(
                store,
                db.clone(),
                crate::usage::ledger::LedgerConfig {
                    capacity: usize::try_from(args.usage_queue).unwrap_or(usize::MAX),
                    retention_days: args.usage_retention_days,
                    ..Default::default()
                },
                args.session_cache_ttl,
                shared.clone(),
            ))
        } else {
            tracing::warn!("usage ledger off: no usage rows, rate limits or budgets");
            chat
        };
        let conversations = crate::conversations::Conversations::new(
            crate::conversations::store::ConversationStore::open(
                &target,
                &db,
                args.store.db_max_connections,
            )
            .await?,
            crate::conversations::ConversationLimits {
                per_user: args.conversations_per_user,
                messages_per_conversation: args.conversation_messages,
                bytes_per_user: args.conversation_bytes_per_user,
                window: crate::conversations::context::Window {
                    max_chars: usize::try_from(args.conversation_context_chars)
                        .unwrap_or(usize::MAX),
                    max_messages: app::wire::MAX_MESSAGES,
                },
            },
        );
        match conversations.sweep_orphans(&db).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(
                gone,
                "deleted the conversations of accounts that no longer exist"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not sweep the conversations of deleted accounts")
            }
        }
        let state = Services {
            leptos,
            database_probe: crate::http::routes::DatabaseProbe::new(db.clone()),
            db,
            auth,
            keys,
            oauth,
            chat,
            conversations,
            metrics,
            trusted_proxies,
            metrics_token: crate::http::operator::MetricsToken::new(args.metrics_token.as_deref()),
            bots,
            logs: crate::observability::logs::global().clone(),
            processes: crate::ops::processes::ProcessManager::default(),
            monitor: crate::ops::monitor::Monitor::default(),
            targets: std::sync::Arc::new(config.targets),
            runtime: Runtime {
                started: Instant::now(),
                cookie_secure: args.cookie_secure(),
                body_read_timeout: args.body_read_timeout,
                replica,
                draining: CancellationToken::new(),
            },
            tracing: traces,
        };
        Ok(Self {
            api_listener,
            dashboard_listener,
            state,
            grace: args.shutdown_grace,
            limits,
            processes,
            probe_every: args.llm.probe_interval,
            drain: args.drain,
            shared,
        })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn dashboard_addr(&self) -> SocketAddr {
        self.dashboard_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves both listeners until `shutdown` is cancelled, then gives in-flight
    /// requests the grace period to finish before returning anyway.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            api_listener,
            dashboard_listener,
            mut state,
            grace,
            limits,
            processes,
            probe_every,
            drain,
            shared,
        } = self;
        // Draining begins with shutdown; the listeners close `drain` later
        // (at once by default), and the grace period counts from then.
        let draining = state.runtime.draining.clone();
        let closing = CancellationToken::new();
        tokio::spawn({
            let (shutdown, closing) = (shutdown.clone(), closing.clone());
            async move {
                shutdown.cancelled().await;
                draining.cancel();
                if !drain.is_zero() {
                    tracing::info!(
                        drain_secs = drain.as_secs_f64(),
                        "draining: health answers 503 while requests still come in"
                    );
                    tokio::time::sleep(drain).await;
                }
                closing.cancel();
            }
        });
        let leading = if processes.is_empty() {
            tokio::sync::watch::channel(false).1
        } else {
            crate::cluster::leader::elect(&state.db, closing.clone())
        };
        state.processes = crate::ops::processes::ProcessManager::start(
            processes,
            state.logs.clone(),
            state.metrics.exporter().clone(),
            leading,
        );
        let state = AppState::new(state);
        let managed = state.processes.clone();
        state.monitor.start(
            crate::ops::monitor::Sources {
                metrics: state.metrics.clone(),
                router: state.chat.router().clone(),
                db: state.db.clone(),
                logs: state.logs.clone(),
                processes: state.processes.clone(),
                targets: state.targets.clone(),
                started: state.runtime.started,
                usage: state.chat.usage().cloned(),
                probe_every,
            },
            shutdown.clone(),
        );
        if let (Some(shared), Some(me)) = (shared, state.runtime.replica.clone()) {
            crate::cluster::view::start(
                crate::cluster::view::Replicas::new(me),
                crate::cluster::view::Sources {
                    shared,
                    monitor: state.monitor.clone(),
                    logs: state.logs.clone(),
                    started: state.runtime.started,
                    draining: state.runtime.draining.clone(),
                },
                closing.clone(),
            );
        }
        tokio::spawn(crate::auth::sessions::follow_account_changes(
            state.db.clone(),
            state.auth.accounts().clone(),
            change_listeners(&state),
            closing.clone(),
        ));
        let throttle = state.auth.throttle().clone();
        let bots = state.bots.clone();
        let housekeeping = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            throttle.forget_stale();
                            bots.forget_stale();
                        }
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });

        // Streams still open as the grace period runs out get a final error
        // event (a second before the end, or half-way through a short grace)
        // instead of a connection closed under them.
        let wind_down = tokio::spawn({
            let (closing, chat) = (closing.clone(), state.chat.clone());
            let after = grace.saturating_sub(Duration::from_secs(1)).max(grace / 2);
            async move {
                closing.cancelled().await;
                tokio::time::sleep(after).await;
                chat.wind_down();
            }
        });
        let db = state.db.clone();
        let usage = state.chat.usage().cloned();
        let traces = state.tracing.clone();
        let api = serve::serve(
            api_listener,
            routes::app_router(state.clone()),
            limits.clone(),
            closing.clone(),
        );
        let dashboard = serve::serve(
            dashboard_listener,
            routes::dashboard_router(state),
            limits,
            closing.clone(),
        );
        let both = async { tokio::join!(api, dashboard) };
        tokio::pin!(both);
        tokio::select! {
            _ = &mut both => {}
            _ = async { closing.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace period over; closing remaining connections");
            }
        }
        housekeeping.abort();
        wind_down.abort();
        managed.shutdown().await;
        // Requests are done: every queued ledger row is written before the
        // database closes.
        if let Some(usage) = usage {
            usage.close().await;
        }
        db.close().await;
        // The last requests' spans, within a bounded wait.
        traces.shutdown().await;
        Ok(())
    }
}

/// The caches besides accounts' that PostgreSQL's change announcements reach:
/// API keys (a revocation by the CLI or another replica holds at once) and
/// accounts' limits.
fn change_listeners(state: &AppState) -> Vec<crate::auth::sessions::ChangeListener> {
    let keys = state.keys.clone();
    let mut listeners: Vec<crate::auth::sessions::ChangeListener> =
        vec![std::sync::Arc::new(move |heard: Option<&str>| {
            // Keys are remembered by their secret's hash, which the
            // announcement does not carry: forget them all (they are read
            // again, one query each, on their next use).
            if heard.is_none_or(|payload| payload.starts_with("key:")) {
                keys.forget_all();
            }
        })];
    if let Some(usage) = state.chat.usage().cloned() {
        listeners.push(std::sync::Arc::new(
            move |heard: Option<&str>| match heard {
                Some(payload) => {
                    if let Some(user_id) = payload.strip_prefix("limits:") {
                        usage.forget_user(user_id);
                    }
                }
                None => usage.forget_all_limits(),
            },
        ));
    }
    listeners
}
