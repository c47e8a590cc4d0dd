//! `stratum serve`: opens the store, loads the demo and scrape configs,
//! starts the scheduler and serves HTTP until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{ServeArgs, load_configs, open_store};
use crate::http::{AppState, router};

/// Runs the server.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:8080",
            args.listen
        )
    })?;
    let mut auth_settings = args.auth.settings();
    if auth_settings.anonymous.is_some() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "--anonymous is refused on {addr}: anonymous access is only allowed on a loopback address"
        );
    }
    let data_dir = &args.auth.token.data_dir;
    if !auth_settings.has_keys() {
        let (key, created) = crate::auth::ensure_signing_key(data_dir)?;
        tracing::info!(
            key = %key.display(),
            created,
            command = %format!("stratum token --data-dir {} --subject <you> --role admin", data_dir.display()),
            "no --auth-* key configured: tokens are verified with the generated signing key"
        );
        auth_settings.hs256_secret_file = Some(key);
    }
    if args.demo && addr.ip().is_loopback() && auth_settings.anonymous.is_none() {
        auth_settings.anonymous = Some(crate::auth::Role::Viewer);
        tracing::info!("demo mode: anonymous viewer access enabled on loopback");
    }
    let auth = crate::auth::Authenticator::from_settings(&auth_settings)
        .context("loading the authentication keys")?;
    let cors_origins = crate::http::parse_origins(&args.cors_origins)?;
    if let Some(role) = auth_settings.anonymous {
        tracing::info!(
            role = role.as_str(),
            scoped = auth_settings.anonymous_scope.is_some(),
            "anonymous access is on for requests without a token"
        );
    }
    // Installed before anything records, so no early count is lost.
    let _ = crate::metrics::handle();
    let store = open_store(&args.database_url).await?;

    let mut configs = Vec::new();
    if args.demo {
        configs.extend(
            crate::demo::load(&store, &args.demo_work_dir)
                .await
                .context("loading the demo")?,
        );
    }
    let loaded = load_configs(&args.scrape_configs).context("loading scrape configs")?;
    configs.extend(loaded.into_iter().map(Arc::new));
    let mut topologies: Vec<Arc<stratum_scrapers::topology::LoadedTopology>> = Vec::new();
    if args.demo {
        topologies.extend(crate::demo::topologies(&args.demo_work_dir)?);
    }
    topologies.extend(
        stratum_scrapers::topology::load_paths(&args.scrape_configs)
            .context("loading topologies")?
            .into_iter()
            .map(Arc::new),
    );

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let scraper_ids = stratum_scrapers::ownership::ScraperSet::new(
        configs
            .iter()
            .map(|c| stratum_scrapers::scheduler::scraper_id(c)),
    );
    let ownership = stratum_scrapers::ownership::start(
        &store,
        scraper_ids.clone(),
        args.ownership_interval,
        &tracker,
        cancel.clone(),
    )
    .await;
    crate::maintenance::spawn(store.clone(), scraper_ids.clone(), &tracker, cancel.clone());
    stratum_scrapers::topology::spawn_all(store.clone(), topologies, &tracker, cancel.clone());
    stratum_scrapers::scheduler::spawn_all(
        store.clone(),
        configs,
        &tracker,
        cancel.clone(),
        !args.demo,
        ownership.clone(),
    );
    if args.watch_crds {
        stratum_scrapers::crd_controller::start(
            store.clone(),
            scraper_ids,
            ownership,
            &tracker,
            cancel.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("--watch-crds: {e}"))?;
        tracing::info!("watching ScrapeConfig and Topology resources");
    }

    let options = args.schema_options();
    let auth = Arc::new(auth);
    spawn_revocation_reload(store.clone(), auth.clone(), &tracker, cancel.clone()).await;
    if auth_settings.jwks_file.is_some() {
        spawn_jwks_reload(auth.clone(), &tracker, cancel.clone());
    }
    let mut state = AppState::new(store, options);
    state.shutdown = cancel.clone();
    state.rate_limits = Some(Arc::new(crate::ratelimit::RateLimits::new(
        crate::ratelimit::RateSettings {
            per_second: args.rate_per_second,
            burst: args.rate_burst,
            points_per_minute: args.points_per_minute,
            connections: args.max_connections_per_token,
        },
    )));
    state.auth = auth;
    state.cors_origins = cors_origins;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, graphiql = %format!("http://{local}/graphql"), "stratum listening");
    println!("stratum listening on http://{local}/graphql");

    let shutdown = cancel.clone();
    let draining = state.draining.clone();
    let (delay, grace_period) = (args.shutdown_delay, args.shutdown_grace);
    let rate_limits = state.rate_limits.clone();
    if let Some(limits) = rate_limits {
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => limits.forget_idle(),
                }
            }
        });
    }
    let server = axum::serve(
        crate::http::listener(listener),
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        wait_for_signal().await;
        // First unready, still serving, so load balancers take the
        // replica out before its connections are refused (SPEC §14).
        draining.cancel();
        tracing::info!(delay = ?delay, "shutting down: /readyz answers 503");
        tokio::time::sleep(delay).await;
        tracing::info!(grace = ?grace_period, "no new connections; in-flight requests finish, WebSockets close with 1001, scrapers flush");
        shutdown.cancel();
    });
    // On a signal: stop accepting, let in-flight requests and the
    // background tasks (scrapers flushing their batch) finish, but no
    // longer than the grace period.
    let grace = args.shutdown_grace;
    let drained = async {
        server.await.context("serving HTTP")?;
        tracker.close();
        tracker.wait().await;
        Ok::<_, anyhow::Error>(())
    };
    let expired = async {
        cancel.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = drained => result?,
        _ = expired => tracing::warn!(?grace, "the grace period is over: exiting with work still in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often revoked tokens are reloaded.
const REVOCATION_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

/// Loads the revoked tokens now and every 30 s.
async fn spawn_revocation_reload(
    store: stratum_domain::Store,
    auth: Arc<crate::auth::Authenticator>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    async fn reload(store: &stratum_domain::Store, auth: &crate::auth::Authenticator) {
        match store.revoked_tokens().await {
            Ok(ids) => auth.set_revoked(ids.into_iter().collect()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload revoked tokens; keeping the last set")
            }
        }
    }
    reload(&store, &auth).await;
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(REVOCATION_RELOAD);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => reload(&store, &auth).await,
            }
        }
    });
}

/// How often the JWKS file is checked for changes.
const JWKS_RELOAD: std::time::Duration = std::time::Duration::from_secs(5);

/// Reloads the JWKS file every 5 s when its content changed.
fn spawn_jwks_reload(
    auth: Arc<crate::auth::Authenticator>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(JWKS_RELOAD);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => match auth.reload_jwks() {
                    Ok(true) => tracing::info!("reloaded the JWKS file: its keys replace the old ones"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot reload the JWKS file; keeping the last keys"),
                },
            }
        }
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
