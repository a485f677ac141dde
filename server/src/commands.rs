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
        Command::Admin(AdminCommand::EvaluateAlerts(args)) => {
            let services = open(&args.storage).await?;
            // "Evaluates every alert rule once now" (CONTRACT.md): intervals aside.
            let report = flowtrail_domain::alerts::evaluate_all(
                &services,
                &flowtrail_domain::alerts::AlertOptions {
                    every_rule: true,
                    ..Default::default()
                },
            )
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "another process is evaluating the alert rules (it holds the alerts lease); try again later"
                )
            })?;
            println!("{}", serde_json::to_string(&report)?);
            anyhow::ensure!(
                report.failed == 0,
                "{} alert rules could not be evaluated (see the log)",
                report.failed
            );
            Ok(())
        }
        Command::Admin(AdminCommand::CheckStorage(args)) => {
            let services = open(&args.storage).await?;
            let (mut report, deleted) = if args.delete_orphans {
                let (report, deleted) = services.delete_orphans().await?;
                (report, Some(deleted))
            } else {
                (services.check_storage().await?, None)
            };
            for key in &report.orphan_objects {
                match &deleted {
                    Some(deleted) if deleted.contains(key) => {
                        println!("deleted orphan object: {key}")
                    }
                    Some(_) => println!("orphan object, referenced again, kept: {key}"),
                    None => println!("orphan object: {key}"),
                }
            }
            if let Some(deleted) = &deleted {
                report.orphan_objects.retain(|key| !deleted.contains(key));
            }
            for key in &report.missing_objects {
                println!("missing object: {key}");
            }
            eprintln!(
                "{} objects, {} orphan{}, {} missing, {} unreferenced but younger than {} min \
                 (an ingest in progress), {} queued for deletion",
                report.objects,
                report.orphan_objects.len(),
                match &deleted {
                    Some(deleted) => format!(" left ({} deleted)", deleted.len()),
                    None => String::new(),
                },
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
        Command::Bundle(args) => bundle(args).await,
        Command::Import(args) => import(args).await,
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
/// terminal), the totals on stderr at the end. A reader that goes away (`| head`) ends it
/// quietly; a failure mid-way exits 1 before the file is completed (no Parquet footer), so a
/// cut export never passes for a whole one.
async fn export(args: crate::config::ExportArgs) -> anyhow::Result<()> {
    use crate::config::{ExportFormat, ExportLevel};
    use crate::http::export::Format;
    use flowtrail_domain::flows::export::Level;
    use std::io::{IsTerminal, Write};
    // A bare word (`flowtrail export competitor_selection`) is not a filter: it would
    // export every flow.
    for piece in args.filters.iter().flat_map(|f| f.split('&')) {
        let piece = piece.trim().trim_start_matches('?');
        anyhow::ensure!(
            piece.is_empty() || piece.contains('='),
            "{piece:?} is not a filter: give name=value (pipeline={piece}) or an option \
             (--pipeline {piece}); see flowtrail export --help"
        );
    }
    let (filters, given_format, given_level) =
        crate::http::export::parse(&args.query()).map_err(|error| {
            let field = match &error {
                crate::http::error::ApiError::Validation {
                    field: Some(field), ..
                } => format!(" ({field})"),
                _ => String::new(),
            };
            anyhow::anyhow!("{error}{field}")
        })?;
    anyhow::ensure!(
        given_format.is_none() && given_level.is_none(),
        "give the format and the level as --format and --level, not in the filters"
    );
    let format = match args.format {
        ExportFormat::Jsonl => Format::JsonLines,
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Parquet => Format::Parquet,
    };
    let level = match args.level {
        ExportLevel::Flows => Level::Flows,
        ExportLevel::Steps => Level::Steps,
        ExportLevel::Observations => Level::Observations,
    };
    let services = open_existing(&args.storage).await?;
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
    // Into a file (`-o -`: stdout): written beside it under a temporary name, renamed when
    // complete; an interrupt (Ctrl-C, SIGTERM) removes the temporary file.
    let output = args.output.as_ref().filter(|path| path.as_os_str() != "-");
    let destination = output.map(|path| Destination::of(path)).transpose()?;
    if let Some(destination) = &destination {
        destination.abandon_on_interrupt();
    }
    if destination.is_none() && matches!(format, Format::Parquet) && std::io::stdout().is_terminal()
    {
        anyhow::bail!(
            "Parquet is binary: redirect stdout to a file (> out.parquet) or give --output"
        );
    }
    let sink: Box<dyn Write> = match &destination {
        Some(destination) => Box::new(destination.create()?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(sink);
    let result = write_export(&mut out, &mut rows_rx, format, level, &progress).await;
    drop(rows_rx);
    let flows = producer.await.context("the export stopped");
    progress.finish_and_clear();
    let outcome = (|| -> anyhow::Result<Option<(u64, u64)>> {
        let (rows, encoder) = match result {
            Ok(done) => done,
            // The reader went away (`| head`): nothing more to say.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(None),
            Err(error) => return Err(error).context("cannot write the export"),
        };
        let flows = flows?.context("the export failed part-way; what was written is incomplete")?;
        let finished = encoder.finish().map_err(anyhow::Error::msg)?;
        let ended = (|| -> std::io::Result<()> {
            if let Some(bytes) = finished {
                out.write_all(&bytes)?;
            }
            out.flush()?;
            if let Some(partial) = destination.as_ref().and_then(Destination::partial) {
                std::fs::File::open(partial)?.sync_all()?;
            }
            Ok(())
        })();
        match ended {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
            other => other
                .context("cannot write the export")
                .map(|()| Some((flows, rows))),
        }
    })();
    drop(out);
    if let Some(destination) = &destination {
        match &outcome {
            Ok(Some(_)) => destination.commit()?,
            _ => destination.abandon(),
        }
    }
    if let Some((flows, rows)) = outcome? {
        eprintln!("exported {flows} flows, {rows} rows");
    }
    Ok(())
}

/// Where `--output PATH` writes. A regular file (or a new name) is written beside its real
/// path — symbolic links followed, so `-o link` replaces the file the link names and keeps
/// the link — under a temporary name, then renamed onto it with the mode the old file had;
/// a FIFO, a character device (`/dev/null`, `/dev/stdout`) or a socket is written in place.
#[derive(Debug)]
enum Destination {
    File {
        real: std::path::PathBuf,
        partial: std::path::PathBuf,
        mode: Option<std::fs::Permissions>,
    },
    Special(std::path::PathBuf),
}

impl Destination {
    /// Errors: `path` is a directory, or a chain of more than 40 symbolic links (the limit
    /// of Linux's `path_resolution(7)`).
    fn of(path: &std::path::Path) -> anyhow::Result<Self> {
        // The standard streams and descriptors by name (`/dev/stdout`, `/dev/fd/3`,
        // `/proc/self/fd/1`) are what the shell opened: appended to in place, as `>` and `>>`
        // left them.
        let descriptor = ["/dev/stdout", "/dev/stderr", "/dev/fd", "/proc"]
            .iter()
            .any(|prefix| path.starts_with(prefix));
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                anyhow::bail!("{} is a directory: give a file name", path.display())
            }
            Ok(meta) if !meta.is_file() || descriptor => Ok(Self::Special(path.to_owned())),
            Ok(meta) => {
                let real = std::fs::canonicalize(path)
                    .with_context(|| format!("cannot resolve {}", path.display()))?;
                Ok(Self::file(real, Some(meta.permissions())))
            }
            // Nothing there yet: a new name, or a link to one.
            Err(_) => {
                let mut real = path.to_owned();
                for _ in 0..40 {
                    match std::fs::symlink_metadata(&real) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            let target = std::fs::read_link(&real).with_context(|| {
                                format!("cannot read the link {}", real.display())
                            })?;
                            real = match real.parent() {
                                Some(parent) => parent.join(target),
                                None => target,
                            };
                        }
                        _ => return Ok(Self::file(real, None)),
                    }
                }
                anyhow::bail!("{}: too many levels of symbolic links", path.display())
            }
        }
    }

    fn file(real: std::path::PathBuf, mode: Option<std::fs::Permissions>) -> Self {
        let mut name = real.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = real.with_file_name(name);
        Self::File {
            real,
            partial,
            mode,
        }
    }

    /// The temporary file an interrupt must remove, if any.
    fn partial(&self) -> Option<&std::path::Path> {
        match self {
            Self::File { partial, .. } => Some(partial),
            Self::Special(_) => None,
        }
    }

    fn create(&self) -> anyhow::Result<std::fs::File> {
        match self {
            Self::File {
                real,
                partial,
                mode,
            } => {
                let file = std::fs::File::create(partial).with_context(|| {
                    format!("cannot write {} (as {})", real.display(), partial.display())
                })?;
                if let Some(mode) = mode {
                    file.set_permissions(mode.clone())
                        .with_context(|| format!("cannot set the mode of {}", partial.display()))?;
                }
                Ok(file)
            }
            Self::Special(path) => std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display())),
        }
    }

    /// Puts the complete file in place.
    fn commit(&self) -> anyhow::Result<()> {
        if let Self::File { real, partial, .. } = self {
            std::fs::rename(partial, real)
                .with_context(|| format!("cannot rename the export to {}", real.display()))?;
        }
        Ok(())
    }

    /// On an interrupt (Ctrl-C, SIGTERM, SIGHUP), removes the temporary file and exits 130.
    fn abandon_on_interrupt(&self) {
        if let Some(partial) = self.partial().map(std::path::Path::to_owned) {
            tokio::spawn(async move {
                interrupted().await;
                // Already renamed into place: the file was complete when the signal came.
                if std::fs::remove_file(&partial).is_ok() {
                    eprintln!("interrupted: nothing was written");
                } else {
                    eprintln!("interrupted after the file was complete");
                }
                std::process::exit(130);
            });
        }
    }

    /// Removes what an unfinished write left.
    fn abandon(&self) {
        if let Some(partial) = self.partial() {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// Encodes the rows as they come and writes them; answers the row count and the encoder (whose
/// footer is written only once the producer is known to have succeeded).
async fn write_export(
    out: &mut impl std::io::Write,
    rows_rx: &mut tokio::sync::mpsc::Receiver<flowtrail_domain::flows::export::Row>,
    format: crate::http::export::Format,
    level: flowtrail_domain::flows::export::Level,
    progress: &indicatif::ProgressBar,
) -> std::io::Result<(u64, crate::http::export::Encoder)> {
    let mut encoder =
        crate::http::export::Encoder::new(format, level).map_err(std::io::Error::other)?;
    if let Some(header) = encoder.header() {
        out.write_all(&header)?;
    }
    let mut rows = 0u64;
    while let Some(row) = rows_rx.recv().await {
        if let Some(bytes) = encoder.row(&row).map_err(std::io::Error::other)? {
            out.write_all(&bytes)?;
        }
        rows += 1;
        progress.inc(1);
    }
    Ok((rows, encoder))
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM or SIGHUP.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hangup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `flowtrail bundle`: a debugging bundle of the flows to stdout.
async fn bundle(mut args: crate::config::BundleArgs) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    args.output = args.output.filter(|path| path.as_os_str() != "-");
    anyhow::ensure!(
        args.output.is_some() || !std::io::stdout().is_terminal(),
        "a bundle is binary: redirect stdout to a file (> run.ft) or give --output"
    );
    let services = open_existing(&args.storage).await?;
    let team = team_id(&services, Some(&args.team))
        .await?
        .context("a team is needed")?;
    for &id in &args.ids {
        anyhow::ensure!(
            services.metadata.get_flow(team, id).await?.is_some(),
            "team {:?} has no flow {id}",
            args.team
        );
    }
    let bytes = services.bundle(team, &args.ids).await?;
    if let Some(path) = &args.output {
        let destination = Destination::of(path)?;
        destination.abandon_on_interrupt();
        let written = destination.create().and_then(|mut file| {
            file.write_all(&bytes)
                .and_then(|()| match destination.partial() {
                    Some(_) => file.sync_all(),
                    None => Ok(()),
                })
                .with_context(|| format!("cannot write {}", path.display()))
        });
        match written {
            Ok(()) => destination.commit()?,
            Err(error) => {
                destination.abandon();
                return Err(error);
            }
        }
    } else {
        let mut out = std::io::stdout().lock();
        match out.write_all(&bytes).and_then(|()| out.flush()) {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("cannot write the bundle")?,
        }
    }
    eprintln!("bundled {} flows, {} bytes", args.ids.len(), bytes.len());
    Ok(())
}

/// `flowtrail import`: loads a bundle, prints the report as JSON on stdout and a line on
/// stderr. A refused bundle exits 1 naming the entry and the checksum that failed.
async fn import(args: crate::config::ImportArgs) -> anyhow::Result<()> {
    use flowtrail_domain::flows::bundle::{MAX_UNPACKED_BYTES, ZSTD_MAGIC};
    use std::io::Read;
    let (mut input, name): (Box<dyn Read>, String) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), "standard input".into())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        (Box::new(file), args.file.display().to_string())
    };
    // Refused from its first bytes when it is not a bundle (`/dev/zero`, a JSON file), and
    // never read past the most a bundle may hold (its compressed form is smaller).
    let mut magic = [0u8; 4];
    input
        .read_exact(&mut magic)
        .with_context(|| format!("{name} is not a Flow Trail bundle: it is too short"))?;
    anyhow::ensure!(
        magic == ZSTD_MAGIC,
        "{name} is not a Flow Trail bundle (a zstd-compressed tar, as `flowtrail bundle` and \
         GET /api/v1/flows/{{id}}/bundle write it)"
    );
    let mut bytes = magic.to_vec();
    input
        .take(MAX_UNPACKED_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    anyhow::ensure!(
        (bytes.len() as u64) <= MAX_UNPACKED_BYTES,
        "{name} is larger than {MAX_UNPACKED_BYTES} bytes, the most a bundle holds"
    );
    // From here an interrupt would stop the import between the objects it puts and the one
    // transaction that refers to them: the first one waits for the import to end.
    tokio::spawn(async {
        interrupted().await;
        eprintln!(
            "finishing the import: it is written whole or not at all (interrupt again to stop \
             now; objects it already wrote are then orphans, which `flowtrail admin \
             check-storage --delete-orphans` deletes after 15 minutes)"
        );
        interrupted().await;
        std::process::exit(130);
    });
    let services = open_existing(&args.storage).await?;
    // The default team is the one `serve` makes at its first start; a deployment only
    // migrated so far takes an import too.
    if args.team == "default" {
        services.metadata.ensure_team("default").await?;
    }
    let team = team_id(&services, Some(&args.team))
        .await?
        .context("a team is needed")?;
    let report = services
        .import_bundle(team, &bytes, MAX_UNPACKED_BYTES)
        .await
        .map_err(|error| match error {
            flowtrail_domain::Error::Validation {
                field: Some(field),
                message,
            } => {
                anyhow::anyhow!("the bundle is refused ({field}): {message}; nothing was imported")
            }
            flowtrail_domain::Error::TooLarge(message) => {
                anyhow::anyhow!("the bundle is refused: {message}; nothing was imported")
            }
            other => anyhow::Error::new(other).context("the bundle was not imported"),
        })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "imported {} flows, skipped {} (the same or a newer version was already stored)",
        report.imported, report.skipped
    );
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

