//! Acknowledgements (original mode): `AA` when the message is stored, `AE` with an ERR
//! segment naming the field when it is understood but invalid (nothing stored), `AR`
//! when it cannot be processed (no MSH, unsupported type or event, the store
//! unavailable). Every ACK echoes MSH-10 in MSA-2 when there is one.

use super::message::{escape, Delimiters, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    AA,
    AE,
    AR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// Why a message was not stored: the ACK code, the HL7 table 0357 error code, where
/// (segment id and field number; component when it matters) and what, in words that
/// name the field and never echo its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: AckCode,
    pub error: u16,
    pub segment: Option<&'static str>,
    pub field: Option<usize>,
    pub text: String,
}

impl Rejection {
    pub fn ae(error: u16, segment: &'static str, field: usize, text: impl Into<String>) -> Self {
        Rejection {
            code: AckCode::AE,
            error,
            segment: Some(segment),
            field: Some(field),
            text: text.into(),
        }
    }
    pub fn ar(error: u16, text: impl Into<String>) -> Self {
        Rejection {
            code: AckCode::AR,
            error,
            segment: None,
            field: None,
            text: text.into(),
        }
    }
    pub fn at(mut self, segment: &'static str, field: usize) -> Self {
        self.segment = Some(segment);
        self.field = Some(field);
        self
    }
    /// `PID-3`, for messages and logs.
    pub fn location(&self) -> Option<String> {
        match (self.segment, self.field) {
            (Some(s), Some(f)) => Some(format!("{s}-{f}")),
            (Some(s), None) => Some(s.to_owned()),
            _ => None,
        }
    }
}

/// Table 0357 codes used here.
pub mod err {
    pub const SEGMENT_SEQUENCE: u16 = 100;
    pub const REQUIRED_FIELD_MISSING: u16 = 101;
    pub const DATA_TYPE: u16 = 102;
    pub const TABLE_VALUE: u16 = 103;
    pub const UNSUPPORTED_MESSAGE_TYPE: u16 = 200;
    pub const UNSUPPORTED_EVENT: u16 = 201;
    pub const UNSUPPORTED_VERSION: u16 = 203;
    pub const UNKNOWN_KEY: u16 = 204;
    pub const APPLICATION_ERROR: u16 = 207;
}

fn error_name(code: u16) -> &'static str {
    match code {
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        _ => "Application internal error",
    }
}

/// What an ACK answers: the original message's header fields it swaps and echoes.
#[derive(Debug, Clone, Default)]
pub struct Answering {
    pub sending_app: String,
    pub sending_facility: String,
    pub receiving_app: String,
    pub receiving_facility: String,
    pub trigger: String,
    pub control_id: String,
    pub processing_id: String,
    pub version: String,
}

impl Answering {
    /// From whatever the message's MSH holds (raw HD fields are echoed as sent).
    pub fn from_message(msg: Option<&Message>) -> Answering {
        let Some(msh) = msg.and_then(|m| m.segment("MSH")) else {
            return Answering::default();
        };
        let d = &msg.expect("has MSH").delims;
        Answering {
            sending_app: msh.raw(3).to_owned(),
            sending_facility: msh.raw(4).to_owned(),
            receiving_app: msh.raw(5).to_owned(),
            receiving_facility: msh.raw(6).to_owned(),
            trigger: msh.value(d, 9, 2).unwrap_or_default(),
            control_id: msh.value(d, 10, 1).unwrap_or_default(),
            processing_id: msh.value(d, 11, 1).unwrap_or_default(),
            version: msh.value(d, 12, 1).unwrap_or_default(),
        }
    }
}

/// The ACK text (segments ended by CR), in the answered message's delimiters when it
/// had usable ones.
pub fn build(
    to: &Answering,
    d: &Delimiters,
    outcome: Result<(), &Rejection>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let f = d.field;
    let c = d.component;
    let ack_id = format!("ACK{}", now.format("%Y%m%d%H%M%S%6f"));
    let trigger = if to.trigger.is_empty() {
        String::new()
    } else {
        format!("{c}{}{c}ACK", escape(&to.trigger, d))
    };
    let processing = if to.processing_id.is_empty() {
        "P".to_owned()
    } else {
        escape(&to.processing_id, d)
    };
    let version = if to.version.is_empty() {
        "2.5.1".to_owned()
    } else {
        escape(&to.version, d)
    };
    let mut out = format!(
        "MSH{f}{enc}{f}HANDOFF{f}HANDOFF{f}{ra}{f}{rf}{f}{ts}{f}{f}ACK{trigger}{f}{ack_id}{f}{processing}{f}{version}\r",
        enc = d.encoding_characters(),
        ra = to.sending_app,
        rf = to.sending_facility,
        ts = now.format("%Y%m%d%H%M%S%z"),
    );
    let control = escape(&to.control_id, d);
    match outcome {
        Ok(()) => out.push_str(&format!("MSA{f}AA{f}{control}\r")),
        Err(r) => {
            let text = escape(&r.text, d);
            out.push_str(&format!("MSA{f}{}{f}{control}{f}{text}\r", r.code.as_str()));
            let location = match (r.segment, r.field) {
                (Some(s), Some(n)) => format!("{s}{c}1{c}{n}"),
                (Some(s), None) => format!("{s}{c}1"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "ERR{f}{f}{location}{f}{}{c}{}{c}HL70357{f}E{f}{f}{f}{f}{text}\r",
                r.error,
                error_name(r.error)
            ));
        }
    }
    out
}
