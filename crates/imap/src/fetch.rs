//! FETCH responses → domain values, and UID sets for commands.

use flagpost_domain::Flags;
use flagpost_domain::envelope::{
    address_text, clean_text, decode_header_text, parse_header_date, parse_internaldate,
};
use flagpost_domain::sync::{Address, Envelope, FetchedMessage, FlagUpdate};
use imap_proto::AttributeValue;

/// The items fetched for a message Flagpost has not seen yet.
pub const FULL_ITEMS: &str = "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE";

/// What one FETCH response carried.
#[derive(Debug, Clone, Default)]
pub struct FetchData {
    /// UID (absent in some unsolicited FETCHes).
    pub uid: Option<u32>,
    /// FLAGS, if present.
    pub flags: Option<Flags>,
    /// MODSEQ, if present.
    pub modseq: Option<u64>,
    /// INTERNALDATE, raw.
    pub internaldate: Option<String>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// ENVELOPE, decoded.
    pub envelope: Option<Envelope>,
}

impl FetchData {
    /// Reads the attributes of one FETCH response, not knowing which strings were literals
    /// (see [`unescape_quoted`]).
    pub fn from_attributes(attrs: &[AttributeValue<'_>]) -> FetchData {
        FetchData::from_attributes_with(attrs, None)
    }

    /// Reads the attributes of one FETCH response parsed from `raw` (the response's bytes, as
    /// async-imap keeps them), which tells quoted strings from literals ([`unescape_in`]).
    pub fn from_attributes_in(attrs: &[AttributeValue<'_>], raw: &[u8]) -> FetchData {
        FetchData::from_attributes_with(attrs, Some(raw))
    }

    fn from_attributes_with(attrs: &[AttributeValue<'_>], raw: Option<&[u8]>) -> FetchData {
        let mut d = FetchData::default();
        for a in attrs {
            match a {
                AttributeValue::Uid(u) => d.uid = Some(*u),
                AttributeValue::Flags(f) => {
                    d.flags = Some(Flags::new(f.iter().map(|s| s.to_string())))
                }
                AttributeValue::ModSeq(m) => d.modseq = Some(*m),
                AttributeValue::InternalDate(s) => d.internaldate = Some(s.to_string()),
                AttributeValue::Rfc822Size(s) => d.size = Some(*s),
                AttributeValue::Envelope(e) => d.envelope = Some(convert_envelope(e, raw)),
                _ => {}
            }
        }
        d
    }

    /// Adds what a later FETCH response for the same message said: its items replace these,
    /// items it lacks are kept, and the higher MODSEQ stays. A server may split one message's
    /// items over several responses, or follow a FLAGS response with one that has only MODSEQ
    /// (RFC 3501 §7.4.2 lets it), and neither may lose what the earlier one carried.
    pub fn merge(&mut self, later: FetchData) {
        self.uid = later.uid.or(self.uid);
        self.flags = later.flags.or(self.flags.take());
        self.modseq = self.modseq.max(later.modseq);
        self.internaldate = later.internaldate.or(self.internaldate.take());
        self.size = later.size.or(self.size);
        self.envelope = later.envelope.or(self.envelope.take());
    }

    /// A full message, when every item of [`FULL_ITEMS`] is present. A missing or unparseable
    /// INTERNALDATE falls back to the envelope's date, then to the Unix epoch, rather than
    /// losing the message.
    pub fn into_message(self) -> Option<FetchedMessage> {
        let uid = self.uid?;
        let flags = self.flags?;
        let envelope = self.envelope.unwrap_or_default();
        let received_at = self
            .internaldate
            .as_deref()
            .and_then(parse_internaldate)
            .or(envelope.date)
            .unwrap_or_default();
        Some(FetchedMessage {
            uid,
            flags,
            modseq: self.modseq,
            received_at,
            size: u64::from(self.size.unwrap_or(0)),
            envelope,
        })
    }

    /// A flag update, when UID and FLAGS are present.
    pub fn as_flag_update(&self) -> Option<FlagUpdate> {
        Some(FlagUpdate {
            uid: self.uid?,
            flags: self.flags.clone()?,
            modseq: self.modseq,
        })
    }
}

/// Undoes quoted-string escaping (RFC 3501 §4.3: `\"` and `\\`). imap-proto hands quoted
/// strings over with their escapes intact, and literals without any, and does not say which it
/// was: where the response's bytes are at hand, [`unescape_in`] tells them apart; without
/// them a literal holding a backslash before a quote or backslash is the (rare) casualty.
pub fn unescape_quoted(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() && matches!(raw[i + 1], b'\\' | b'"') {
            i += 1;
        }
        out.push(raw[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// `value` as the server meant it, where `value` was parsed from `raw` (one response's bytes):
/// a quoted string is unescaped, a literal (RFC 3501 §4.3: `{n}` CRLF and n bytes taken as
/// they are) is not. imap-proto borrows both from `raw`, so the byte before `value` tells: the
/// opening `"` of a quoted string, or the LF that ends a literal's `{n}` line. A value that does
/// not lie in `raw` is unescaped as quoted.
pub fn unescape_in<'a>(raw: Option<&[u8]>, value: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    if let Some(raw) = raw {
        let (start, at) = (raw.as_ptr() as usize, value.as_ptr() as usize);
        if at > start && at + value.len() <= start + raw.len() && raw[at - start - 1] == b'\n' {
            return std::borrow::Cow::Borrowed(value);
        }
    }
    unescape_quoted(value)
}

/// [`unescape_in`] for text.
pub fn unescape_in_str(raw: Option<&[u8]>, value: &str) -> String {
    String::from_utf8_lossy(&unescape_in(raw, value.as_bytes())).into_owned()
}

/// [`unescape_quoted`] for text.
pub fn unescape_quoted_str(raw: &str) -> String {
    String::from_utf8_lossy(&unescape_quoted(raw.as_bytes())).into_owned()
}

fn convert_envelope(e: &imap_proto::Envelope<'_>, raw: Option<&[u8]>) -> Envelope {
    let field = |f: &Option<std::borrow::Cow<'_, [u8]>>| {
        f.as_deref().map(|b| unescape_in(raw, b).into_owned())
    };
    let addr = |a: &imap_proto::Address<'_>| Address {
        name: field(&a.name)
            .as_deref()
            .map(decode_header_text)
            .filter(|s| !s.is_empty()),
        address: address_text(field(&a.mailbox).as_deref(), field(&a.host).as_deref()),
    };
    // Group syntax (RFC 3501 §7.4.2) appears as entries without a host: a start marker holds
    // the group's name in the mailbox field, an end marker is all NIL. Skip both; an entry
    // with nothing but a display name (`From: Customer <>` on some servers) is kept.
    let real = |a: &&imap_proto::Address<'_>| {
        a.host.is_some() || (a.mailbox.is_none() && a.name.is_some())
    };
    Envelope {
        message_id: field(&e.message_id)
            .as_deref()
            .map(|m| clean_text(m, 998))
            .filter(|s| !s.is_empty()),
        subject: field(&e.subject).as_deref().map(decode_header_text),
        from: e
            .from
            .as_ref()
            .and_then(|list| list.iter().find(real).map(addr)),
        to: e
            .to
            .as_ref()
            .map(|list| {
                list.iter()
                    .filter(real)
                    .filter(|a| a.mailbox.is_some())
                    .map(addr)
                    .collect()
            })
            .unwrap_or_default(),
        date: field(&e.date).as_deref().and_then(parse_header_date),
    }
}

/// Formats UIDs as a compact IMAP sequence set (`1:3,7,9:10`). `uids` need not be sorted.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_envelope_test(e: &imap_proto::Envelope<'_>) -> Envelope {
        convert_envelope(e, None)
    }

    /// Parses one FETCH response and reads it as the connection does.
    fn fetch_of(raw: &[u8]) -> FetchData {
        let (_, r) = imap_proto::Response::parse(raw).expect("a FETCH response");
        let imap_proto::Response::Fetch(_, attrs) = r else {
            panic!("not a FETCH: {r:?}");
        };
        FetchData::from_attributes_in(&attrs, raw)
    }

    #[test]
    fn a_literal_is_taken_as_it_is_and_a_quoted_string_is_unescaped() {
        // The subject as a literal (servers send 8-bit text so): its backslashes are data.
        let subject = r#"Café \"q\" C:\\new"#;
        let literal = format!(
            "* 1 FETCH (UID 7 ENVELOPE (NIL {{{}}}\r\n{subject} NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
            subject.len()
        );
        let d = fetch_of(literal.as_bytes());
        assert_eq!(d.envelope.unwrap().subject.as_deref(), Some(subject));
        // The same text as a quoted string, escaped as RFC 3501 §4.3 wants.
        let quoted = r#"* 1 FETCH (UID 7 ENVELOPE (NIL "a \\\"q\\\" C:\\new" NIL NIL NIL NIL NIL NIL NIL NIL))"#
            .to_owned()
            + "\r\n";
        let d = fetch_of(quoted.as_bytes());
        assert_eq!(
            d.envelope.unwrap().subject.as_deref(),
            Some(r#"a \"q\" C:\new"#)
        );
    }

    #[test]
    fn quoted_string_escapes_are_undone() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"plain", b"plain"),
            (br#"He said \"hi\""#, br#"He said "hi""#),
            (br"back\\slash", br"back\slash"),
            (br"trailing\", br"trailing\"),
        ];
        for (raw, want) in cases {
            assert_eq!(&*unescape_quoted(raw), want);
        }
    }

    fn address<'a>(
        name: Option<&'a str>,
        mailbox: Option<&'a str>,
        host: Option<&'a str>,
    ) -> imap_proto::Address<'a> {
        let b = |s: Option<&'a str>| s.map(|s| std::borrow::Cow::Borrowed(s.as_bytes()));
        imap_proto::Address {
            name: b(name),
            adl: None,
            mailbox: b(mailbox),
            host: b(host),
        }
    }

    fn envelope<'a>(
        from: Vec<imap_proto::Address<'a>>,
        to: Vec<imap_proto::Address<'a>>,
    ) -> imap_proto::Envelope<'a> {
        imap_proto::Envelope {
            date: None,
            subject: None,
            from: Some(from),
            sender: None,
            reply_to: None,
            to: Some(to),
            cc: None,
            bcc: None,
            in_reply_to: None,
            message_id: None,
        }
    }

    /// `From: undisclosed:;` is a group with no member: its start and end markers are not a
    /// sender, and the first real address after a group is.
    #[test]
    fn group_markers_are_not_addresses() {
        let start = || address(None, Some("undisclosed"), None);
        let end = || address(None, None, None);
        let real = || address(Some("Pat"), Some("pat"), Some("example.org"));
        let e = convert_envelope_test(&envelope(vec![start(), end()], vec![]));
        assert!(e.from.is_none(), "{:?}", e.from);
        let e = convert_envelope_test(&envelope(
            vec![start(), end(), real()],
            vec![start(), real(), end()],
        ));
        let from = e.from.unwrap();
        assert_eq!(from.name.as_deref(), Some("Pat"));
        assert_eq!(from.address.as_deref(), Some("pat@example.org"));
        assert_eq!(e.to.len(), 1);
        let named = convert_envelope_test(&envelope(
            vec![address(Some("Customer"), None, None)],
            vec![],
        ));
        assert_eq!(named.from.unwrap().name.as_deref(), Some("Customer"));
    }

    #[test]
    fn later_fetch_responses_add_to_earlier_ones() {
        let mut d = FetchData {
            uid: Some(7),
            flags: Some(Flags::new(["\\Answered"])),
            modseq: Some(18),
            ..FetchData::default()
        };
        // Only MODSEQ (say a keyword or label change the server reports without FLAGS).
        d.merge(FetchData {
            uid: Some(7),
            modseq: Some(20),
            ..FetchData::default()
        });
        assert_eq!(d.flags, Some(Flags::new(["\\Answered"])));
        assert_eq!(d.modseq, Some(20));
        // Newer flags replace older ones; an older MODSEQ does not go back.
        d.merge(FetchData {
            uid: Some(7),
            flags: Some(Flags::new(["\\Seen"])),
            modseq: Some(19),
            size: Some(42),
            ..FetchData::default()
        });
        assert_eq!(d.flags, Some(Flags::new(["\\Seen"])));
        assert_eq!((d.modseq, d.size), (Some(20), Some(42)));
    }

    #[test]
    fn uid_sets_are_compact_ranges() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 10]), "1:3,7,9:10");
    }
}