/// [`open`] for commands that read what a server stored: on the embedded default, a data
/// directory without a database is an error (a mistyped `--data-dir`), not a new empty one.
async fn open_existing(storage: &StorageArgs) -> anyhow::Result<Arc<Services>> {
    if storage.database_url.is_none() {
        let database = storage.data_dir.join("flowtrail.db");
        anyhow::ensure!(
            database.exists(),
            "no Flow Trail data in {}: give the --data-dir (or FLOWTRAIL_DATA_DIR, or \
             --database-url) that `flowtrail serve` uses",
            storage.data_dir.display()
        );
    }
    open(storage).await
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
    let streams = state.clone();
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
    spawn_alerts(
        &mut workers,
        &services,
        args.alert_interval_seconds,
        &shutdown,
    );
    tracing::info!(addr = %listener.local_addr()?, workers = args.workers, "Flow Trail is serving");
    // The client's address reaches handlers (sign-in throttling per client); a client that
    // sends its request too slowly is cut off (crate::http::serve).
    let timeouts = crate::http::serve::ReadTimeouts {
        head: Duration::from_secs(args.header_read_timeout_seconds),
        body_idle: Duration::from_secs(args.body_idle_timeout_seconds),
    };
    let (signalled, mut stopping) = watch::channel(false);
    let server = crate::http::serve::serve(listener, app, timeouts, async move {
        shutdown_signal().await;
        // Open event streams would keep the graceful shutdown waiting for ever.
        streams.0.close_streams();
        let _ = signalled.send(true);
    });
    // A client that never finishes its request (half-sent headers or body) would keep the
    // graceful shutdown waiting for ever too: it gets the grace period, then is cut off.
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    tokio::select! {
        () = server => {}
        _ = async {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "requests still open after the shutdown grace period; closing them");
        }
    }
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
    spawn_alerts(
        &mut workers,
        &services,
        args.alert_interval_seconds,
        &shutdown,
    );
    tracing::info!(workers = args.workers.max(1), "workers running");
    shutdown_signal().await;
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    Ok(())
}

/// The drift alert evaluator, every `seconds` (none when 0).
fn spawn_alerts(
    workers: &mut JoinSet<()>,
    services: &Arc<Services>,
    seconds: u64,
    shutdown: &watch::Receiver<bool>,
) {
    if seconds > 0 {
        workers.spawn(services.clone().run_alerts(
            Duration::from_secs(seconds),
            flowtrail_domain::alerts::AlertOptions::default(),
            shutdown.clone(),
        ));
    }
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
