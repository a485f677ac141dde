//! The binary's commands: `serve`, `worker`, `migrate`, `admin …`.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowtrail_domain::Services;
use flowtrail_domain::ingest::processor::{self, ProcessorConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{AdminCommand, Command, DlqCommand, ServeArgs, StorageArgs, WorkerArgs};
use crate::{HttpConfig, build_app_and_state, default_site_root};

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Worker(args) => work(args).await,
        Command::Migrate(storage) => {
            open(&storage).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser(args)) => {
            check_team_slug(&args.team)?;
            let password = read_password()?;
            let services = open(&args.storage).await?;
            services
                .create_user(&args.email, &password, &args.team, args.role.into())
                .await
                .context("cannot create the user")?;
            tracing::info!(email = %args.email, team = %args.team, "user created");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateTeam(args)) => {
            let slug = args.name.trim();
            check_team_slug(slug)?;
            let services = open(&args.storage).await?;
            let team = services.metadata.ensure_team(slug).await?;
            println!("{}", team.slug);
            Ok(())
        }
        Command::Admin(AdminCommand::Sweep(args)) => {
            let services = open(&args.storage).await?;
            let report = services.sweep(&args.retention.options()).await?;
            anyhow::ensure!(
                report.ran,
                "another sweeper is running (it holds the retention lease); try again later"
            );
            println!(
                "{}",
                serde_json::json!({
                    "flows": report.deleted.flows,
                    "bytes": report.deleted.bytes,
                    "objects": report.objects,
                })
            );
            Ok(())
        }
        Command::Admin(AdminCommand::CheckStorage(args)) => {
            let services = open(&args.storage).await?;
            let report = services.check_storage().await?;
            for key in &report.orphan_objects {
                println!("orphan object: {key}");
            }
            for key in &report.missing_objects {
                println!("missing object: {key}");
            }
            eprintln!(
                "{} objects, {} orphan, {} missing, {} unreferenced but younger than {} min \
                 (an ingest in progress), {} queued for deletion",
                report.objects,
                report.orphan_objects.len(),
                report.missing_objects.len(),
                report.recent_unreferenced,
                flowtrail_domain::retention::RECENT_OBJECT.as_secs() / 60,
                report.queued_deletions,
            );
            if !report.is_clean() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Export(args) => export(args).await,
        Command::Admin(AdminCommand::CreateApiKey(args)) => {
            check_team_slug(&args.team)?;
            let services = open(&args.storage).await?;
            services.metadata.ensure_team(&args.team).await?;
            let secret = services
                .create_api_key(&args.team, &args.name, args.scope.into())
                .await
                .context("cannot create the API key")?;
            // The contract: the key alone on stdout.
            println!("{secret}");
            Ok(())
        }
        Command::Admin(AdminCommand::Dlq(DlqCommand::List(args))) => {
            let services = open(&args.storage).await?;
            let team = team_id(&services, args.team.as_deref()).await?;
            for dead in services.queue.dead_letters(team, args.limit).await? {
                println!("{}", serde_json::to_string(&dead)?);
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Dlq(DlqCommand::Redrive(args))) => {
            let services = open(&args.storage).await?;
            let team = team_id(&services, args.team.as_deref()).await?;
            let moved = services.queue.redrive(team, args.id).await?;
            println!("{moved}");
            tracing::info!(moved, "dead jobs back in the queue");
            Ok(())
        }
    }
}

/// A team's slug, as every command that may create a team takes it: 1 to 64 of a-z, 0-9,
/// `-` and `_` (so a typo such as `--team 'Bad Name!'` is refused, not made a team).
fn check_team_slug(slug: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !slug.is_empty()
            && slug.len() <= 64
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "a team name is 1 to 64 of a-z, 0-9, - and _ (got {:?})",
        slug.chars().take(80).collect::<String>()
    );
    Ok(())
}

/// `flowtrail export`: the rows to stdout, a spinner with the count on stderr (when it is a
/// terminal), the totals on stderr at the end.
async fn export(args: crate::config::ExportArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let query = format!(
        "{}&format={}&level={}",
        args.filters.trim_start_matches('?'),
        args.format,
        args.level
    );
    let (filters, format, level) = crate::http::export::parse(&query).map_err(|error| {
        let field = match &error {
            crate::http::error::ApiError::Validation {
                field: Some(field), ..
            } => format!(" ({field})"),
            _ => String::new(),
        };
        anyhow::anyhow!("{error}{field}")
    })?;
    let services = open(&args.storage).await?;
    let team = team_id(&services, Some(&args.team))
        .await?
        .context("a team is needed")?;
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel(64);
    let producer = tokio::spawn({
        let services = services.clone();
        async move { services.export(team, filters, level, rows_tx).await }
    });
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} rows, {per_sec}, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut encoder =
        crate::http::export::Encoder::new(format, level).map_err(anyhow::Error::msg)?;
    if let Some(header) = encoder.header() {
        out.write_all(&header)?;
    }
    let mut rows = 0u64;
    while let Some(row) = rows_rx.recv().await {
        if let Some(bytes) = encoder.row(&row).map_err(anyhow::Error::msg)? {
            out.write_all(&bytes)?;
        }
        rows += 1;
        progress.inc(1);
    }
    if let Some(bytes) = encoder.finish().map_err(anyhow::Error::msg)? {
        out.write_all(&bytes)?;
    }
    out.flush()?;
    progress.finish_and_clear();
    let flows = producer.await.context("the export stopped")??;
    eprintln!("exported {flows} flows, {rows} rows");
    Ok(())
}

