//! Effective rights: what the IMAP server grants one user on one folder, computed from the
//! folder's mirrored ACL (contract §1 "Effective rights", §2).
//!
//! # The two rules
//!
//! **RFC 4314.** §2 reserves `anyone` for the universal identity and every login name as the
//! identifier of that user; every other identifier (groups such as `$team`, `owner`,
//! `authenticated`, …) is "interpreted in an implementation-defined manner". An identifier
//! prefixed with `-` carries *negative rights*: those rights are removed from users matching the
//! identifier "even though the user might have the right as a consequence of some other
//! identifier in the ACL" (§2). The plain reading is therefore: the union of the rights of every
//! matching identifier, minus the union of the negative rights of every matching identifier.
//! §2.1 lists the rights; §2.1.1 the obsolete `c`/`d` (dropped when parsing, see
//! [`Rights::from_server`]). SETACL/DELETEACL (§3.1, §3.2) write `-name` for a negative entry,
//! GETACL (§3.3, response §3.6) returns them the same way, MYRIGHTS (§3.5, response §3.8) is the
//! server's own answer for the logged-in user.
//!
//! **Dovecot** (measured on 2.3.19 against `MYRIGHTS`; the source is `acl_object_rebuild_cache`
//! in `src/plugins/acl/acl-api.c`) does *not* add entries up. It sorts the entries into classes
//! in this override order (each class overriding the ones before it):
//!
//! `anyone` < `authenticated` < group (`$name`) < `owner` < user (`name`) < group-override
//! (`!$name`), and all *global* ACLs (shown as `#…`) after all local ones.
//!
//! Walking the matching classes in that order, a class that has positive rights **replaces** the
//! positive set so far, and a class that has negative rights **replaces** the negative set so far
//! (within one class, e.g. several groups, they are merged); a class without positive (or
//! without negative) rights leaves that set alone. The first global class resets the negative
//! set. The result is `positive − negative`. Examples measured on Dovecot 2.3.19:
//!
//! | ACL | user | Dovecot `MYRIGHTS` | RFC 4314 reading |
//! |---|---|---|---|
//! | `anyone lrw`, `-authenticated w`, `alice s` | alice | `s` | `lrs` |
//! | `anyone lrw`, `-anyone r`, `-authenticated w` | bob | `lr` | `l` |
//! | `anyone lrw`, `-anyone r`, `-authenticated w`, `-carol i` | carol | `lrw` | `l` |
//!
//! So neither rule bounds the other: a user entry *replaces* what `anyone` gave (Dovecot
//! grants less), and a more specific negative entry *replaces* a less specific one (Dovecot
//! grants more: `-carol i` gives carol back the `r` and `w` that `-anyone r` and
//! `-authenticated w` took away).
//!
//! # What Flagpost grants
//!
//! [`effective_rights`] is the **intersection** of both rules: the positive rights of the most
//! specific matching class (Dovecot), minus *every* matching negative right (RFC 4314). It
//! equals Dovecot's `MYRIGHTS` except where the RFC reading is stricter (the negative-override
//! case above), and it never exceeds what a server following either rule would grant, so the
//! contract's invariant holds on Dovecot and on servers that implement the RFC's union rule
//! (Cyrus, for instance). [`dovecot_rights`] and [`rfc4314_rights`] expose each rule alone.
//!
//! # Identifiers Flagpost cannot resolve
//!
//! Every identifier either applies to the user ([`Applies::Yes`]), does not ([`Applies::No`]),
//! or might ([`Applies::Maybe`]): groups (`$team`, `!$team`, `group:team`, `group=team`) whose
//! members Flagpost does not know, `owner` when the owner is not known, an identifier that
//! equals the user name only when case is ignored (Dovecot compares names case-sensitively,
//! but a server may fold case on login: `Alice` must not grant to `alice`, and `-Alice` must
//! still remove from `alice`), a name that differs from the login only by a domain
//! (`alice` for the login `alice@example.com`: Dovecot's `auth_username_format = %Ln` and
//! Cyrus's virtual domains compare the shortened name), and a case variant of
//! `anyone`/`authenticated`/`owner` or another server's special name (Courier's `authuser`,
//! `anonymous`, `administrators`). Courier's and Dovecot's files' `user=alice` is the user
//! `alice`. `authenticated` itself is every logged-in user only where the server is known to
//! read it so (Dovecot, recognised by its `ID`: [`AclDialect`]); RFC 4314 does not define it,
//! and Cyrus takes it for a user name. A
//! *Maybe* entry never grants: its negative rights are always removed, and its positive rights,
//! when its class could override the user's most specific positive class, bound the result from
//! above (it might replace it). Grant less, never more.
//!
//! # Owners
//!
//! Dovecot gives a folder's owner the owner default (all rights) replaced by any `owner` or
//! own-user entry, and ignores `anyone`, `authenticated` and group entries for the owner. The
//! rules here do not model that path; for the owner they compute at most what Dovecot grants
//! (the owner's entry, when present, is the most specific one; otherwise `anyone` /
//! `authenticated` give at most "all"; every negative entry is subtracted). Pass the owner in
//! [`AclContext::owner`] when it is known (the `<owner>` of `shared/<owner>/…`), so `owner`
//! entries resolve to Yes/No instead of Maybe.
//!
//! Dovecot 2.3 (measured) shows an `owner` entry in GETACL **under the name of the user who
//! asks**, when that user has no entry of its own: with `owner lrswa` and
//! `authenticated lra`, alice's GETACL says `alice alrws` while her MYRIGHTS says `lra`. The
//! mirror reads ACLs as the service account, so an entry named like it may really be the
//! owner's. Pass the service account in [`AclContext::reader`]: such an entry is then treated
//! as possibly the reader's and possibly the owner's (Maybe for both).

