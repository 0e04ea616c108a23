//! The `consentgate` binary: run the proxy, check a config, or start the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use consentgate::config::{parse_upstream_url, Config};
use consentgate::proxy::{KeySource, Proxy, Sites};
use consentgate::server::{ConfigSource, Server};

/// A streaming reverse proxy that blocks third-party widgets and trackers until the visitor
/// consents (GDPR).
#[derive(Parser, Debug)]
#[command(
    name = "consentgate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("CONSENTGATE_GIT_REV"), ")"),
    about,
    long_about = None
)]
struct Cli {
    /// TOML configuration file (see config/consentgate.example.toml).
    #[arg(long, value_name = "FILE", global = false)]
    config: Option<PathBuf>,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Origin to proxy to, e.g. http://127.0.0.1:9000; overrides `upstream.url`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Log format on stderr: human or json (one object per line). Level: CONSENTGATE_LOG.
    #[arg(long, value_name = "FORMAT", default_value = "human", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a configuration file; prints every problem with its key path and line.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Start a demo origin (pages with Zendesk, Zopim, Freshchat, GA4, Meta pixel, YouTube) and
    /// the proxy in front of it.
    Demo {
        /// Address for the proxy.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address for the demo origin (port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        origin_listen: SocketAddr,
    },
    /// Consent receipts (proof of consent).
    Receipts {
        #[command(subcommand)]
        action: ReceiptsCommand,
    },
    /// Print the privacy-statement sections for the configured services (GDPR Art. 13).
    Policy {
        /// Language (en, de, fr, nl, es, it, ru, or one added in the config).
        #[arg(long, default_value = "en")]
        lang: String,
        /// md or html.
        #[arg(long, default_value = "md")]
        format: String,
        /// The [[site]] whose services and controller to describe (needed when there are sites).
        #[arg(long)]
        site: Option<String>,
    },
    /// Print the Art. 30 record of processing activities for the configured services.
    Records {
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The [[site]] whose processing to list (needed when there are sites).
        #[arg(long)]
        site: Option<String>,
    },
    /// Crawl a site through the rewriter and report the services and third-party origins it
    /// uses, a config snippet covering them, and privacy-policy sections.
    Scan {
        /// The first page, e.g. https://www.example.com/
        url: String,
        /// How many pages to fetch at most (same-site links, breadth first).
        #[arg(long, default_value_t = 20)]
        pages: usize,
        /// Language of the privacy-policy sections.
        #[arg(long, default_value = "en")]
        lang: String,
    },
}

#[derive(Subcommand, Debug)]
enum ReceiptsCommand {
    /// Walk each site's hash chain and report the first broken link (exit 1 if any).
    Verify {
        /// Only this site (host name).
        #[arg(long)]
        site: Option<String>,
    },
}

fn verify_receipts(cli: &Cli, only: Option<&str>) -> Result<bool> {
    use consentgate::receipts::{verify, Verified};
    let config = match &cli.config {
        Some(path) => Config::load(path)
            .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display()))?,
        None => Config::defaults().map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let open = consentgate::proxy::receipt_opener(&config.receipts.store)
        .context("receipts are off in this configuration")?;
    let mut store = open()?;
    let sites = match only {
        Some(s) => vec![s.to_string()],
        None => store.sites()?,
    };
    let mut ok = true;
    for site in sites {
        match verify(&mut *store, &site)? {
            Verified::Intact { receipts } => println!("{site}: intact ({receipts} receipts)"),
            Verified::Broken {
                receipts_checked,
                id,
                reason,
            } => {
                ok = false;
                println!("{site}: BROKEN at receipt {id} (receipt {receipts_checked} of the chain): {reason}");
            }
        }
    }
    Ok(ok)
}

fn load_config(cli: &Cli) -> Result<Config> {
    match &cli.config {
        Some(path) => Config::load(path)
            .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display())),
        None => Config::defaults().map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// The configuration of one `[[site]]` (by name), or the top level when there are none.
fn pick_site(config: Config, name: Option<&str>) -> Result<Config> {
    let names = || {
        config
            .sites
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        None if config.sites.is_empty() => Ok(config),
        None => anyhow::bail!(
            "this configuration has {} sites; pick one with --site ({})",
            config.sites.len(),
            names()
        ),
        Some(n) if config.sites.is_empty() => {
            anyhow::bail!("--site {n}: this configuration has no [[site]] blocks")
        }
        Some(n) => {
            let known = names();
            match config.sites.into_iter().find(|s| s.name == n) {
                Some(s) => Ok(s.config),
                None => anyhow::bail!("--site {n}: no such site; the sites are {known}"),
            }
        }
    }
}