async fn team_id(services: &Services, slug: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(slug) = slug else { return Ok(None) };
    let team = services
        .metadata
        .team_by_slug(slug)
        .await?
        .with_context(|| format!("no team {slug:?}"))?;
    Ok(Some(team.id))
}

async fn open(storage: &StorageArgs) -> anyhow::Result<Arc<Services>> {
    let config = storage.storage()?;
    let services = Services::open(&config)
        .await
        .with_context(|| format!("cannot open storage ({config:?})"))?;
    Ok(Arc::new(services))
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

fn spawn_workers(
    services: &Arc<Services>,
    count: usize,
    lease_seconds: u64,
    shutdown: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let config = ProcessorConfig {
        lease: Duration::from_secs(lease_seconds.max(1)),
        ..ProcessorConfig::default()
    };
    let mut workers = JoinSet::new();
    for _ in 0..count {
        workers.spawn(processor::run(
            services.clone(),
            config.clone(),
            shutdown.clone(),
        ));
    }
    workers
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let services = open(&args.storage).await?;
    let admin = match (&args.admin_email, &args.admin_password) {
        (Some(email), Some(password)) => Some((email.as_str(), password.as_str())),
        (None, None) => None,
        _ => {
            anyhow::bail!("set both FLOWTRAIL_ADMIN_EMAIL and FLOWTRAIL_ADMIN_PASSWORD, or neither")
        }
    };
    services
        .bootstrap(admin)
        .await
        .context("cannot prepare the first start")?;
    let site_root = args.site_root.clone().unwrap_or_else(default_site_root);
    if !site_root.join("pkg").is_dir() {
        tracing::warn!(site_root = %site_root.display(), "dashboard assets not found; pages will not hydrate (run scripts/build-site.sh)");
    }
    let config = HttpConfig {
        max_body_bytes: args.max_body_bytes,
        secure_cookies: args.secure_cookies,
        rate_limit_per_second: args.rate_limit_per_second,
        rate_limit_burst: args.rate_limit_burst,
        max_queue_depth: args.max_queue_depth,
        ..HttpConfig::new(args.addr, site_root)
    };
    let (app, state) = build_app_and_state(services.clone(), &config).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let (stop, shutdown) = watch::channel(false);
    let grpc = match args.otlp_grpc_addr.0 {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} for OTLP/gRPC (--otlp-grpc-addr; 0 turns it off)")
            })?;
            tracing::info!(addr = %listener.local_addr()?, "OTLP/gRPC receiver listening");
            let mut stopped = shutdown.clone();
            Some(tokio::spawn(crate::otlp::grpc::serve(
                state,
                listener,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    let mut workers = spawn_workers(&services, args.workers, args.job_lease_seconds, &shutdown);
    workers.spawn(processor::sweep_idempotency_keys(
        services.clone(),
        Duration::from_secs(args.storage.idempotency_window_hours * 3600),
        Duration::from_secs(600),
        shutdown.clone(),
    ));
    workers.spawn(services.clone().run_sweeper(
        Duration::from_secs(args.retention_interval_seconds),
        args.retention.options(),
        shutdown.clone(),
    ));
    workers.spawn(flush_usage(services.clone(), shutdown.clone()));
    tracing::info!(addr = %listener.local_addr()?, workers = args.workers, "Flow Trail is serving");
    // The client's address reaches handlers (sign-in throttling per client).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    let _ = stop.send(true);
    if let Some(grpc) = grpc {
        match grpc.await {
            Ok(Err(error)) => tracing::warn!(%error, "the OTLP/gRPC receiver failed"),
            Err(error) => tracing::warn!(%error, "the OTLP/gRPC receiver panicked"),
            Ok(Ok(())) => {}
        }
    }
    while workers.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

async fn work(args: WorkerArgs) -> anyhow::Result<()> {
    let services = open(&args.storage).await?;
    let (stop, shutdown) = watch::channel(false);
    let mut workers = spawn_workers(
        &services,
        args.workers.max(1),
        args.job_lease_seconds,
        &shutdown,
    );
    workers.spawn(services.clone().run_sweeper(
        Duration::from_secs(args.retention_interval_seconds),
        args.retention.options(),
        shutdown.clone(),
    ));
    tracing::info!(workers = args.workers.max(1), "workers running");
    shutdown_signal().await;
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    Ok(())
}

/// Writes this process's usage counts every second, and once more on shutdown.
async fn flush_usage(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = shutdown.changed() => true,
        };
        if let Err(error) = services.flush_usage().await {
            tracing::warn!(%error, "usage counts not written; retried in a second");
        }
        if stop {
            return;
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