use crate::rights::Rights;

/// One entry of a folder's ACL as the server lists it in GETACL (RFC 4314 §3.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// The identifier as the server sends it: `alice`, `anyone`, `authenticated`, `owner`,
    /// `$team`, `!$team`, `#anyone` (a global ACL); a leading `-` marks negative rights
    /// (`-alice`, `-anyone`).
    pub identifier: String,
    /// The rights (positive, or the ones removed for a negative entry).
    pub rights: Rights,
}

impl AclEntry {
    /// An entry with already parsed rights.
    pub fn new(identifier: impl Into<String>, rights: Rights) -> AclEntry {
        AclEntry {
            identifier: identifier.into(),
            rights,
        }
    }

    /// An entry from a GETACL reply: the rights string is parsed leniently
    /// ([`Rights::from_server`]: obsolete `c`/`d` and unknown letters are dropped).
    pub fn from_server(identifier: impl Into<String>, rights: &str) -> AclEntry {
        AclEntry::new(identifier, Rights::from_server(rights))
    }

    /// Whether this entry carries negative rights (`-name`).
    pub fn is_negative(&self) -> bool {
        self.identifier.starts_with('-')
    }

    /// The parsed identifier.
    pub fn parsed(&self) -> Identifier<'_> {
        Identifier::parse(&self.identifier)
    }
}

/// The classes of identifiers, in Dovecot's override order (a later class overrides an
/// earlier one; `acl_id_type` in Dovecot's `acl-api.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentifierKind {
    /// `anyone` (RFC 4314 §2): every user, including anonymous ones.
    Anyone,
    /// `authenticated`: every logged-in user.
    Authenticated,
    /// A group: `$name` (Dovecot, Cyrus), `group:name` (Cyrus), `group=name` (Dovecot's files).
    Group,
    /// `owner`: the folder's owner.
    Owner,
    /// A user name.
    User,
    /// A group that overrides user entries: `!$name` (Dovecot).
    GroupOverride,
}

/// A parsed ACL identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identifier<'a> {
    /// A `-` prefix: the entry removes rights (RFC 4314 §2).
    pub negative: bool,
    /// A `#` prefix: a global ACL set by the administrator (Dovecot); it overrides local ones.
    pub global: bool,
    /// The class.
    pub kind: IdentifierKind,
    /// The user or group name; empty for `anyone`, `authenticated` and `owner`.
    pub name: &'a str,
}

