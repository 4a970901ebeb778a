//! Typed settings. Precedence, lowest first: built-in defaults, the optional TOML file
//! (`--config` / `HANDOFF_CONFIG`), environment variables, command-line flags. Settings
//! are validated once at load; nothing downstream re-checks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the HTTP API listens.
    pub http_addr: String,
    /// `postgres://...` selects PostgreSQL; anything else is an SQLite file path/URL.
    pub database_url: String,
    /// Largest request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Bodies above this size are parsed on the blocking pool, off the async workers.
    pub blocking_parse_bytes: usize,
    /// Base URL used in Location headers and Bundle links; derived from the request's
    /// Host header when unset.
    pub public_base_url: Option<String>,
    /// Database connections for reads (SQLite) or for everything (PostgreSQL).
    pub db_pool_size: u32,
    /// SQLite group commit: most requests folded into one transaction.
    pub group_commit_max: usize,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// `pretty` or `json` log lines.
    pub log_format: String,
    /// Where the gateway's profiles (StructureDefinitions and ValueSets) are read at
    /// start, relative to the working directory. None: `profiles` if it exists (no
    /// profiles otherwise); a directory given explicitly must exist.
    pub profiles_dir: Option<PathBuf>,
    /// Let subscriptions notify loopback, private and link-local addresses (demos and
    /// tests; never in production: it opens the gateway to SSRF).
    pub allow_private_subscribers: bool,
    /// Subscriber hosts allowed even though they resolve to private addresses.
    pub subscriber_allow_hosts: Vec<String>,
    /// A PEM file of CA certificates trusted for subscriber endpoints beside the public
    /// web PKI roots (a hospital's or practice's own CA).
    pub subscriber_ca_file: Option<PathBuf>,
    /// Waits (milliseconds) before each retry of a failed notification (±20% jitter);
    /// after the last the notification is dead-lettered and the subscription goes to
    /// `error`.
    pub delivery_retry_ms: Vec<u64>,
    /// The longest a subscriber's Retry-After is honoured (seconds).
    pub delivery_max_retry_after_secs: u64,
    /// Notifications in flight at once.
    pub delivery_concurrency: usize,
    /// Per-request timeout when the subscription sets none (seconds).
    pub delivery_timeout_secs: u64,
    /// How long a delivery claim lasts (seconds; at least 35, longer than any request
    /// may take): another replica takes a row over after it, unless it finds the
    /// claiming process gone first (PostgreSQL; src/store/postgres/claimer.rs).
    pub delivery_lease_secs: u64,
    /// The most events one rest-hook notification carries when a subscriber has a
    /// backlog (a subscription's `max-count` lowers it; 1 turns batching off).
    pub delivery_max_events: u32,
    /// What a disclosure no consent directive speaks to gets: `deny` (the default) or
    /// `permit` (docs/consent.md, "No consent on file").
    pub consent_default: String,
    /// Treatment disclosures to the patient's own PCP (Patient.generalPractitioner)
    /// are permitted when no directive speaks to them.
    pub consent_pcp_treatment: bool,
    /// Per purpose of use (v3-ActReason code -> `deny` / `permit`): what a disclosure
    /// for that purpose no directive speaks to gets; other purposes `consent_default`.
    pub consent_default_by_purpose: std::collections::BTreeMap<String, String>,
    /// Whether the HL7 v2 MLLP listener runs.
    pub mllp_enabled: bool,
    /// Where the MLLP listener listens.
    pub mllp_addr: String,
    /// MLLP connections served at once (more wait to be accepted).
    pub mllp_max_connections: usize,
    /// Largest HL7 message accepted (an AR and a closed connection beyond it).
    pub mllp_max_message_bytes: usize,
    /// An MLLP connection idle this long is closed (seconds).
    pub mllp_idle_timeout_secs: u64,
    /// TLS on the MLLP listener: its certificate chain and key (PEM), both or neither.
    pub mllp_tls_cert_file: Option<PathBuf>,
    pub mllp_tls_key_file: Option<PathBuf>,
    /// With TLS: only interface engines presenting a certificate this CA (PEM) signed
    /// are served (mutual TLS).
    pub mllp_tls_client_ca_file: Option<PathBuf>,
    /// Repeated A08s for one visit within this many seconds raise one EncounterUpdated.
    pub hl7_a08_window_secs: u64,
    /// Resources the HL7 path remembers as it last saw them stored, per generation (two
    /// are kept): a message naming them reads nothing first (`hl7::known`); 0: none.
    pub hl7_remembered_resources: usize,
    /// How long a message's receipt (and its ACK) is kept to answer resends; older
    /// ones are pruned, and a resend after that is applied anew.
    pub hl7_receipt_retention_secs: u64,
    /// How long a finished notification (delivered, or withheld by consent) and its
    /// attempts are kept: `$events` recovers events this far back, and the delivery
    /// log shows them. Dead-lettered and pending notifications are kept whatever their
    /// age. 0 keeps everything for ever.
    pub delivery_retention_secs: u64,
    /// Handoffs: deadlines per kind, escalation targets, the sweep (docs/accountability.md).
    pub handoffs: crate::handoffs::HandoffSettings,
    /// API clients and their bearer tokens' SHA-256 (src/auth.rs). None: the API is
    /// open (no token asked; reads neither consent-checked nor audited).
    pub clients: Vec<crate::auth::ClientConfig>,
    /// With no clients, serve the API open on a non-loopback `http_addr` too (behind
    /// an authenticating proxy). Without it such a start is refused.
    pub open_api: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            http_addr: "127.0.0.1:8080".into(),
            database_url: "sqlite:handoff.db".into(),
            max_body_bytes: 4 * 1024 * 1024,
            blocking_parse_bytes: 64 * 1024,
            public_base_url: None,
            db_pool_size: 8,
            group_commit_max: 256,
            http_workers: 0,
            log_format: "pretty".into(),
            profiles_dir: None,
            allow_private_subscribers: false,
            subscriber_allow_hosts: Vec::new(),
            subscriber_ca_file: None,
            delivery_retry_ms: vec![1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000],
            delivery_max_retry_after_secs: 3600,
            delivery_concurrency: 32,
            delivery_timeout_secs: 10,
            delivery_lease_secs: 35,
            delivery_max_events: 20,
            consent_default: "deny".into(),
            consent_pcp_treatment: true,
            consent_default_by_purpose: Default::default(),
            mllp_enabled: true,
            mllp_addr: "127.0.0.1:2575".into(),
            mllp_max_connections: 64,
            mllp_max_message_bytes: 1024 * 1024,
            mllp_idle_timeout_secs: 300,
            mllp_tls_cert_file: None,
            mllp_tls_key_file: None,
            mllp_tls_client_ca_file: None,
            hl7_a08_window_secs: 60,
            hl7_remembered_resources: crate::hl7::known::DEFAULT_CAPACITY,
            hl7_receipt_retention_secs: 7 * 24 * 3600,
            delivery_retention_secs: 30 * 24 * 3600,
            handoffs: Default::default(),
            clients: Vec::new(),
            open_api: false,
        }
    }
}

