//! W3C Trace Context (`traceparent`): the ids a trace is made of, reading the
//! header a caller sends and writing the one calos sends upstream.
//!
//! Reading is forgiving by design: a header that does not follow the spec is
//! ignored (the request starts a trace of its own), never an error, because a
//! caller's broken tracing must not break its chat.

use std::fmt;

/// A trace's id: 16 random bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 random bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// Random bytes, never all zero (an all-zero id means "none" in W3C and OTLP).
fn nonzero<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    loop {
        rand::thread_rng().fill_bytes(&mut bytes);
        if bytes != [0; N] {
            return bytes;
        }
    }
}

impl TraceId {
    pub fn random() -> Self {
        Self(nonzero())
    }

    /// 32 lowercase hex digits: the form logs, headers and trace viewers use.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl SpanId {
    pub fn random() -> Self {
        Self(nonzero())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The `sampled` bit of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// A caller's span, as its `traceparent` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` for anything the W3C spec says
    /// to ignore: wrong lengths, uppercase or non-hex digits, version `ff`,
    /// all-zero ids, or a version-00 header with anything after the flags.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut fields = value.splitn(5, '-');
        let version = fields.next()?;
        let trace_id = fields.next()?;
        let parent_id = fields.next()?;
        let flags = fields.next()?;
        let rest = fields.next();
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return None;
        }
        // Version 00 is exactly four fields; a later version may add more
        // after a dash, which a version-00 reader skips.
        if (version == "00" && rest.is_some()) || flags.len() != 2 {
            return None;
        }
        Some(Self {
            trace_id: TraceId(decode_id(trace_id)?),
            parent_id: SpanId(decode_id(parent_id)?),
            flags: decode_id::<1>(flags).map(|[b]| b)?,
        })
        .filter(|p| p.trace_id.0 != [0; 16] && p.parent_id.0 != [0; 8])
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// The `traceparent` value naming `span` of `trace` (version 00).
pub fn traceparent(trace: TraceId, span: SpanId, sampled: bool) -> String {
    let flags = if sampled { SAMPLED } else { 0 };
    format!("00-{}-{}-{flags:02x}", trace.to_hex(), span.to_hex())
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !is_lower_hex(text) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let parsed = TraceParent::parse(VALID).expect("valid");
        assert_eq!(parsed.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.parent_id.to_hex(), "00f067aa0ba902b7");
        assert!(parsed.sampled());
        assert_eq!(traceparent(parsed.trace_id, parsed.parent_id, true), VALID);
    }

    #[test]
    fn malformed_headers_are_ignored_not_errors() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_for_its_known_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let parsed = TraceParent::parse(later).expect("readable");
        assert!(!parsed.sampled());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(text in ".{0,80}") {
            let _ = TraceParent::parse(&text);
        }
    }
}