impl<'a> Identifier<'a> {
    /// Parses an identifier as a server sends it.
    pub fn parse(identifier: &'a str) -> Identifier<'a> {
        let (negative, rest) = match identifier.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, identifier),
        };
        let (global, rest) = match rest.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (kind, name) = if rest == "anyone" {
            (IdentifierKind::Anyone, "")
        } else if rest == "authenticated" {
            (IdentifierKind::Authenticated, "")
        } else if rest == "owner" {
            (IdentifierKind::Owner, "")
        } else if let Some(group) = rest.strip_prefix("!$") {
            (IdentifierKind::GroupOverride, group)
        } else if let Some(group) = rest.strip_prefix("group-override=") {
            (IdentifierKind::GroupOverride, group)
        } else if let Some(user) = rest.strip_prefix("user=") {
            // Dovecot's ACL files and Courier's GETACL spell a user `user=name`.
            (IdentifierKind::User, user)
        } else if let Some(group) = rest
            .strip_prefix('$')
            .or_else(|| rest.strip_prefix("group:"))
            .or_else(|| rest.strip_prefix("group="))
        {
            (IdentifierKind::Group, group)
        } else {
            (IdentifierKind::User, rest)
        };
        Identifier {
            negative,
            global,
            kind,
            name,
        }
    }

    /// Whether this identifier refers to `user`, given what `context` knows.
    pub fn applies_to(&self, user: &str, context: &AclContext<'_>) -> Applies {
        match self.kind {
            IdentifierKind::Anyone => Applies::Yes,
            // Flagpost's principals are always logged-in IMAP users, but only some servers
            // (Dovecot) read `authenticated` as "every logged-in user"; RFC 4314 leaves it to
            // the implementation, and Cyrus takes it for a user of that name.
            IdentifierKind::Authenticated if context.dialect == AclDialect::Dovecot => Applies::Yes,
            IdentifierKind::Authenticated => Applies::Maybe,
            IdentifierKind::Group | IdentifierKind::GroupOverride => Applies::Maybe,
            IdentifierKind::Owner => owner_applies(user, context),
            IdentifierKind::User => {
                let name = self.name;
                if context.reader == Some(name) {
                    // Dovecot 2.3 may show the `owner` entry under the reader's name.
                    let as_user = name_applies(name, user);
                    let as_owner = owner_applies(user, context);
                    if as_user == Applies::No && as_owner == Applies::No {
                        Applies::No
                    } else {
                        Applies::Maybe
                    }
                } else if SPECIAL_ELSEWHERE
                    .iter()
                    .any(|s| name.eq_ignore_ascii_case(s))
                {
                    // Not a special identifier here (those were parsed above), but a server
                    // that ignores case, or another server's dialect, might take it for one.
                    match name_applies(name, user) {
                        Applies::Yes => Applies::Yes,
                        _ => Applies::Maybe,
                    }
                } else {
                    name_applies(name, user)
                }
            }
        }
    }

    /// Where the entry sits in Dovecot's override order (globals after all locals).
    fn tier(&self) -> u8 {
        (self.global as u8) * 8 + self.kind as u8
    }
}

/// Whether an identifier refers to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Applies {
    /// It does.
    Yes,
    /// It might (a group, an unknown owner, a case variant): never grants, always removes.
    Maybe,
    /// It does not.
    No,
}

/// What Flagpost knows about a folder beyond its ACL entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclContext<'a> {
    /// The folder's owner, if known (`support` for `shared/support/Queue`). `None`: `owner`
    /// entries might apply to anyone.
    pub owner: Option<&'a str>,
    /// The user whose GETACL produced the entries (the service account), if known. See the
    /// module docs: Dovecot 2.3 may list the `owner` entry under this name.
    pub reader: Option<&'a str>,
    /// Whose rules the server follows, as far as Flagpost can tell.
    pub dialect: AclDialect,
}

impl AclContext<'static> {
    /// What Flagpost knows of a Dovecot server's ACLs before any folder detail.
    pub const DOVECOT: AclContext<'static> = AclContext {
        owner: None,
        reader: None,
        dialect: AclDialect::Dovecot,
    };
}

/// Which rules a server applies to its ACLs, told by the name its `ID` gives (RFC 2971).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AclDialect {
    /// Not known: `authenticated` only might apply, and the rights are within both rules.
    #[default]
    Unknown,
    /// Dovecot (`ID` name `Dovecot…`): `authenticated` is every logged-in user, the most
    /// specific class replaces the others (module docs); rights are within both rules.
    Dovecot,
    /// RFC 4314's union rule as Cyrus applies it (`ID` name `Cyrus…`): every matching entry
    /// adds, every matching negative entry removes; `authenticated` is a user name.
    Rfc4314,
}

impl AclDialect {
    /// The dialect of a server that gave `name` in its `ID` response.
    pub fn from_server_name(name: Option<&str>) -> AclDialect {
        let name = name.unwrap_or_default().trim().to_ascii_lowercase();
        if name.starts_with("dovecot") {
            AclDialect::Dovecot
        } else if name.starts_with("cyrus") {
            AclDialect::Rfc4314
        } else {
            AclDialect::Unknown
        }
    }
}

/// Names that are special identifiers on some server: RFC 4314's own (in another case),
/// Courier's `authuser` (every logged-in user), `anonymous` (Courier, Cyrus) and
/// `administrators` (Courier). Entries under them never grant and always remove.
const SPECIAL_ELSEWHERE: [&str; 6] = [
    "anyone",
    "authenticated",
    "owner",
    "authuser",
    "anonymous",
    "administrators",
];

