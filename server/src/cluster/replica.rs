//! This replica's name: in Mission Control's tiles, in the cluster feed and in
//! the `X-Calos-Replica` response header, which tells an operator (and the
//! tests) which replica behind the balancer answered.

use std::sync::Arc;

/// The response header naming the replica that answered.
pub const HEADER: &str = "x-calos-replica";

/// A name goes into a header and a Redis key: keep it short and plain.
pub fn parse_name(text: &str) -> Result<String, String> {
    let text = text.trim();
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if text.is_empty() || text.len() > 63 || !plain {
        return Err("a replica name is 1 to 63 letters, digits, '-', '_' or '.'".into());
    }
    Ok(text.to_string())
}

/// The configured name, or the host name and process id (unique on one
/// machine, and readable in a pod, where the host name is the pod's).
pub fn name(configured: Option<&str>) -> Arc<str> {
    if let Some(name) = configured {
        return name.into();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| parse_name(&h).ok())
        .unwrap_or_else(|| "calos".to_string());
    let mut name = format!("{host}-{}", std::process::id());
    name.truncate(63);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_short() {
        assert_eq!(parse_name(" a-1.b_2 ").as_deref(), Ok("a-1.b_2"));
        for bad in ["", "a b", "x\r\ny", &"a".repeat(64), "ü"] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_name(&name(None)).is_ok());
    }
}
