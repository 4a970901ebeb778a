use std::path::PathBuf;

use clap::{Parser, Subcommand};
use handoff::config::{Overrides, Settings};
use handoff::fhir::profiles::Profiles;
use handoff::startup::{shutdown_signal, Application};
use handoff::{bench, store, telemetry};

/// jemalloc, also serving the C code's `malloc` (SQLite's): see Cargo.toml.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "handoff",
    version,
    about = "Care-coordination gateway (FHIR R4, HL7 v2)"
)]
struct Cli {
    /// Optional TOML settings file (see deploy/handoff.example.toml).
    #[arg(long, global = true, env = "HANDOFF_CONFIG")]
    config: Option<PathBuf>,
    /// Where the HTTP API listens [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "HANDOFF_HTTP_ADDR")]
    http_addr: Option<String>,
    /// `postgres://...` or an SQLite file [default: sqlite:handoff.db].
    #[arg(long, global = true, env = "HANDOFF_DATABASE_URL")]
    database_url: Option<String>,
    /// `pretty` or `json`.
    #[arg(long, global = true, env = "HANDOFF_LOG_FORMAT")]
    log_format: Option<String>,
    /// The gateway's profiles (StructureDefinitions and ValueSets) [default: ./profiles
    /// when it exists]; a directory given here must exist.
    #[arg(long, global = true, env = "HANDOFF_PROFILES_DIR")]
    profiles_dir: Option<PathBuf>,
    /// Allow subscriber endpoints on loopback/private addresses (demos, tests).
    #[arg(long, global = true, env = "HANDOFF_ALLOW_PRIVATE_SUBSCRIBERS")]
    allow_private_subscribers: bool,
    /// What a disclosure no consent directive speaks to gets: `deny` [default] or
    /// `permit` (treatment to the patient's own PCP is permitted either way).
    #[arg(long, global = true, env = "HANDOFF_CONSENT_DEFAULT")]
    consent_default: Option<String>,
    /// Where the HL7 v2 MLLP listener listens [default: 127.0.0.1:2575].
    #[arg(long, global = true, env = "HANDOFF_MLLP_ADDR")]
    mllp_addr: Option<String>,
    /// Do not run the MLLP listener.
    #[arg(long, global = true, env = "HANDOFF_NO_MLLP")]
    no_mllp: bool,
    /// Serve the API without tokens on a non-loopback address (behind a proxy that
    /// authenticates; docs/consent.md "Reads"). On loopback it is open anyway when no
    /// clients are registered.
    #[arg(long, global = true, env = "HANDOFF_OPEN_API")]
    open_api: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (migrates the store first).
    Serve,
    /// Apply the store's migrations and exit.
    Migrate,
    /// Validate a FHIR resource file (JSON or XML) against the R4 base definitions, the
    /// profile given and the loaded profiles it claims in meta.profile; prints an
    /// OperationOutcome, exits 1 when it has errors.
    Validate {
        /// The file; `.xml` (or a body starting with `<`) is read as XML.
        file: std::path::PathBuf,
        /// Also validate against this profile (canonical URL of a loaded profile).
        #[arg(long)]
        profile: Vec<String>,
    },
    /// Requeue dead-lettered notifications (of one subscription, or all) and
    /// reactivate subscriptions in error; a running gateway delivers them.
    Replay {
        /// The Subscription id; every subscription when absent.
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Consent questions (docs/consent.md).
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// HL7 v2 tools: `hl7 send FILE --to HOST:PORT` sends the messages in FILE over
    /// MLLP and prints each ACK.
    #[command(subcommand)]
    Hl7(Hl7Command),
    /// API clients: `client token` prints a new bearer token and the `token_sha256`
    /// line for its `[[clients]]` entry (docs/consent.md, "Reads").
    #[command(subcommand)]
    Client(ClientCommand),
    /// Measure create throughput and latency against both stores; `bench deliveries`:
    /// notification delivery to local subscribers (see README).
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// A new random bearer token (give it to the client) and its SHA-256 (put it in
    /// the settings; the gateway never stores the token itself).
    Token,
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// May this recipient receive data about this patient for this purpose, and why?
    /// Prints the decision, the reason, the deciding Consent and what is withheld;
    /// exits 0 on permit, 1 on deny.
    Check {
        /// `Patient/123` (or `123`).
        #[arg(long)]
        patient: String,
        /// Every reference the recipient answers to (`Practitioner/1`, their
        /// `Organization/2`...); repeat the flag.
        #[arg(long, required = true)]
        recipient: Vec<String>,
        /// The v3-ActReason purpose of use.
        #[arg(long, default_value = "TREAT")]
        purpose: String,
        /// The data: `Type/id` of a stored resource or a resource type; repeat.
        #[arg(long)]
        data: Vec<String>,
        /// When (FHIR instant, dateTime or date) [default: now].
        #[arg(long)]
        at: Option<String>,
    },
}

async fn consent_check(settings: &Settings, command: ConsentCommand) -> anyhow::Result<bool> {
    use handoff::consent::{Decision, RECIPIENT_ROLES};
    use handoff::fhir::search::dates;
    use handoff::store::disclosure::{evaluate, Question};
    let ConsentCommand::Check {
        patient,
        recipient,
        purpose,
        data,
        at,
    } = command;
    let at = at.unwrap_or_else(|| dates::format_instant(dates::now_micros()));
    if dates::range(&at).is_none() {
        anyhow::bail!("--at must be a FHIR instant, dateTime or date");
    }
    let patient = match patient.contains('/') {
        true => patient,
        false => format!("Patient/{patient}"),
    };
    let q = Question {
        patient,
        recipient: handoff::topics::subscription::RecipientSpec {
            references: recipient,
            roles: RECIPIENT_ROLES
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
            purpose,
        },
        data,
        at,
    };
    let store = store::connect(&settings.database_url, &Default::default()).await?;
    let out = evaluate(&*store, &q, &settings.consent_policy()).await?;
    let permit = out.decision == Decision::Permit;
    println!("decision: {}", if permit { "permit" } else { "deny" });
    println!("reason: {}", out.reason);
    println!(
        "consent: {}",
        out.consent.as_deref().unwrap_or("(none: by policy)")
    );
    for x in &out.excluded {
        println!("withheld: {x}");
    }
    Ok(permit)
}

#[derive(Subcommand)]
enum Hl7Command {
    /// Send the messages in FILE (one or more, each starting with MSH; CR, LF or CRLF)
    /// over MLLP; exits 1 unless every ACK is AA.
    Send {
        file: PathBuf,
        /// HOST:PORT of the MLLP listener.
        #[arg(long)]
        to: String,
        /// Connect over TLS, trusting this CA (PEM) for the listener's certificate.
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// A client certificate (PEM) to present, with --tls-key.
        #[arg(long, requires = "tls_ca")]
        tls_cert: Option<PathBuf>,
        /// The client certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store::sqlite::configure_process();
    let cli = Cli::parse();
    let overrides = Overrides {
        http_addr: cli.http_addr,
        database_url: cli.database_url,
        log_format: cli.log_format,
        profiles_dir: cli.profiles_dir,
        allow_private_subscribers: cli.allow_private_subscribers,
        consent_default: cli.consent_default,
        mllp_addr: cli.mllp_addr,
        no_mllp: cli.no_mllp,
        open_api: cli.open_api,
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    telemetry::init(&settings.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            let handle = app.handle();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight requests");
                handle.stop(true).await;
            });
            app.run_until_stopped().await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            store::connect(&settings.database_url, &Default::default()).await?;
            println!("migrations applied");
        }
        Command::Replay { subscription } => {
            let store = store::connect(&settings.database_url, &Default::default()).await?;
            let op = store::OutboxOp::Replay {
                subscription,
                now: handoff::fhir::search::dates::now_micros(),
            };
            match store.commit(vec![store::WriteOp::Outbox(op)]).await?.pop() {
                Some(store::WriteOutcome::Queued(n)) => println!("{n} notifications requeued"),
                _ => anyhow::bail!("the replay gave no count"),
            }
        }
        Command::Bench(args) => bench::run(args).await?,
        Command::Consent(c) => {
            if !consent_check(&settings, c).await? {
                std::process::exit(1);
            }
        }
        Command::Client(ClientCommand::Token) => {
            let token =
                handoff::auth::new_token().map_err(|e| anyhow::anyhow!("no random token: {e}"))?;
            println!("token = {token}");
            println!("token_sha256 = \"{}\"", handoff::auth::token_sha256(&token));
        }
        Command::Hl7(Hl7Command::Send {
            file,
            to,
            tls_ca,
            tls_cert,
            tls_key,
        }) => {
            let tls = handoff::hl7::send::TlsOptions {
                ca: tls_ca,
                cert: tls_cert,
                key: tls_key,
            };
            handoff::hl7::send::send_file(&file, &to, &tls).await?
        }
        Command::Validate { file, profile } => {
            // Notes go to stderr: stdout carries only the OperationOutcome.
            let profiles = Profiles::load_configured(settings.profiles_dir.as_deref())?;
            for note in profiles.notes() {
                eprintln!("warning: {note}");
            }
            let body = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let (outcome, ok) = handoff::fhir::validate_file(&body, &file, &profiles, &profile);
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            if !ok {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
