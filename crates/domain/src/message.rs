//! Message flags and the status derived from them (contract §1).

use serde::{Deserialize, Serialize};

/// A message's status, derived from its IMAP flags only; `deleted` wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `\Deleted` set, not yet expunged.
    Deleted,
    /// `\Answered` and not `\Deleted`.
    Answered,
    /// Neither `\Answered` nor `\Deleted`.
    Pending,
}

impl Status {
    /// The status's name as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deleted => "deleted",
            Status::Answered => "answered",
            Status::Pending => "pending",
        }
    }
}

/// The flags of one message, as the server reported them (system flags and keywords).
///
/// Kept sorted and de-duplicated so that two equal flag sets compare equal; `\Recent` is
/// dropped because it is session-specific (RFC 3501 §2.3.2) and would make the mirror
/// depend on which connection saw the message first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Flags(Vec<String>);

impl Flags {
    /// Builds a flag set from the server's flag atoms.
    pub fn new<I, S>(flags: I) -> Flags
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = flags
            .into_iter()
            .map(Into::into)
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .map(|f| canonical_system_flag(&f).map_or(f, str::to_owned))
            .collect();
        v.sort();
        v.dedup();
        Flags(v)
    }

    /// Whether the set holds `flag` (system flags compare case-insensitively, RFC 3501 §9).
    pub fn contains(&self, flag: &str) -> bool {
        self.0.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// `\Answered`.
    pub fn answered(&self) -> bool {
        self.contains("\\Answered")
    }

    /// `\Flagged`.
    pub fn flagged(&self) -> bool {
        self.contains("\\Flagged")
    }

    /// `\Seen`.
    pub fn seen(&self) -> bool {
        self.contains("\\Seen")
    }

    /// `\Deleted`.
    pub fn deleted(&self) -> bool {
        self.contains("\\Deleted")
    }

    /// The status these flags give.
    pub fn status(&self) -> Status {
        if self.deleted() {
            Status::Deleted
        } else if self.answered() {
            Status::Answered
        } else {
            Status::Pending
        }
    }

    /// The flags, sorted.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

fn canonical_system_flag(flag: &str) -> Option<&'static str> {
    ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_derived_with_deleted_winning() {
        let cases: [(&[&str], Status); 5] = [
            (&[], Status::Pending),
            (&["\\Seen", "\\Flagged"], Status::Pending),
            (&["\\Answered"], Status::Answered),
            (&["\\Answered", "\\Deleted"], Status::Deleted),
            (&["\\deleted"], Status::Deleted),
        ];
        for (flags, want) in cases {
            assert_eq!(
                Flags::new(flags.iter().copied()).status(),
                want,
                "{flags:?}"
            );
        }
    }

    #[test]
    fn flags_are_canonical_and_drop_recent() {
        let f = Flags::new(["\\seen", "$label", "\\Recent", "\\Seen"]);
        assert_eq!(f.as_slice(), ["$label", "\\Seen"]);
        assert!(f.seen());
        assert!(!f.flagged());
    }
}