/// The database URL with any password blanked, for logs and Debug output.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("http_addr", &self.http_addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("public_base_url", &self.public_base_url)
            .field("db_pool_size", &self.db_pool_size)
            .field("group_commit_max", &self.group_commit_max)
            .field("profiles_dir", &self.profiles_dir)
            .field("allow_private_subscribers", &self.allow_private_subscribers)
            .field("mllp_enabled", &self.mllp_enabled)
            .field("mllp_addr", &self.mllp_addr)
            .finish_non_exhaustive()
    }
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub http_addr: Option<String>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
    pub profiles_dir: Option<PathBuf>,
    pub allow_private_subscribers: bool,
    pub consent_default: Option<String>,
    pub mllp_addr: Option<String>,
    /// Switch the MLLP listener off.
    pub no_mllp: bool,
    pub open_api: bool,
}

impl Settings {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(v) = &overrides.http_addr {
            s.http_addr = v.clone();
        }
        if let Some(v) = &overrides.database_url {
            s.database_url = v.clone();
        }
        if let Some(v) = &overrides.log_format {
            s.log_format = v.clone();
        }
        if let Some(v) = &overrides.profiles_dir {
            s.profiles_dir = Some(v.clone());
        }
        if let Some(v) = &overrides.consent_default {
            s.consent_default = v.clone();
        }
        if overrides.allow_private_subscribers {
            s.allow_private_subscribers = true;
        }
        if let Some(v) = &overrides.mllp_addr {
            s.mllp_addr = v.clone();
        }
        if overrides.no_mllp {
            s.mllp_enabled = false;
        }
        if overrides.open_api {
            s.open_api = true;
        }
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let http = self
            .http_addr
            .parse::<SocketAddr>()
            .with_context(|| format!("http_addr '{}' is not host:port", self.http_addr))?;
        if self.clients.is_empty() && !self.open_api && !http.ip().is_loopback() {
            bail!(
                "http_addr {} is reachable from the network but no API clients are registered: \
                 register [[clients]] (docs/consent.md, \"Reads\") or, behind a proxy that \
                 authenticates, set open_api = true (--open-api)",
                self.http_addr
            );
        }
        if self.mllp_enabled {
            self.mllp_addr
                .parse::<SocketAddr>()
                .with_context(|| format!("mllp_addr '{}' is not host:port", self.mllp_addr))?;
        }
        if self.mllp_max_connections == 0
            || self.mllp_max_message_bytes < 1024
            || self.mllp_idle_timeout_secs == 0
        {
            bail!("mllp_max_connections and mllp_idle_timeout_secs must be positive, mllp_max_message_bytes at least 1024");
        }
        if self.hl7_receipt_retention_secs == 0 {
            bail!("hl7_receipt_retention_secs must be positive");
        }
        if self.mllp_tls_cert_file.is_some() != self.mllp_tls_key_file.is_some() {
            bail!("mllp_tls_cert_file and mllp_tls_key_file go together");
        }
        if self.mllp_tls_client_ca_file.is_some() && self.mllp_tls_cert_file.is_none() {
            bail!("mllp_tls_client_ca_file needs TLS: mllp_tls_cert_file and mllp_tls_key_file");
        }
        if self.database_url.trim().is_empty() {
            bail!("database_url is empty");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if self.group_commit_max == 0 || self.db_pool_size == 0 {
            bail!("group_commit_max and db_pool_size must be positive");
        }
        if self.delivery_concurrency == 0 || !(1..=30).contains(&self.delivery_timeout_secs) {
            bail!("delivery_concurrency must be positive and delivery_timeout_secs 1 to 30");
        }
        let shortest_lease = crate::notify::worker::MAX_TIMEOUT.as_secs() + 5;
        if self.delivery_lease_secs < shortest_lease {
            bail!("delivery_lease_secs must be at least {shortest_lease} (longer than any request may take)");
        }
        if !(1..=crate::store::outbox::MAX_EVENTS).contains(&self.delivery_max_events) {
            bail!(
                "delivery_max_events must be 1 to {}",
                crate::store::outbox::MAX_EVENTS
            );
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            bail!("log_format must be 'pretty' or 'json'");
        }
        if !matches!(self.consent_default.as_str(), "deny" | "permit") {
            bail!("consent_default must be 'deny' or 'permit'");
        }
        for (purpose, d) in &self.consent_default_by_purpose {
            if purpose.trim().is_empty() || !matches!(d.as_str(), "deny" | "permit") {
                bail!("consent_default_by_purpose: '{purpose}' = '{d}': a purpose code and 'deny' or 'permit'");
            }
        }
        crate::handoffs::Policy::from_settings(&self.handoffs).map_err(anyhow::Error::msg)?;
        crate::auth::Clients::from_config(&self.clients).map_err(anyhow::Error::msg)?;
        if let Some(base) = &self.public_base_url {
            url::Url::parse(base)
                .with_context(|| format!("public_base_url '{base}' is not a URL"))?;
        }
        Ok(())
    }
}