/// Whether the ACL name `name` is the login `user`. Only the exact name is certain. A server
/// may have turned the login into another name before comparing: folded its case, dropped its
/// domain (Dovecot's `auth_username_format = %Ln`, Cyrus's virtual domains), or added one. A
/// name that matches in any of those ways might be the same user.
fn name_applies(name: &str, user: &str) -> Applies {
    if name == user {
        return Applies::Yes;
    }
    let (name, user) = (name.to_lowercase(), user.to_lowercase());
    let local = |s: &str| s.split('@').next().unwrap_or_default().to_owned();
    if name == user || (!local(&name).is_empty() && local(&name) == local(&user)) {
        Applies::Maybe
    } else {
        Applies::No
    }
}

/// Whether the ACL identifier `name` may be the server's own name for the login `login`: a
/// plain user name (no `-`, `#`, group or special form) that is the login in another case or
/// its local part without the domain (`alice` for `Alice@Example.com`). A name with another
/// domain is another user. Narrower than the *Maybe* of [`Identifier::applies_to`], which also
/// errs towards removing rights; this one picks the name whose rights the login gets.
pub fn may_be_servers_name_for(name: &str, login: &str) -> bool {
    let parsed = Identifier::parse(name);
    if parsed.kind != IdentifierKind::User || parsed.name != name || name == login {
        return false;
    }
    let local = login.split('@').next().unwrap_or_default();
    name.to_lowercase() == login.to_lowercase()
        || (!name.contains('@') && !local.is_empty() && name.eq_ignore_ascii_case(local))
}

fn owner_applies(user: &str, context: &AclContext<'_>) -> Applies {
    match context.owner {
        Some(owner) => name_applies(owner, user),
        None => Applies::Maybe,
    }
}

/// One entry, classified for one user.
#[derive(Debug, Clone, Copy)]
struct Term {
    tier: u8,
    global: bool,
    applies: Applies,
    negative: bool,
    rights: Rights,
}

fn terms(acl: &[AclEntry], user: &str, context: &AclContext<'_>) -> Vec<Term> {
    let mut terms: Vec<Term> = acl
        .iter()
        .map(|e| {
            let id = e.parsed();
            Term {
                tier: id.tier(),
                global: id.global,
                applies: id.applies_to(user, context),
                negative: id.negative,
                rights: e.rights,
            }
        })
        .filter(|t| t.applies != Applies::No)
        .collect();
    terms.sort_by_key(|t| t.tier);
    terms
}

/// Dovecot's rule on the entries that certainly apply: returns (positive set, the tier that
/// set it, negative set).
fn dovecot_walk(terms: &[Term]) -> (Rights, Option<u8>, Rights) {
    let mut pos = Rights::NONE;
    let mut pos_tier = None;
    let mut neg = Rights::NONE;
    let mut seen_global = false;
    let yes: Vec<&Term> = terms.iter().filter(|t| t.applies == Applies::Yes).collect();
    let mut i = 0;
    while i < yes.len() {
        let tier = yes[i].tier;
        let global = yes[i].global;
        let (mut tier_pos, mut tier_neg) = (None::<Rights>, None::<Rights>);
        while i < yes.len() && yes[i].tier == tier {
            let slot = if yes[i].negative {
                &mut tier_neg
            } else {
                &mut tier_pos
            };
            *slot = Some(slot.unwrap_or(Rights::NONE).union(yes[i].rights));
            i += 1;
        }
        if let Some(p) = tier_pos {
            pos = p;
            pos_tier = Some(tier);
        }
        if global && !seen_global {
            // The first global class resets the negative rights, so local ACLs cannot undo
            // a global grant.
            seen_global = true;
            neg = tier_neg.unwrap_or(Rights::NONE);
        } else if let Some(n) = tier_neg {
            neg = n;
        }
    }
    (pos, pos_tier, neg)
}

/// The rights Dovecot grants `user` (not the folder's owner), at most: exact when every entry
/// is resolved, a lower bound when some entry only might apply.
pub fn dovecot_rights(acl: &[AclEntry], user: &str) -> Rights {
    dovecot_rights_with(acl, user, &AclContext::DOVECOT)
}

