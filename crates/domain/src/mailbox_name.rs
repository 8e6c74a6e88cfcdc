//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3).
//!
//! On the wire IMAP mailbox names are 7-bit: printable ASCII stands for itself, `&` is written
//! `&-`, and any other run of characters is UTF-16BE in a modified base64 (`,` for `/`, no
//! padding) between `&` and `-`. Flagpost keeps the raw name for commands and shows the decoded
//! one.

use thiserror::Error;

/// A raw mailbox name that is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("mailbox name is not valid modified UTF-7: {0}")]
pub struct MailboxNameError(&'static str);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn sextet(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u32)
}

/// Decodes a raw (wire) mailbox name into UTF-8.
///
/// Servers that speak `UTF8=ACCEPT` may send UTF-8 names; non-ASCII input is passed through.
pub fn decode_mailbox_name(raw: &str) -> Result<String, MailboxNameError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after
            .find('-')
            .ok_or(MailboxNameError("'&' without closing '-'"))?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_base64_utf16(encoded)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn decode_base64_utf16(encoded: &str) -> Result<String, MailboxNameError> {
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in encoded.bytes() {
        let v = sextet(b).ok_or(MailboxNameError("invalid character in base64 run"))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 || bits >= 6 || bytes.is_empty() || bytes.len() % 2 != 0 {
        return Err(MailboxNameError("base64 run does not end on a UTF-16 unit"));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let decoded =
        String::from_utf16(&units).map_err(|_| MailboxNameError("invalid UTF-16 in base64 run"))?;
    if decoded.chars().any(|c| (' '..='~').contains(&c)) {
        // RFC 3501 §5.1.3: printable US-ASCII must not be encoded.
        return Err(MailboxNameError("printable ASCII inside a base64 run"));
    }
    Ok(decoded)
}

/// Encodes a UTF-8 mailbox name into modified UTF-7 for the wire.
pub fn encode_mailbox_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_utf16(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_utf16(&mut pending, &mut out);
    out
}

fn flush_utf16(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out.push('-');
    units.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rfc_3501_examples_and_ampersands() {
        let cases = [
            ("INBOX", "INBOX"),
            ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
            ("Tom &- Jerry", "Tom & Jerry"),
            ("shared/support/Caf&AOk-", "shared/support/Café"),
            ("&2D3eAA-", "\u{1F600}"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_mailbox_name(raw).unwrap(), want, "raw {raw:?}");
            assert_eq!(encode_mailbox_name(want), raw, "name {want:?}");
        }
    }

    #[test]
    fn rejects_malformed_names() {
        for raw in ["&", "&AOk", "&A-", "&AGE-", "&!!-"] {
            assert!(
                decode_mailbox_name(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
    }
}
