//! Who is calling: API clients registered in the settings (`[[clients]]`), each with a
//! bearer token of which only the SHA-256 is kept, and what each may see
//! (docs/consent.md, "Reads").
//!
//! - `full` clients are the deployment's own systems (interface engines, the care
//!   coordinators' tools): they read everything, and their reads of a patient's data
//!   are audited as uses (AuditEvent type `rest`).
//! - `recipient` clients are parties outside it (a specialist practice, a PCP): they
//!   answer to the Practitioner / Organization references listed, and every resource
//!   about a patient they read is decided by the patient's consent exactly as a
//!   notification to them would be, and audited as a disclosure (type Export, so it is
//!   in the patient's `$disclosures`).
//!
//! With no clients registered the API is open (no token asked, nothing checked on
//! reads): development, or behind an authenticating proxy. The gateway says so at start.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::consent::{PARTICIPATION, RECIPIENT_ROLES, TREATMENT};
use crate::topics::subscription::RecipientSpec;

/// One `[[clients]]` entry of the settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Shown in logs and in the ledger (`AuditEvent.agent.altId`).
    pub name: String,
    /// Lower-case hex SHA-256 of the client's bearer token (`handoff client token`
    /// makes a token and prints both).
    pub token_sha256: String,
    /// `full` or `recipient`.
    pub access: String,
    /// For `recipient`: every `Type/id` the client answers to (at least one).
    #[serde(default)]
    pub actor: Vec<String>,
    /// For `recipient`: the roles it reads in, v3-ParticipationType codes or
    /// `system|code` (default PRCP and IRCP, as a subscription's recipient).
    #[serde(default)]
    pub role: Vec<String>,
    /// For `recipient`: the v3-ActReason purpose of use of its reads (default TREAT).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// What an authenticated caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Full,
    Recipient(RecipientSpec),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub client: String,
    pub access: Access,
}

impl Caller {
    /// The recipient the caller is, when its reads are disclosures.
    pub fn recipient(&self) -> Option<&RecipientSpec> {
        match &self.access {
            Access::Recipient(r) => Some(r),
            Access::Full => None,
        }
    }
}

/// The registered clients, checked.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    clients: Vec<([u8; 32], Caller)>,
}

impl Clients {
    pub fn from_config(list: &[ClientConfig]) -> Result<Clients, String> {
        let mut clients: Vec<([u8; 32], Caller)> = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let at = format!("clients[{i}] ('{}')", c.name);
            if c.name.trim().is_empty() {
                return Err(format!("clients[{i}]: name is empty"));
            }
            let digest = parse_digest(&c.token_sha256)
                .ok_or_else(|| format!("{at}: token_sha256 must be 64 hex digits"))?;
            if clients.iter().any(|(d, _)| *d == digest) {
                return Err(format!("{at}: the same token as another client"));
            }
            let access = match c.access.as_str() {
                "full" => {
                    if !c.actor.is_empty() || !c.role.is_empty() || c.purpose.is_some() {
                        return Err(format!(
                            "{at}: actor, role and purpose are for recipient clients"
                        ));
                    }
                    Access::Full
                }
                "recipient" => Access::Recipient(recipient_of(c, &at)?),
                other => {
                    return Err(format!(
                        "{at}: access must be 'full' or 'recipient', not '{other}'"
                    ))
                }
            };
            clients.push((
                digest,
                Caller {
                    client: c.name.clone(),
                    access,
                },
            ));
        }
        Ok(Clients { clients })
    }

    /// No clients: the API is open.
    pub fn is_open(&self) -> bool {
        self.clients.is_empty()
    }

    /// The caller a bearer token belongs to. Every registered digest is compared, in
    /// constant time, so the answer's timing says nothing about which came close.
    pub fn authenticate(&self, token: &str) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (d, caller) in &self.clients {
            if constant_time_eq(d, &digest) {
                found = Some(caller);
            }
        }
        found
    }
}