/// [`dovecot_rights`] with what is known about the folder.
pub fn dovecot_rights_with(acl: &[AclEntry], user: &str, context: &AclContext<'_>) -> Rights {
    let terms = terms(acl, user, context);
    let (pos, pos_tier, neg) = dovecot_walk(&terms);
    let mut pos = pos;
    let mut neg = neg;
    for t in terms.iter().filter(|t| t.applies == Applies::Maybe) {
        if t.negative {
            neg = neg.union(t.rights);
        } else if pos_tier.is_none_or(|tier| t.tier >= tier) {
            // If it applies it replaces (or joins) the most specific positive class.
            pos = intersect(pos, t.rights);
        }
    }
    pos.minus(neg)
}

/// The rights RFC 4314 §2's union rule grants `user`: the positive rights of every identifier
/// that certainly applies, minus the negative rights of every identifier that might.
pub fn rfc4314_rights(acl: &[AclEntry], user: &str) -> Rights {
    rfc4314_rights_with(acl, user, &AclContext::default())
}

/// [`rfc4314_rights`] with what is known about the folder.
pub fn rfc4314_rights_with(acl: &[AclEntry], user: &str, context: &AclContext<'_>) -> Rights {
    let terms = terms(acl, user, context);
    let pos = terms
        .iter()
        .filter(|t| !t.negative && t.applies == Applies::Yes)
        .fold(Rights::NONE, |acc, t| acc.union(t.rights));
    let neg = terms
        .iter()
        .filter(|t| t.negative)
        .fold(Rights::NONE, |acc, t| acc.union(t.rights));
    pos.minus(neg)
}

/// The rights Flagpost grants `user` on a folder with this ACL: the intersection of
/// [`dovecot_rights`] and [`rfc4314_rights`], so never more than the IMAP server grants
/// (module docs). Nothing is known about the owner or the reader of the ACL, nor about the
/// server: `authenticated` only might apply. [`effective_rights_with`] takes what is known.
pub fn effective_rights(acl: &[AclEntry], user: &str) -> Rights {
    effective_rights_with(acl, user, &AclContext::default())
}

/// [`effective_rights`] with what is known about the folder (its owner, the user whose GETACL
/// produced `acl`) and the server: on a server known to apply RFC 4314's union rule (Cyrus)
/// that rule alone, so an entry of the user's own adds to `anyone`'s instead of replacing it;
/// elsewhere the intersection of both rules.
pub fn effective_rights_with(acl: &[AclEntry], user: &str, context: &AclContext<'_>) -> Rights {
    let rfc = rfc4314_rights_with(acl, user, context);
    match context.dialect {
        AclDialect::Rfc4314 => rfc,
        AclDialect::Dovecot | AclDialect::Unknown => {
            intersect(dovecot_rights_with(acl, user, context), rfc)
        }
    }
}

