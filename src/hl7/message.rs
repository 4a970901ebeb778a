//! HL7 v2 message parsing (ER7, the pipe-and-hat encoding).
//!
//! What real feeds send is accepted: segments ended by CR, LF or CRLF (blank lines
//! skipped), a UTF-8 byte-order mark, bytes that are not UTF-8 (read as Latin-1), the
//! delimiters the message declares in MSH-1 and MSH-2, repeated fields, components,
//! subcomponents, escape sequences ([`unescape`]) and any segment the gateway does not
//! know (Z segments included), which is kept and ignored. Parsing never panics: input
//! it cannot read is a [`ParseError`].

use std::fmt;

/// The separators a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

impl Delimiters {
    /// MSH-2 as this gateway writes it.
    pub fn encoding_characters(&self) -> String {
        [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ]
        .iter()
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but whitespace.
    Empty,
    /// The first segment is not MSH.
    NoMsh,
    /// MSH-1 / MSH-2 unusable (missing, repeated or alphanumeric separators).
    BadDelimiters,
    /// A segment (1-based position) without a three-character name.
    BadSegment(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "the message is empty"),
            ParseError::NoMsh => write!(f, "the message does not start with an MSH segment"),
            ParseError::BadDelimiters => {
                write!(f, "MSH-1/MSH-2 do not declare usable delimiters")
            }
            ParseError::BadSegment(n) => {
                write!(f, "segment {n} has no valid three-character segment id")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// One segment: its id and its fields, each raw (still escaped). `fields[n]` is field
/// n (1-based; `fields[0]` is the id). For MSH, `fields[1]` is the field separator and
/// `fields[2]` the encoding characters, as the standard numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub delims: Delimiters,
    pub segments: Vec<Segment>,
}

/// Bytes as text: UTF-8 when they are, Latin-1 otherwise (every byte is a character),
/// without a leading byte-order mark.
pub fn decode_text(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    };
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

fn usable(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

impl Message {
    pub fn parse_bytes(bytes: &[u8]) -> Result<Message, ParseError> {
        Message::parse(&decode_text(bytes))
    }

    pub fn parse(text: &str) -> Result<Message, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .split(['\r', '\n'])
            .map(|l| l.trim_start_matches('\u{feff}'))
            .filter(|l| !l.trim().is_empty());
        let first = lines.next().ok_or(ParseError::Empty)?.trim_start();
        if !first.starts_with("MSH") {
            return Err(ParseError::NoMsh);
        }
        let mut chars = first.chars().skip(3);
        let field = chars.next().ok_or(ParseError::BadDelimiters)?;
        let encoding: String = chars.take_while(|&c| c != field).collect();
        let mut enc = encoding.chars();
        let d = Delimiters::default();
        let delims = Delimiters {
            field,
            component: enc.next().ok_or(ParseError::BadDelimiters)?,
            repetition: enc.next().unwrap_or(d.repetition),
            escape: enc.next().unwrap_or(d.escape),
            subcomponent: enc.next().unwrap_or(d.subcomponent),
        };
        let all = [
            delims.field,
            delims.component,
            delims.repetition,
            delims.escape,
            delims.subcomponent,
        ];
        for (i, c) in all.iter().enumerate() {
            if !usable(*c) || all[i + 1..].contains(c) {
                return Err(ParseError::BadDelimiters);
            }
        }
        let mut segments = Vec::new();
        for (n, line) in std::iter::once(first).chain(lines).enumerate() {
            let mut fields: Vec<String> = line.split(field).map(str::to_owned).collect();
            let id = fields[0].trim().to_owned();
            if id.len() != 3 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ParseError::BadSegment(n + 1));
            }
            fields[0] = id.clone();
            if id == "MSH" {
                fields.insert(1, field.to_string());
            }
            segments.push(Segment { id, fields });
        }
        Ok(Message { delims, segments })
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Every segment with this id, in order.
    pub fn all<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id == id)
    }

    /// The first value of `SEG-field.component` (1-based), unescaped; None when empty.
    pub fn value(&self, seg: &str, field: usize, component: usize) -> Option<String> {
        self.segment(seg)
            .and_then(|s| s.value(&self.delims, field, component))
    }
}

impl Segment {
    /// Field `n` as sent (escaped), "" when absent.
    pub fn raw(&self, n: usize) -> &str {
        self.fields.get(n).map(String::as_str).unwrap_or("")
    }