fn privacy_texts(cli: &Cli) -> Result<String> {
    use consentgate::privacy::{records, records_csv, site_services, statement, Format};
    let config = load_config(cli)?;
    let site = match &cli.command {
        Some(Command::Policy { site, .. } | Command::Records { site, .. }) => site.as_deref(),
        _ => None,
    };
    let config = pick_site(config, site)?;
    let services = site_services(&config.catalog, config.consent.shown.as_deref());
    let years = config.retention_years();
    Ok(match &cli.command {
        Some(Command::Policy { lang, format, .. }) => {
            anyhow::ensure!(
                config.languages.codes().any(|c| c == lang),
                "no texts for language `{lang}`; available: {}",
                config.languages.codes().collect::<Vec<_>>().join(", ")
            );
            let f = match format.as_str() {
                "md" => Format::Markdown,
                "html" => Format::Html,
                other => anyhow::bail!("--format {other}: use md or html"),
            };
            statement(
                &services,
                &config.languages,
                lang,
                &config.privacy,
                years,
                f,
            )
        }
        Some(Command::Records { format, .. }) => {
            let rows = records(&services, years);
            match format.as_str() {
                "csv" => records_csv(&rows),
                "json" => format!("{}\n", serde_json::to_string_pretty(&rows)?),
                other => anyhow::bail!("--format {other}: use csv or json"),
            }
        }
        _ => String::new(),
    })
}

fn init_logging(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONSENTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "human" => builder.init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        other => anyhow::bail!("--log-format {other}: use human or json"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

fn build_sites(config: Config) -> Result<Arc<Sites>> {
    let (sites, key) = Sites::new(config).map_err(anyhow::Error::msg)?;
    if key == KeySource::Random {
        tracing::warn!(
            "NO SIGNING KEY CONFIGURED: using a random key. Consent cookies will be invalid after \
             a restart and differ between instances. Set consent.key or CONSENTGATE_KEY."
        );
    }
    for (name, proxy) in sites.iter() {
        tracing::info!(site = name, upstream = %proxy.config.upstream.url, addresses = proxy.config.upstream.urls().count(), "site");
    }
    Ok(Arc::new(sites))
}

/// Where the proxy's configuration comes from: the file and the flags that override it.
fn config_source(cli: &Cli) -> ConfigSource {
    ConfigSource {
        path: cli.config.clone(),
        listen: cli.listen,
        upstream: cli.upstream.clone(),
    }
}

/// Runs the proxy with its configuration, read and validated before the runtime started.
async fn run(source: ConfigSource, config: Config) -> Result<()> {
    let listen = config.server.listen;
    let upstream = config.upstream.url.clone();
    let admin = config.admin.clone();
    let tls = config.tls.clone();
    let sites = build_sites(config)?;
    let server = Server::new(sites, source);
    if let Some(tls) = tls {
        // Certificates are read again on every reload.
        let certs = consentgate::tls::Certificates::load(&tls.certs).map_err(anyhow::Error::msg)?;
        server.serve_certificates(certs.clone());
        let acceptor = certs.acceptor().map_err(anyhow::Error::msg)?;
        let l = TcpListener::bind(tls.listen)
            .await
            .with_context(|| format!("cannot listen on {} for TLS", tls.listen))?;
        tracing::info!(listen = %l.local_addr()?, certificates = tls.certs.len(), "TLS listener is running");
        tokio::spawn(consentgate::proxy::serve_tls(
            server.resolver(),
            l,
            acceptor,
            shutdown_signal(),
        ));
        if let Some(r) = tls.redirect_listen {
            let l = TcpListener::bind(r)
                .await
                .with_context(|| format!("cannot listen on {r} for HTTP→HTTPS redirects"))?;
            tracing::info!(listen = %l.local_addr()?, "redirecting plain HTTP to HTTPS");
            tokio::spawn(consentgate::proxy::serve_redirect(
                l,
                tls.listen.port(),
                shutdown_signal(),
            ));
        }
    }
    let reload: consentgate::proxy::Reload = {
        let server = server.clone();
        Arc::new(move || server.reload())
    };
    if let Some(admin) = admin {
        let l = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("cannot listen on {} for the admin API", admin.listen))?;
        tracing::info!(listen = %l.local_addr()?, "admin API is running");
        tokio::spawn(consentgate::proxy::serve_admin_current(
            server.resolver(),
            Some(reload.clone()),
            l,
            admin.token,
            shutdown_signal(),
        ));
    }
    #[cfg(unix)]
    {
        // SIGHUP: re-read the configuration (systemctl reload).
        let reload = reload.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        let reload = reload.clone();
                        let _ = tokio::task::spawn_blocking(move || reload()).await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP: reload via the admin API only")
            }
        }
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(listen = %listener.local_addr()?, %upstream, "consentgate is running");
    {
        // Retention follows the configuration in force.
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = server.current().primary().purge_expired().await {
                    tracing::error!(error = %e, "receipt retention purge failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
            }
        });
    }
    consentgate::proxy::serve_current(server.resolver(), listener, shutdown_signal()).await?;
    server.current().primary().drain_receipts().await;
    tracing::info!("stopped");
    Ok(())
}