impl Settings {
    /// The no-consent policy these settings describe.
    pub fn consent_policy(&self) -> crate::consent::Policy {
        use crate::consent::{Decision, Policy};
        let decision = |d: &str| match d {
            "permit" => Decision::Permit,
            _ => Decision::Deny,
        };
        Policy {
            pcp_treatment_without_consent: self.consent_pcp_treatment,
            default_by_purpose: self
                .consent_default_by_purpose
                .iter()
                .map(|(p, d)| (p.clone(), decision(d)))
                .collect(),
            ..Policy::with_default(decision(&self.consent_default))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_file_loads() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/handoff.example.toml");
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(s.http_addr, "0.0.0.0:8080");
        assert!(
            s.open_api,
            "the example binds every address, so it says it is open"
        );
        assert_eq!(s.log_format, "json");
    }

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("handoff-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "http_addr = \"0.0.0.0:9000\"\nmax_body_bytes = 2048\nprofiles_dir = \"/etc/p\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&f),
            &Overrides {
                http_addr: Some("127.0.0.1:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.http_addr, "127.0.0.1:1");
        assert_eq!(s.max_body_bytes, 2048);
        assert_eq!(s.profiles_dir, Some(PathBuf::from("/etc/p")));
        let o = Overrides {
            profiles_dir: Some("here".into()),
            open_api: true,
            ..Default::default()
        };
        assert_eq!(
            Settings::load(Some(&f), &o).unwrap().profiles_dir,
            Some(PathBuf::from("here"))
        );
        // Every address, no clients, not said to be open: refused, saying why.
        let err = Settings::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("no API clients"), "{err:#}");
        assert_eq!(Settings::default().profiles_dir, None);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("handoff-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "htp_addr = \"x\"\n").unwrap();
        assert!(Settings::load(Some(&f), &Overrides::default()).is_err());
        let o = Overrides {
            http_addr: Some("nonsense".into()),
            ..Default::default()
        };
        assert!(Settings::load(None, &o).is_err());
    }

    #[test]
    fn handoff_deadlines_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("handoff-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[handoffs]\nreferral_accept = \"5 business days\"\n\
             [handoffs.alternates]\n\"Organization/pcp\" = \"PractitionerRole/on-call\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(s.handoffs.referral_accept, "5 business days");
        assert_eq!(s.handoffs.discharge_accept, "1 business day");
        assert!(!s.handoffs.test_clock);
        std::fs::write(&f, "[handoffs]\nreferral_accept = \"soon\"\n").unwrap();
        let e = Settings::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("handoffs.referral_accept"),
            "{e:#}"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let s = Settings {
            database_url: "postgres://u:secret@h/db".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn consent_defaults_per_purpose_come_from_the_file() {
        let dir = std::env::temp_dir().join(format!("handoff-cfg-p-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "consent_default = \"deny\"\n[consent_default_by_purpose]\nHOPERAT = \"permit\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        let p = s.consent_policy();
        assert_eq!(
            p.default_by_purpose,
            vec![("HOPERAT".to_owned(), crate::consent::Decision::Permit)]
        );
        assert_eq!(p.default_otherwise, crate::consent::Decision::Deny);
        std::fs::write(&f, "[consent_default_by_purpose]\nHOPERAT = \"maybe\"\n").unwrap();
        let err = Settings::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("HOPERAT"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn clients_come_from_the_file_and_a_bad_one_stops_the_start() {
        let dir = std::env::temp_dir().join(format!("handoff-cfg-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let hash = crate::auth::token_sha256("t");
        let text = format!(
            "[[clients]]\nname = \"pcp\"\ntoken_sha256 = \"{hash}\"\naccess = \"recipient\"\nactor = [\"Practitioner/p\"]\n"
        );
        std::fs::write(&f, &text).unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        let clients = crate::auth::Clients::from_config(&s.clients).unwrap();
        assert_eq!(clients.authenticate("t").unwrap().client, "pcp");
        std::fs::write(&f, text.replace("recipient", "everything")).unwrap();
        let err = Settings::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("access must be"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mllp_tls_files_go_together() {
        let mut s = Settings {
            mllp_tls_cert_file: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("go together"));
        s.mllp_tls_cert_file = None;
        s.mllp_tls_client_ca_file = Some("ca.pem".into());
        assert!(s.validate().unwrap_err().to_string().contains("needs TLS"));
    }
}