fn intersect(a: Rights, b: Rights) -> Rights {
    a.minus(Rights::from_server("lrswipkxtea").minus(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"anyone lrw -authenticated w alice s"` → entries (pairs, as in a GETACL line).
    fn acl(s: &str) -> Vec<AclEntry> {
        let words: Vec<&str> = s.split_whitespace().collect();
        words
            .chunks(2)
            .map(|c| AclEntry::from_server(c[0], c.get(1).map_or("", |r| r.trim_matches('"'))))
            .collect()
    }

    fn r(s: &str) -> Rights {
        Rights::parse_strict(s).unwrap()
    }

    /// (ACL, user, Dovecot rule, RFC 4314 rule, effective). Cases marked "measured" are what
    /// Dovecot 2.3.19's MYRIGHTS said for that ACL.
    const CASES: &[(&str, &str, &str, &str, &str)] = &[
        // nothing applies
        ("", "alice", "", "", ""),
        ("bob lr", "alice", "", "", ""),
        // anyone / authenticated / user
        ("anyone lr", "alice", "lr", "lr", "lr"),
        ("authenticated lrs", "alice", "lrs", "lrs", "lrs"),
        ("alice lrswa", "alice", "lrswa", "lrswa", "lrswa"),
        // measured: a user entry replaces what anyone gave
        (
            "anyone lrw -authenticated w alice s",
            "alice",
            "s",
            "lrs",
            "s",
        ),
        ("anyone lrw alice s", "alice", "s", "lrsw", "s"),
        // authenticated replaces anyone
        ("anyone lrw authenticated l", "bob", "l", "lrw", "l"),
        // measured
        ("anyone lrw -authenticated w", "alice", "lr", "lr", "lr"),
        // measured: a more specific negative entry replaces a less specific one
        (
            "anyone lrw -anyone r -authenticated w",
            "bob",
            "lr",
            "l",
            "l",
        ),
        (
            "anyone lrw -anyone r -authenticated w -carol i",
            "carol",
            "lrw",
            "l",
            "l",
        ),
        // measured: negative only for the user keeps the positive set of anyone
        ("anyone lrw -alice w", "alice", "lr", "lr", "lr"),
        // measured: positive and negative for the same user
        ("anyone lrw alice s -alice s", "alice", "", "lrw", ""),
        (
            "alice lrwa anyone lrw -anyone r -authenticated w",
            "alice",
            "lra",
            "la",
            "la",
        ),
        // only negative entries: nothing granted
        ("-anyone r", "alice", "", "", ""),
        // an empty positive entry (GETACL `alice ""`) replaces
        ("anyone lr alice \"\"", "alice", "", "lr", ""),
        // obsolete letters are dropped
        (
            "alice lrwstipekxacd",
            "alice",
            "lrswipkxtea",
            "lrswipkxtea",
            "lrswipkxtea",
        ),
        // groups never grant…
        ("$team lrs", "alice", "", "", ""),
        ("!$team lrs", "alice", "", "", ""),
        ("group:team lrs", "alice", "", "", ""),
        // …might override (a group-override beats a user entry; a group beats anyone)…
        ("alice lrsw !$team lr", "alice", "lr", "lrsw", "lr"),
        ("alice lrsw $team lr", "alice", "lrsw", "lrsw", "lrsw"),
        ("anyone lrsw $team lr", "alice", "lr", "lrsw", "lr"),
        // …and their negative rights are removed
        ("alice lrsw -$team w", "alice", "lrs", "lrs", "lrs"),
        ("anyone lrsw -!$team s", "alice", "lrw", "lrw", "lrw"),
        // owner: unknown owner might be this user
        ("anyone lrsw owner lr", "alice", "lr", "lrsw", "lr"),
        ("alice lrsw owner lr", "alice", "lrsw", "lrsw", "lrsw"),
        ("alice lrsw -owner w", "alice", "lrs", "lrs", "lrs"),
        // case: a case variant never grants, always removes
        ("Alice lrsw", "alice", "", "", ""),
        ("anyone lr -Alice r", "alice", "l", "l", "l"),
        ("anyone lrsw ALICE lr", "alice", "lr", "lrsw", "lr"),
        ("Anyone lr", "alice", "", "", ""),
        ("anyone lrs -Authenticated s", "alice", "lr", "lr", "lr"),
        // global ACLs override local ones and reset local negative rights
        ("alice lrsw #anyone lr", "alice", "lr", "lrsw", "lr"),
        (
            "anyone lrsw -alice s #authenticated lrsw",
            "alice",
            "lrsw",
            "lrw",
            "lrw",
        ),
        ("#alice lrsw -#anyone w", "alice", "lrs", "lrs", "lrs"),
        // a server may know the login under another name: without or with a domain, in
        // another case, or in its own dialect (Courier's `user=`); such a name never grants
        // and always removes
        ("anyone lr -alice r", "alice@example.com", "l", "l", "l"),
        ("anyone lr -ALICE r", "Alice@Example.com", "l", "l", "l"),
        ("anyone lr -alice@example.com r", "alice", "l", "l", "l"),
        (
            "anyone lr -alice@example.org r",
            "alice@example.com",
            "l",
            "l",
            "l",
        ),
        (
            "anyone lrw alice lr",
            "alice@example.com",
            "lr",
            "lrw",
            "lr",
        ),
        ("alice lrw", "alice@example.com", "", "", ""),
        ("anyone lr -bob r", "alice@example.com", "lr", "lr", "lr"),
        (
            "anyone lr -@example.com r",
            "alice@example.com",
            "lr",
            "lr",
            "lr",
        ),
        ("anyone lr -user=alice r", "alice", "l", "l", "l"),
        ("user=alice lrw", "alice", "lrw", "lrw", "lrw"),
        ("anyone lr -user=bob r", "alice", "lr", "lr", "lr"),
        // Courier's special names: `authuser` is every logged-in user
        ("anyone lr -authuser r", "alice", "l", "l", "l"),
        ("authuser lr", "alice", "", "", ""),
        ("anyone lrw -administrators w", "alice", "lr", "lr", "lr"),
    ];

    /// The table's rows were measured on (or reasoned for) Dovecot, which reads
    /// `authenticated` as every logged-in user.
    const D: &AclContext<'static> = &AclContext::DOVECOT;

    #[test]
    fn rules_table() {
        for &(acl_s, user, dovecot, rfc, effective) in CASES {
            let a = acl(acl_s);
            assert_eq!(
                dovecot_rights_with(&a, user, D),
                r(dovecot),
                "Dovecot rule, {acl_s:?} for {user}"
            );
            assert_eq!(
                rfc4314_rights_with(&a, user, D),
                r(rfc),
                "RFC 4314 rule, {acl_s:?} for {user}"
            );
            assert_eq!(
                effective_rights_with(&a, user, D),
                r(effective),
                "effective, {acl_s:?} for {user}"
            );
        }
    }

    #[test]
    fn effective_never_exceeds_either_rule() {
        for &(acl_s, user, ..) in CASES {
            let a = acl(acl_s);
            for ctx in [D, &AclContext::default()] {
                let e = effective_rights_with(&a, user, ctx);
                let dovecot = dovecot_rights_with(&a, user, ctx);
                let rfc = rfc4314_rights_with(&a, user, ctx);
                assert_eq!(e.minus(dovecot), Rights::NONE, "{acl_s} {ctx:?}");
                assert_eq!(e.minus(rfc), Rights::NONE, "{acl_s} {ctx:?}");
                // Without knowing the server, never more than on Dovecot.
                assert_eq!(e.minus(effective_rights_with(&a, user, D)), Rights::NONE);
            }
        }
    }

    #[test]
    fn the_dialect_follows_the_servers_id_name() {
        for (name, dialect) in [
            (Some("Dovecot"), AclDialect::Dovecot),
            (Some("Dovecot Pro"), AclDialect::Dovecot),
            (Some("Cyrus IMAPD"), AclDialect::Rfc4314),
            (Some("Stalwart"), AclDialect::Unknown),
            (Some(""), AclDialect::Unknown),
            (None, AclDialect::Unknown),
        ] {
            assert_eq!(AclDialect::from_server_name(name), dialect, "{name:?}");
        }
    }

    #[test]
    fn on_a_union_rule_server_an_own_entry_adds_to_anyone() {
        // Measured on Cyrus 3.6: `anyone lrw`, `alice s`, `-bob w` → alice `lrsw`, bob `lr`.
        let cyrus = AclContext {
            dialect: AclDialect::Rfc4314,
            ..AclContext::default()
        };
        let a = acl("anyone lrw alice s -bob w");
        assert_eq!(effective_rights_with(&a, "alice", &cyrus), r("lrsw"));
        assert_eq!(effective_rights_with(&a, "bob", &cyrus), r("lr"));
        // Where the server is not known, the stricter of both rules.
        assert_eq!(effective_rights(&a, "alice"), r("s"));
        // Groups and look-alike names still never grant, and always remove.
        let a = acl("anyone lr group:staff w -Alice r");
        assert_eq!(effective_rights_with(&a, "alice", &cyrus), r("l"));
        // `authenticated` is a user name there.
        let a = acl("authenticated lrs");
        assert_eq!(effective_rights_with(&a, "bob", &cyrus), r(""));
    }

    #[test]
    fn authenticated_grants_only_where_the_server_is_known_to_mean_every_user() {
        // Measured on Cyrus 3.6: with `authenticated lrs` (and no other entry for bob), bob's
        // MYRIGHTS is empty: `authenticated` is just a user name there.
        let a = acl("support lrswa authenticated lrs");
        assert_eq!(effective_rights(&a, "bob"), r(""));
        assert_eq!(effective_rights_with(&a, "bob", D), r("lrs"));
        // Its negative rights are taken away either way.
        let a = acl("anyone lrsw -authenticated w");
        assert_eq!(effective_rights(&a, "bob"), r("lrs"));
        assert_eq!(effective_rights_with(&a, "bob", D), r("lrs"));
        // A user really named `authenticated` (possible on Cyrus) is not granted either.
        let a = acl("authenticated lrs");
        assert_eq!(effective_rights(&a, "authenticated"), r(""));
    }

    #[test]
    fn the_servers_name_for_a_login_is_a_case_or_domain_variant_only() {
        let cases: &[(&str, &str, bool)] = &[
            ("alice", "alice@example.com", true),
            ("alice", "Alice@Example.COM", true),
            ("alice@example.com", "Alice@Example.com", true),
            ("alice", "Alice", true),
            // the login itself, another user, another domain, special or negative forms
            ("alice@example.com", "alice@example.com", false),
            ("bob", "alice@example.com", false),
            ("alice@example.org", "alice@example.com", false),
            ("-alice", "alice@example.com", false),
            ("$alice", "alice@example.com", false),
            ("user=alice", "alice@example.com", false),
            ("anyone", "Anyone@example.com", false),
            ("", "@example.com", false),
        ];
        for &(name, login, want) in cases {
            assert_eq!(
                may_be_servers_name_for(name, login),
                want,
                "{name} for {login}"
            );
        }
    }

    #[test]
    fn identifiers_parse() {
        let cases: &[(&str, bool, bool, IdentifierKind, &str)] = &[
            ("anyone", false, false, IdentifierKind::Anyone, ""),
            ("-anyone", true, false, IdentifierKind::Anyone, ""),
            (
                "authenticated",
                false,
                false,
                IdentifierKind::Authenticated,
                "",
            ),
            ("owner", false, false, IdentifierKind::Owner, ""),
            ("alice", false, false, IdentifierKind::User, "alice"),
            ("-alice", true, false, IdentifierKind::User, "alice"),
            ("$team", false, false, IdentifierKind::Group, "team"),
            ("-$team", true, false, IdentifierKind::Group, "team"),
            ("group:team", false, false, IdentifierKind::Group, "team"),
            ("group=team", false, false, IdentifierKind::Group, "team"),
            (
                "!$team",
                false,
                false,
                IdentifierKind::GroupOverride,
                "team",
            ),
            ("#anyone", false, true, IdentifierKind::Anyone, ""),
            ("-#alice", true, true, IdentifierKind::User, "alice"),
            ("anonymous", false, false, IdentifierKind::User, "anonymous"),
            ("user=alice", false, false, IdentifierKind::User, "alice"),
            ("-user=alice", true, false, IdentifierKind::User, "alice"),
        ];
        for &(s, negative, global, kind, name) in cases {
            assert_eq!(
                Identifier::parse(s),
                Identifier {
                    negative,
                    global,
                    kind,
                    name
                },
                "{s}"
            );
        }
    }

    #[test]
    fn identifiers_apply() {
        let none = AclContext::default();
        let owned = AclContext {
            owner: Some("support"),
            reader: None,
            dialect: AclDialect::Dovecot,
        };
        let read = AclContext {
            owner: Some("support"),
            reader: Some("flagpost"),
            dialect: AclDialect::Dovecot,
        };
        let cases: &[(&str, &str, &AclContext<'_>, Applies)] = &[
            ("anyone", "alice", &none, Applies::Yes),
            ("authenticated", "alice", &none, Applies::Maybe),
            ("authenticated", "alice", &owned, Applies::Yes),
            ("alice", "alice", &none, Applies::Yes),
            ("-alice", "alice", &none, Applies::Yes),
            ("bob", "alice", &none, Applies::No),
            ("Alice", "alice", &none, Applies::Maybe),
            ("ÄLICE", "älice", &none, Applies::Maybe),
            ("$team", "alice", &none, Applies::Maybe),
            ("owner", "alice", &none, Applies::Maybe),
            ("owner", "alice", &owned, Applies::No),
            ("owner", "support", &owned, Applies::Yes),
            ("owner", "Support", &owned, Applies::Maybe),
            // the reader's entry may be the owner's entry under the reader's name
            ("flagpost", "flagpost", &read, Applies::Maybe),
            ("flagpost", "support", &read, Applies::Maybe),
            ("flagpost", "alice", &read, Applies::No),
            ("flagpost", "flagpost", &owned, Applies::Yes),
        ];
        for &(id, user, ctx, want) in cases {
            assert_eq!(
                Identifier::parse(id).applies_to(user, ctx),
                want,
                "{id} for {user} with {ctx:?}"
            );
        }
    }

    #[test]
    fn context_resolves_owner_and_reader() {
        // Dovecot 2.3 measured: with `owner lrswa` and `authenticated lra`, the service
        // account's GETACL lists `flagpost alrws` (the owner's entry under its own name),
        // while its MYRIGHTS is `lra`.
        let a = acl("authenticated lra flagpost alrws");
        let read = AclContext {
            owner: Some("support"),
            reader: Some("flagpost"),
            dialect: AclDialect::Dovecot,
        };
        assert_eq!(effective_rights_with(&a, "flagpost", D), r("lrswa"));
        assert_eq!(effective_rights_with(&a, "flagpost", &read), r("lra"));
        assert_eq!(effective_rights_with(&a, "alice", &read), r("lra"));
        // A known owner resolves `owner` entries: no longer a bound for others.
        let a = acl("anyone lrsw owner lr -owner w");
        let owned = AclContext {
            owner: Some("support"),
            reader: None,
            dialect: AclDialect::Dovecot,
        };
        assert_eq!(effective_rights(&a, "alice"), r("lr"));
        assert_eq!(effective_rights_with(&a, "alice", &owned), r("lrsw"));
        assert_eq!(effective_rights_with(&a, "support", &owned), r("lr"));
    }
}