async fn demo(listen: SocketAddr, origin_listen: SocketAddr) -> Result<()> {
    let origin = TcpListener::bind(origin_listen)
        .await
        .with_context(|| format!("cannot listen on {origin_listen} for the demo origin"))?;
    let origin_addr = origin.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_origin = stop_rx.clone();
    let origin_task = tokio::spawn(consentgate::demo::serve_origin(origin, async move {
        let _ = stop_origin.changed().await;
    }));
    let mut config = Config::defaults().map_err(|e| anyhow::anyhow!("{e}"))?;
    config.upstream.url =
        parse_upstream_url(&format!("http://{origin_addr}")).map_err(anyhow::Error::msg)?;
    config.server.listen = listen;
    // The banner lists what the demo pages use, as a site's config would.
    config.consent.shown = Some(
        consentgate::demo::SERVICES
            .iter()
            .filter_map(|id| config.catalog.index_of(id))
            .collect(),
    );
    config.csp.mode = consentgate::csp::CspMode::Enforce;
    let (proxy, _) = Proxy::new(config).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (try --listen 127.0.0.1:0)"))?;
    let addr = listener.local_addr()?;
    println!("consentgate demo");
    println!("  demo origin (unprotected): http://{origin_addr}/");
    println!("  open this in a browser:    http://{addr}/");
    println!("  consent state:             http://{addr}/__consent/state");
    println!("Press Ctrl-C to stop.");
    let proxy = Arc::new(proxy);
    proxy.start_retention();
    proxy.clone().serve(listener, shutdown_signal()).await?;
    proxy.drain_receipts().await;
    let _ = stop_tx.send(true);
    let _ = origin_task.await;
    Ok(())
}

fn upstream_list(c: &Config) -> String {
    c.upstream
        .urls()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(c) if c.sites.is_empty() => {
            println!(
                "{}: OK ({} services in the catalog, upstream {})",
                file.display(),
                c.catalog.len(),
                upstream_list(&c)
            );
            ExitCode::SUCCESS
        }
        Ok(c) => {
            println!("{}: OK ({} sites)", file.display(), c.sites.len());
            for s in &c.sites {
                let mut hosts = s.hosts.join(", ");
                if s.default {
                    hosts.push_str(if hosts.is_empty() {
                        "(default)"
                    } else {
                        " (default)"
                    });
                }
                println!(
                    "  {}: {hosts} -> {} ({} services)",
                    s.name,
                    upstream_list(&s.config),
                    s.config.catalog.len()
                );
            }
            if !c.sites.iter().any(|s| s.default) {
                println!("  other hosts: 421 Misdirected Request (no default site)");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", file.display());
            }
            eprintln!("{}: {} problem(s)", file.display(), errors.0.len());
            ExitCode::from(1)
        }
    }
}

async fn scan(cli: &Cli, url: &str, pages: usize, lang: &str) -> Result<()> {
    let config = match &cli.config {
        Some(path) => Config::load(path)
            .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display()))?,
        None => Config::defaults().map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let start = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    anyhow::ensure!(
        matches!(start.scheme(), "http" | "https"),
        "`{url}`: only http and https can be scanned"
    );
    let report = consentgate::scan::scan(&config, start, pages.max(1))
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !report.pages.is_empty(),
        "no HTML page could be fetched from {url}: {:?}",
        report.errors
    );
    print!("{}", consentgate::scan::render(&report, &config, lang));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
    }
    if matches!(
        cli.command,
        Some(Command::Policy { .. } | Command::Records { .. })
    ) {
        return match privacy_texts(&cli) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Receipts {
        action: ReceiptsCommand::Verify { site },
    }) = &cli.command
    {
        return match verify_receipts(&cli, site.as_deref()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = init_logging(&cli.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    // The proxy's configuration is read once, here: its thread count shapes the runtime.
    let proxy_config = match cli.command {
        Some(_) => None,
        None => {
            let source = config_source(&cli);
            match source.load() {
                Ok(config) => Some((source, config)),
                Err(e) => {
                    eprintln!("error: invalid configuration:\n{e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let workers = proxy_config.as_ref().and_then(|(_, c)| c.server.workers);
    let mut builder = if workers == Some(1) {
        // One thread: tokio's single-threaded scheduler, as an nginx worker is, spares the
        // work-stealing pool's cross-thread bookkeeping (about 10 % of a small request's CPU,
        // BENCHMARKS.md). Blocking work still goes to tokio's blocking threads.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n);
        }
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match &cli.command {
            Some(Command::Demo {
                listen,
                origin_listen,
            }) => demo(*listen, *origin_listen).await,
            Some(Command::Scan { url, pages, lang }) => scan(&cli, url, *pages, lang).await,
            _ => match proxy_config {
                Some((source, config)) => run(source, config).await,
                // Every other command returned before the runtime was built.
                None => Err(anyhow::anyhow!("this command does not run the proxy")),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