    /// The repetitions of field `n` (raw); none when the field is empty.
    pub fn reps<'a>(&'a self, d: &Delimiters, n: usize) -> Vec<Rep<'a>> {
        let raw = self.raw(n);
        if raw.is_empty() {
            return Vec::new();
        }
        if self.id == "MSH" && n <= 2 {
            return vec![Rep { raw, d: *d }];
        }
        raw.split(d.repetition)
            .map(|r| Rep { raw: r, d: *d })
            .collect()
    }

    /// The first repetition of field `n`.
    pub fn first<'a>(&'a self, d: &Delimiters, n: usize) -> Option<Rep<'a>> {
        self.reps(d, n).into_iter().next()
    }

    /// Component `c` of the first repetition of field `n`, unescaped; None when empty.
    pub fn value(&self, d: &Delimiters, n: usize, c: usize) -> Option<String> {
        if self.id == "MSH" && n <= 2 {
            return Some(self.raw(n).to_owned()).filter(|s| !s.is_empty());
        }
        self.first(d, n).and_then(|r| r.get(c))
    }
}

/// One repetition of a field, raw.
#[derive(Debug, Clone, Copy)]
pub struct Rep<'a> {
    pub raw: &'a str,
    d: Delimiters,
}

impl<'a> Rep<'a> {
    /// Component `c` (1-based), its first subcomponent, unescaped; None when empty.
    pub fn get(&self, c: usize) -> Option<String> {
        self.sub(c, 1)
    }

    /// Subcomponent `s` of component `c` (both 1-based), unescaped; None when empty.
    pub fn sub(&self, c: usize, s: usize) -> Option<String> {
        let comp = self.raw.split(self.d.component).nth(c.checked_sub(1)?)?;
        let sub = comp.split(self.d.subcomponent).nth(s.checked_sub(1)?)?;
        let text = unescape(sub, &self.d);
        let text = text.trim();
        (!text.is_empty() && text != "\"\"").then(|| text.to_owned())
    }

    /// Component `c` with its subcomponents joined by `&`-less spaces (for HD / CWE
    /// components sent whole), unescaped; None when empty.
    pub fn component_text(&self, c: usize) -> Option<String> {
        let comp = self.raw.split(self.d.component).nth(c.checked_sub(1)?)?;
        let parts: Vec<String> = comp
            .split(self.d.subcomponent)
            .map(|s| unescape(s, &self.d).trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Resolve escape sequences: `\F\ \S\ \T\ \R\ \E\` give the delimiters, `\Xhh..\` the
/// bytes (UTF-8 when they are, Latin-1 otherwise), `\.br\` a line break; highlighting
/// (`\H\ \N\`) and other formatting commands are dropped. An unterminated or unknown
/// sequence is kept as sent.
pub fn unescape(s: &str, d: &Delimiters) -> String {
    if !s.contains(d.escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(d.escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + d.escape.len_utf8()..];
        let Some(end) = after.find(d.escape) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let code = &after[..end];
        let next = &after[end + d.escape.len_utf8()..];
        match code {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            ".br" => out.push('\n'),
            "H" | "N" => {}
            c if c.starts_with('X') && hex_bytes(&c[1..]).is_some() => {
                let bytes = hex_bytes(&c[1..]).unwrap_or_default();
                out.push_str(&decode_text(&bytes));
            }
            c if c.starts_with('.') => {}
            _ => {
                // Not an escape: keep the first escape character and read on after it.
                out.push(d.escape);
                rest = after;
                continue;
            }
        }
        rest = next;
    }
    out.push_str(rest);
    out
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    if h.is_empty() || !h.len().is_multiple_of(2) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

/// Escape text for a field of an outgoing message (ACK text).
pub fn escape(s: &str, d: &Delimiters) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let code = if c == d.escape {
            "E"
        } else if c == d.field {
            "F"
        } else if c == d.component {
            "S"
        } else if c == d.subcomponent {
            "T"
        } else if c == d.repetition {
            "R"
        } else if c == '\r' || c == '\n' {
            out.push(' ');
            continue;
        } else {
            out.push(c);
            continue;
        };
        out.push(d.escape);
        out.push_str(code);
        out.push(d.escape);
    }
    out
}