fn recipient_of(c: &ClientConfig, at: &str) -> Result<RecipientSpec, String> {
    if c.actor.is_empty() {
        return Err(format!("{at}: a recipient client names at least one actor"));
    }
    for a in &c.actor {
        let ok = a
            .split_once('/')
            .is_some_and(|(t, id)| !t.is_empty() && crate::fhir::primitives::is_valid_id(id));
        if !ok {
            return Err(format!("{at}: actor '{a}' is not a Type/id reference"));
        }
    }
    let roles = if c.role.is_empty() {
        RECIPIENT_ROLES
            .iter()
            .map(|(s, c)| (s.to_string(), c.to_string()))
            .collect()
    } else {
        c.role
            .iter()
            .map(|r| match r.split_once('|') {
                Some((s, code)) => (s.to_owned(), code.to_owned()),
                None => (PARTICIPATION.to_owned(), r.clone()),
            })
            .collect()
    };
    Ok(RecipientSpec {
        references: c.actor.clone(),
        roles,
        purpose: c.purpose.clone().unwrap_or_else(|| TREATMENT.to_owned()),
    })
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex SHA-256 of a token, as `token_sha256` holds it.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random bearer token (32 bytes from the OS, URL-safe base64).
pub fn new_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, token: &str, access: &str, actor: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            token_sha256: token_sha256(token),
            access: access.into(),
            actor: actor.iter().map(|a| a.to_string()).collect(),
            role: Vec::new(),
            purpose: None,
        }
    }

    #[test]
    fn a_token_finds_its_client_and_nothing_else_does() {
        let clients = Clients::from_config(&[
            client("engine", "t-engine", "full", &[]),
            client("pcp", "t-pcp", "recipient", &["Practitioner/pcp"]),
        ])
        .unwrap();
        assert_eq!(
            clients.authenticate("t-engine").unwrap().access,
            Access::Full
        );
        let pcp = clients.authenticate("t-pcp").unwrap();
        let r = pcp.recipient().unwrap();
        assert_eq!(r.references, vec!["Practitioner/pcp".to_string()]);
        assert_eq!(r.purpose, "TREAT");
        assert_eq!(r.roles.len(), RECIPIENT_ROLES.len());
        assert!(clients.authenticate("t-pcp ").is_none());
        assert!(clients.authenticate("").is_none());
        assert!(!clients.is_open());
        assert!(Clients::default().is_open());
    }

    #[test]
    fn bad_client_entries_are_refused_with_what_is_wrong() {
        let cases = [
            (client("x", "t", "admin", &[]), "access must be"),
            (client("x", "t", "recipient", &[]), "at least one actor"),
            (client("x", "t", "recipient", &["pcp"]), "not a Type/id"),
            (
                client("x", "t", "full", &["Practitioner/p"]),
                "for recipient clients",
            ),
            (client("", "t", "full", &[]), "name is empty"),
        ];
        for (c, want) in cases {
            let e = Clients::from_config(&[c]).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let mut short = client("x", "t", "full", &[]);
        short.token_sha256 = "abc".into();
        assert!(Clients::from_config(&[short])
            .unwrap_err()
            .contains("64 hex"));
        let twice = [client("a", "t", "full", &[]), client("b", "t", "full", &[])];
        assert!(Clients::from_config(&twice)
            .unwrap_err()
            .contains("same token"));
    }

    #[test]
    fn roles_and_purpose_come_from_the_entry() {
        let mut c = client("x", "t", "recipient", &["Organization/o"]);
        c.role = vec!["IRCP".into(), "http://example.org|X".into()];
        c.purpose = Some("HOPERAT".into());
        let clients = Clients::from_config(&[c]).unwrap();
        let r = clients
            .authenticate("t")
            .unwrap()
            .recipient()
            .unwrap()
            .clone();
        assert_eq!(r.roles[0], (PARTICIPATION.to_owned(), "IRCP".to_owned()));
        assert_eq!(
            r.roles[1],
            ("http://example.org".to_owned(), "X".to_owned())
        );
        assert_eq!(r.purpose, "HOPERAT");
    }

    #[test]
    fn new_tokens_differ_and_hash_to_64_hex_digits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(token_sha256(&a).len(), 64);
        assert!(parse_digest(&token_sha256(&a)).is_some());
    }
}
