//! The IMAP write side (`flagpost_imap::ops`) against a real Dovecot: flag changes with and
//! without preconditions, ACL administration, argument injection, login checks, reconnects.
//! Every effect is read back through the harness's independent IMAP client.

use std::collections::BTreeSet;
use std::time::Duration;

use flagpost_domain::Rights;
use flagpost_e2e::{FlagSet, SERVICE_USER, flag_set, message, server_state, support_fixture};
use flagpost_harness::imap_client::quote;
use flagpost_harness::{Dovecot, DovecotOptions, ImapFixture};
use flagpost_imap::ops::{Expect, LoginCheckError, StoreOutcome, WriteError, Writer, verify_login};
use flagpost_imap::{ImapSettings, TlsMode};

const QUEUE: &str = "shared/support/Queue";
const BILLING: &str = "shared/support/Billing";

fn settings(dovecot: &Dovecot) -> ImapSettings {
    ImapSettings {
        host: "localhost".to_owned(),
        port: dovecot.imaps_port(),
        tls: TlsMode::Implicit,
        ca_file: Some(dovecot.ca_file().to_path_buf()),
        timeout: Duration::from_secs(10),
    }
}

fn writer(dovecot: &Dovecot) -> Writer {
    Writer::new(settings(dovecot), SERVICE_USER, "service-pw")
}

/// The support fixture, with the service account allowed to write flags (`w`, `s`) and
/// administer (`a`) Queue.
async fn fixture() -> Dovecot {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lrswa")
        .await
        .unwrap();
    dovecot
}

/// (UIDVALIDITY, flags, MODSEQ) of `uid` in `mailbox` as `user` reads it (EXAMINE, CONDSTORE).
async fn server_message(
    dovecot: &Dovecot,
    user: &str,
    mailbox: &str,
    uid: u32,
) -> (u32, FlagSet, u64) {
    let mut c = dovecot.client(user).await.unwrap();
    let r = c
        .command_ok(&format!("EXAMINE {} (CONDSTORE)", quote(mailbox).unwrap()))
        .await
        .unwrap();
    let uidvalidity = r
        .untagged
        .iter()
        .find_map(|l| {
            l.split("[UIDVALIDITY ")
                .nth(1)?
                .split(']')
                .next()?
                .parse()
                .ok()
        })
        .unwrap();
    let r = c
        .command_ok(&format!("UID FETCH {uid} (UID FLAGS MODSEQ)"))
        .await
        .unwrap();
    c.logout().await;
    let line = r
        .untagged
        .iter()
        .find(|l| l.contains(" FETCH ("))
        .unwrap_or_else(|| panic!("no FETCH for UID {uid}: {r:?}"));
    let flags = line
        .split("FLAGS (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let modseq = line
        .split("MODSEQ (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    (uidvalidity, flag_set(flags.split_whitespace()), modseq)
}

fn set_of(flags: &[String]) -> FlagSet {
    flag_set(flags.iter().map(String::as_str))
}

fn stored(outcome: StoreOutcome) -> (FlagSet, u64) {
    match outcome {
        StoreOutcome::Stored { flags, modseq } => (set_of(&flags), modseq.expect("a MODSEQ")),
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// GETACL of the owner's `folder` as the owner, as a set of (identifier, canonical rights).
async fn acl(dovecot: &Dovecot, folder: &str) -> BTreeSet<(String, String)> {
    acl_as(dovecot, "support", folder).await
}

/// GETACL of `mailbox` (as `user` names it) as `user`. (Dovecot shows the owner's own entry
/// only to the owner.)
async fn acl_as(dovecot: &Dovecot, user: &str, mailbox: &str) -> BTreeSet<(String, String)> {
    dovecot
        .get_acl(user, mailbox)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, rights)| (id, Rights::from_server(&rights).to_string()))
        .collect()
}

/// Every folder `user` can LIST, as the raw LIST lines, sorted.
async fn list(dovecot: &Dovecot, user: &str) -> BTreeSet<String> {
    let mut c = dovecot.client(user).await.unwrap();
    let r = c.command_ok("LIST \"\" \"*\"").await.unwrap();
    c.logout().await;
    r.lines_of("LIST").map(str::to_owned).collect()
}

/// How many times the service account has logged in so far (Dovecot's log).
fn service_logins(dovecot: &Dovecot) -> usize {
    dovecot
        .log()
        .matches(&format!("Login: user=<{SERVICE_USER}>"))
        .count()
}

#[tokio::test]
async fn store_adds_and_removes_system_flags_as_the_server_shows() {
    let dovecot = fixture().await;
    let uid = dovecot
        .append("support", "Queue", &message("flags", "c@example.org"))
        .await
        .unwrap();
    let w = writer(&dovecot);
    let (uidvalidity, before, modseq0) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    assert!(before.is_empty(), "{before:?}");

    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered", "\\flagged"],
            &[],
            None,
        )
        .await
        .unwrap();
    let (flags, modseq) = stored(out);
    assert_eq!(flags, flag_set(["\\Answered", "\\Flagged"]));
    let (_, server_flags, server_modseq) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    assert_eq!(flags, server_flags);
    assert_eq!(modseq, server_modseq);
    assert!(modseq > modseq0);
    // the owner sees the same shared flags
    assert_eq!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid],
        server_flags
    );

    // add and remove in one call
    let out = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Seen"], &["\\Answered"], None)
        .await
        .unwrap();
    let (flags, modseq) = stored(out);
    assert_eq!(flags, flag_set(["\\Flagged", "\\Seen"]));
    let (_, server_flags, server_modseq) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    assert_eq!((flags, modseq), (server_flags, server_modseq));

    // removing everything, twice (the second changes nothing and still reports the state)
    for _ in 0..2 {
        let out = w
            .store_flags(
                QUEUE,
                uidvalidity,
                uid,
                &[],
                &["\\Seen", "\\Flagged", "\\Answered"],
                None,
            )
            .await
            .unwrap();
        let (flags, modseq) = stored(out);
        assert!(flags.is_empty(), "{flags:?}");
        let (_, server_flags, server_modseq) =
            server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
        assert_eq!((flags, modseq), (server_flags, server_modseq));
    }
}

#[tokio::test]
async fn store_refuses_other_flags_and_reports_gone_and_uidvalidity_changes() {
    let dovecot = fixture().await;
    let uid = dovecot
        .append("support", "Queue", &message("refuse", "c@example.org"))
        .await
        .unwrap();
    let (uidvalidity, _, _) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    let w = writer(&dovecot);
    for (add, remove) in [
        (&["\\Deleted"][..], &[][..]),
        (&["\\Draft"], &[]),
        (&["$Label1"], &[]),
        (&["\\Seen)"], &[]),
        (&["\\Seen \\Deleted"], &[]),
        (&["\\Seen\r\nA1 EXPUNGE"], &[]),
        (&[], &["\\Deleted"]),
        (&["\\Seen"], &["\\seen"]),
    ] {
        let err = w
            .store_flags(QUEUE, uidvalidity, uid, add, remove, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{add:?} {remove:?}: {err:?}"
        );
        assert_eq!(err.http_status(), 400);
    }
    assert!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid].is_empty(),
        "nothing was stored"
    );

    // a UID that does not exist, and one that was expunged meanwhile
    let out = w
        .store_flags(QUEUE, uidvalidity, uid + 100, &["\\Seen"], &[], None)
        .await
        .unwrap();
    assert_eq!(out, StoreOutcome::Gone);
    dovecot.expunge("support", "Queue", uid).await.unwrap();
    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Seen"],
            &[],
            Some(Expect::ModSeq(1)),
        )
        .await
        .unwrap();
    assert_eq!(out, StoreOutcome::Gone);

    // the folder was recreated under a new UIDVALIDITY
    let uid2 = dovecot
        .append("support", "Queue", &message("new", "c@example.org"))
        .await
        .unwrap();
    dovecot
        .set_uidvalidity("support", "Queue", uidvalidity + 7)
        .await
        .unwrap();
    let err = w
        .store_flags(QUEUE, uidvalidity, uid2, &["\\Seen"], &[], None)
        .await
        .unwrap_err();
    match &err {
        WriteError::UidValidityChanged {
            expected, actual, ..
        } => assert_eq!((*expected, *actual), (uidvalidity, uidvalidity + 7)),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.http_status(), 404);
    assert!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid2].is_empty(),
        "nothing was stored under the wrong UIDVALIDITY"
    );

    // a folder that does not exist: the server's NO, and the session stays usable
    let err = w
        .store_flags("shared/support/Nope", 1, 1, &["\\Seen"], &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Refused { .. }), "{err:?}");
    assert_eq!(err.http_status(), 404, "{err}");
    let out = w
        .store_flags(QUEUE, uidvalidity + 7, uid2, &["\\Seen"], &[], None)
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Seen"]));
}

#[tokio::test]
async fn stale_modseq_is_a_conflict_and_leaves_the_message_alone() {
    let dovecot = fixture().await;
    dovecot
        .set_acl("support", "Queue", "alice", "lrsw")
        .await
        .unwrap();
    let uid = dovecot
        .append("support", "Queue", &message("conflict", "c@example.org"))
        .await
        .unwrap();
    let w = writer(&dovecot);
    let (uidvalidity, _, stale) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;

    // another client flags the message
    dovecot
        .store("alice", QUEUE, uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let (_, flags_now, modseq_now) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    assert!(modseq_now > stale);

    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered"],
            &["\\Flagged"],
            Some(Expect::ModSeq(stale)),
        )
        .await
        .unwrap();
    let StoreOutcome::Conflict { flags, modseq } = out else {
        panic!("expected a conflict, got {out:?}");
    };
    assert_eq!(set_of(&flags), flags_now);
    assert_eq!(modseq, Some(modseq_now));
    let (_, after, modseq_after) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    assert_eq!(after, flag_set(["\\Flagged"]), "our change was not applied");
    assert_eq!(modseq_after, modseq_now, "nothing at all was stored");

    // with the current MODSEQ it goes through, both halves
    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered"],
            &["\\Flagged"],
            Some(Expect::ModSeq(modseq_now)),
        )
        .await
        .unwrap();
    let (flags, modseq) = stored(out);
    assert_eq!(flags, flag_set(["\\Answered"]));
    assert_eq!((flags, modseq), {
        let (_, f, m) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
        (f, m)
    });

    // a precondition alone (nothing to change) is checked too
    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &[],
            &[],
            Some(Expect::ModSeq(stale)),
        )
        .await
        .unwrap();
    assert!(matches!(out, StoreOutcome::Conflict { .. }), "{out:?}");
}

#[tokio::test]
async fn expected_flags_precondition_conflicts_on_other_flags() {
    let dovecot = fixture().await;
    let uid = dovecot
        .append(
            "support",
            "Queue",
            &message("expect flags", "c@example.org"),
        )
        .await
        .unwrap();
    let w = writer(&dovecot);
    let (uidvalidity, _, _) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    dovecot
        .store("support", "Queue", uid, "+FLAGS (\\Seen $Work)")
        .await
        .unwrap();

    // the caller believes the message is unflagged and unseen
    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered"],
            &[],
            Some(Expect::Flags(vec![])),
        )
        .await
        .unwrap();
    let StoreOutcome::Conflict { flags, .. } = out else {
        panic!("expected a conflict, got {out:?}");
    };
    assert_eq!(set_of(&flags), flag_set(["\\Seen", "$Work"]));
    assert_eq!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid],
        flag_set(["\\Seen", "$Work"])
    );

    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered"],
            &[],
            Some(Expect::Flags(vec!["$Work".into(), "\\seen".into()])),
        )
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Answered", "\\Seen", "$Work"]));
}

#[tokio::test]
async fn without_condstore_flags_preconditions_still_work() {
    let caps =
        flagpost_harness::dovecot::capabilities_without(|c| matches!(c, "CONDSTORE" | "QRESYNC"));
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities: Some(caps),
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    dovecot.add_user("support", "support-pw").unwrap();
    dovecot.add_user(SERVICE_USER, "service-pw").unwrap();
    dovecot.create_folder("support", "Queue").await.unwrap();
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lrswa")
        .await
        .unwrap();
    let uid = dovecot
        .append(
            "support",
            "Queue",
            &message("no condstore", "c@example.org"),
        )
        .await
        .unwrap();
    let (uidvalidity, _, modseq) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    let w = writer(&dovecot);
    assert!(
        !w.capabilities()
            .await
            .unwrap()
            .iter()
            .any(|c| c == "CONDSTORE")
    );

    let out = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Flagged"], &[], None)
        .await
        .unwrap();
    assert_eq!(
        out,
        StoreOutcome::Stored {
            flags: vec!["\\Flagged".into()],
            modseq: None
        }
    );

    let err = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Seen"],
            &[],
            Some(Expect::ModSeq(modseq)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, WriteError::ModSeqUnsupported { .. }),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 412);

    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Seen"],
            &[],
            Some(Expect::Flags(vec![])),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        StoreOutcome::Conflict {
            flags: vec!["\\Flagged".into()],
            modseq: None
        }
    );
    let out = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Seen"],
            &["\\Flagged"],
            Some(Expect::Flags(vec!["\\Flagged".into()])),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        StoreOutcome::Stored {
            flags: vec!["\\Seen".into()],
            modseq: None
        }
    );
    assert_eq!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid],
        flag_set(["\\Seen"])
    );
}

#[tokio::test]
async fn store_without_the_rights_is_not_permitted_instead_of_silently_dropped() {
    let dovecot = fixture().await;
    let uid = dovecot
        .append("support", "Queue", &message("rights", "c@example.org"))
        .await
        .unwrap();
    let (uidvalidity, _, _) = server_message(&dovecot, SERVICE_USER, QUEUE, uid).await;
    let w = writer(&dovecot);

    // `s` without `w`: Dovecot would accept the STORE and silently drop \Answered
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lrsa")
        .await
        .unwrap();
    let err = w
        .store_flags(
            QUEUE,
            uidvalidity,
            uid,
            &["\\Answered", "\\Seen"],
            &[],
            None,
        )
        .await
        .unwrap_err();
    match &err {
        WriteError::NotPermitted { flags, .. } => assert_eq!(flags, &["\\Answered"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.http_status(), 403);
    assert!(server_state(&dovecot, "support", "Queue").await.unwrap()[&uid].is_empty());
    // \Seen alone is allowed
    let out = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Seen"], &[], None)
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Seen"]));

    // Read-only (`l r` only). Dovecot keeps a session's rights from before an ACL change, and
    // the writer above would still be allowed to write: a writer replaces sessions older than
    // its max age, so the revocation takes effect within that age.
    let w = writer(&dovecot).with_max_session_age(Duration::from_millis(300));
    let out = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Seen"], &[], None)
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Seen"]));
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lr")
        .await
        .unwrap();
    // Storing the \Seen the message already has changes nothing while the old session still
    // allows it; once the session is older than its max age, the writer refuses.
    flagpost_e2e::eventually(
        Duration::from_secs(5),
        "the revoked right refused",
        || async {
            Ok(
                w.store_flags(QUEUE, uidvalidity, uid, &["\\Seen"], &[], None)
                    .await
                    .err(),
            )
        },
    )
    .await
    .unwrap();
    let err = w
        .store_flags(QUEUE, uidvalidity, uid, &[], &["\\Seen"], None)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NotPermitted { .. }), "{err:?}");
    assert_eq!(
        server_state(&dovecot, "support", "Queue").await.unwrap()[&uid],
        flag_set(["\\Seen"])
    );

    // A right granted meanwhile is noticed at once, although the session that refuses still
    // holds the old rights: the writer asks again on a fresh session before refusing.
    let w = writer(&dovecot);
    let err = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Flagged"], &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NotPermitted { .. }), "{err:?}");
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lrswa")
        .await
        .unwrap();
    let out = w
        .store_flags(QUEUE, uidvalidity, uid, &["\\Flagged"], &[], None)
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Flagged", "\\Seen"]));
}

#[tokio::test]
async fn acl_set_delete_list_rights_and_capability() {
    let dovecot = fixture().await;
    let w = writer(&dovecot);
    let before = acl(&dovecot, "Queue").await;

    w.set_acl(QUEUE, "alice", "lrsw").await.unwrap();
    let mut want = before.clone();
    want.insert(("alice".into(), "lrsw".into()));
    assert_eq!(acl(&dovecot, "Queue").await, want);

    // replace, not add
    w.set_acl(QUEUE, "alice", "lr").await.unwrap();
    want.remove(&("alice".into(), "lrsw".into()));
    want.insert(("alice".into(), "lr".into()));
    assert_eq!(acl(&dovecot, "Queue").await, want);

    // a negative entry
    w.set_acl(QUEUE, "-bob", "w").await.unwrap();
    want.insert(("-bob".into(), "w".into()));
    assert_eq!(acl(&dovecot, "Queue").await, want);

    // the writer's GETACL agrees with the harness's as the same user
    let via_writer: BTreeSet<(String, String)> = w
        .get_acl(QUEUE)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, r)| (id, r.to_string()))
        .collect();
    assert_eq!(via_writer, acl_as(&dovecot, SERVICE_USER, QUEUE).await);
    want.retain(|(id, _)| id != "support");
    assert_eq!(via_writer, want);

    w.delete_acl(QUEUE, "alice").await.unwrap();
    w.delete_acl(QUEUE, "-bob").await.unwrap();
    assert_eq!(acl(&dovecot, "Queue").await, before);
    // deleting what is not there is fine on Dovecot
    w.delete_acl(QUEUE, "nobody-here").await.unwrap();

    let listed = w.list_rights(QUEUE, "alice").await.unwrap();
    assert!(listed.required.is_empty(), "{listed:?}");
    assert_eq!(listed.optional.to_string(), "lrswipkxtea", "{listed:?}");
    assert!(listed.letters.contains('c') && listed.letters.contains('d'));
    assert_eq!(
        w.rights_capability().await.unwrap().as_deref(),
        Some("texk")
    );
    assert_eq!(w.my_rights(QUEUE).await.unwrap().to_string(), "lrswa");

    // letters we refuse, a letter Dovecot refuses, obsolete letters Dovecot expands
    for bad in ["lrz", "+lr", "-w", "l r", "LR"] {
        let err = w.set_acl(QUEUE, "alice", bad).await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{bad}: {err:?}"
        );
    }
    let err = w.set_acl(QUEUE, "alice", "lr0").await.unwrap_err();
    assert!(matches!(err, WriteError::Rejected { .. }), "{err:?}");
    assert_eq!(err.http_status(), 400);
    w.set_acl(QUEUE, "alice", "lrcd").await.unwrap();
    assert!(
        acl(&dovecot, "Queue")
            .await
            .contains(&("alice".into(), "lrkxte".into())),
        "c → k, d → x t e"
    );
    w.delete_acl(QUEUE, "alice").await.unwrap();

    // no `a` on Billing, no such folder: the server's NO
    let err = w.set_acl(BILLING, "alice", "lr").await.unwrap_err();
    assert!(matches!(err, WriteError::Refused { .. }), "{err:?}");
    assert_eq!(err.http_status(), 403, "{err}");
    let err = w.get_acl(BILLING).await.unwrap_err();
    assert_eq!(err.http_status(), 403, "{err}");
    // (Dovecot answers LISTRIGHTS without `a`)
    assert!(w.list_rights(BILLING, "alice").await.is_ok());
    let err = w
        .delete_acl("shared/support/Nope", "alice")
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 404, "{err}");
    assert_eq!(acl(&dovecot, "Billing").await.len(), 2, "Billing untouched");
}

#[tokio::test]
async fn injection_is_refused_or_sent_as_one_quoted_argument() {
    let dovecot = fixture().await;
    let acl_before = acl(&dovecot, "Queue").await;
    let list_support = list(&dovecot, "support").await;
    let list_service = list(&dovecot, SERVICE_USER).await;

    // Refused before anything is sent: a fresh writer never even logs in.
    let logins = service_logins(&dovecot);
    let fresh = writer(&dovecot);
    let smuggle = [
        "x\r\nfpw9 DELETE \"Queue\"",
        "x\nfpw9 DELETE \"Queue\"",
        "x\rDELETE",
        "nul\0",
        "jürgen",
        "",
    ];
    for id in smuggle {
        let err = fresh.set_acl(QUEUE, id, "lr").await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{id:?}: {err:?}"
        );
        assert_eq!(err.http_status(), 400);
        let err = fresh.delete_acl(QUEUE, id).await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{id:?}: {err:?}"
        );
        let err = fresh.list_rights(QUEUE, id).await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{id:?}: {err:?}"
        );
    }
    for rights in ["lr\r\nfpw9 DELETE \"Queue\"", "lr\0", "lr\n"] {
        let err = fresh.set_acl(QUEUE, "alice", rights).await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{rights:?}: {err:?}"
        );
    }
    for folder in ["Queue\r\nfpw9 DELETE \"Queue\"", "Qu\0eue", "Grüße"] {
        let err = fresh.set_acl(folder, "alice", "lr").await.unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{folder:?}: {err:?}"
        );
        let err = fresh
            .store_flags(folder, 1, 1, &["\\Seen"], &[], None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidArgument(_)),
            "{folder:?}: {err:?}"
        );
    }
    // A login by another user after all that: once it is in the log, a login of the writer's
    // would be there too.
    let marker_logins = || dovecot.log().matches("Login: user=<support>").count();
    let markers = marker_logins();
    dovecot.client("support").await.unwrap().logout().await;
    flagpost_e2e::eventually(
        Duration::from_secs(5),
        "the marker login in the log",
        || async { Ok((marker_logins() > markers).then_some(())) },
    )
    .await
    .unwrap();
    assert_eq!(service_logins(&dovecot), logins, "nothing was sent");
    // (and the log does show a login once one happens)
    fresh.get_acl(QUEUE).await.unwrap();
    flagpost_e2e::eventually(Duration::from_secs(5), "the login in the log", || async {
        Ok((service_logins(&dovecot) == logins + 1).then_some(()))
    })
    .await
    .unwrap();
    // refused arguments on an open session leave it usable
    for id in smuggle {
        assert!(fresh.set_acl(QUEUE, id, "lr").await.is_err());
    }
    fresh.get_acl(QUEUE).await.unwrap();
    assert_eq!(service_logins(&dovecot), logins + 1);

    // Odd but valid identifiers travel as one quoted string: each becomes exactly one ACL
    // entry with exactly that name, and nothing else changes.
    let w = writer(&dovecot);
    let odd = [
        "a\"b",
        "back\\slash",
        "{5}",
        "{5+}",
        "two words",
        "x) (y",
        "\"",
        "\\",
        "* ACL",
        "%",
        "a\" \"lrswipkxtea",
        "Queue\" \"alice",
        "anyone\" \"lrswipkxtea",
    ];
    for id in odd {
        match w.set_acl(QUEUE, id, "lr").await {
            Ok(()) => {
                let mut want = acl_before.clone();
                want.insert((id.to_owned(), "lr".to_owned()));
                assert_eq!(acl(&dovecot, "Queue").await, want, "after SETACL {id:?}");
                let listed = w.list_rights(QUEUE, id).await.unwrap();
                assert!(listed.optional.to_string().contains('l'), "{id:?}");
                w.delete_acl(QUEUE, id).await.unwrap();
            }
            Err(e @ (WriteError::Refused { .. } | WriteError::Rejected { .. })) => {
                eprintln!("Dovecot refused identifier {id:?}: {e}");
            }
            Err(e) => panic!("{id:?}: {e:?}"),
        }
        assert_eq!(
            acl(&dovecot, "Queue").await,
            acl_before,
            "after DELETEACL {id:?}"
        );
    }
    assert_eq!(acl(&dovecot, "Billing").await.len(), 2);
    assert_eq!(list(&dovecot, "support").await, list_support);
    assert_eq!(list(&dovecot, SERVICE_USER).await, list_service);
}

#[tokio::test]
async fn folder_names_with_quotes_backslashes_and_spaces_work() {
    let dovecot = fixture().await;
    let name = "Say \"hi\" \\ {3} now";
    dovecot.create_folder("support", name).await.unwrap();
    dovecot
        .set_acl("support", name, SERVICE_USER, "lrswa")
        .await
        .unwrap();
    let imap_name = format!("shared/support/{name}");
    let uid = dovecot
        .append("support", name, &message("odd folder", "c@example.org"))
        .await
        .unwrap();
    let (uidvalidity, _, _) = server_message(&dovecot, SERVICE_USER, &imap_name, uid).await;
    let w = writer(&dovecot);
    let out = w
        .store_flags(&imap_name, uidvalidity, uid, &["\\Flagged"], &[], None)
        .await
        .unwrap();
    assert_eq!(stored(out).0, flag_set(["\\Flagged"]));
    assert_eq!(
        server_state(&dovecot, "support", name).await.unwrap()[&uid],
        flag_set(["\\Flagged"])
    );
    w.set_acl(&imap_name, "alice", "lr").await.unwrap();
    assert!(
        acl(&dovecot, name)
            .await
            .contains(&("alice".into(), "lr".into()))
    );
    assert!(
        w.get_acl(&imap_name)
            .await
            .unwrap()
            .iter()
            .any(|(id, r)| id == "alice" && r.to_string() == "lr")
    );
    w.delete_acl(&imap_name, "alice").await.unwrap();
    // the plain Queue next to it was not touched
    assert!(
        !acl(&dovecot, "Queue")
            .await
            .iter()
            .any(|(id, _)| id == "alice")
    );
}

#[tokio::test]
async fn writer_recovers_from_a_dropped_connection_and_keeps_it_after_no() {
    let dovecot = fixture().await;
    let w = writer(&dovecot);
    assert!(!w.get_acl(QUEUE).await.unwrap().is_empty());
    let logins = service_logins(&dovecot);

    // NO answers do not cost the session
    for _ in 0..3 {
        let err = w.get_acl("shared/support/Nope").await.unwrap_err();
        assert!(matches!(err, WriteError::Refused { .. }), "{err:?}");
    }
    assert!(!w.get_acl(QUEUE).await.unwrap().is_empty());
    assert_eq!(service_logins(&dovecot), logins, "the session was kept");

    // the server drops the session: the next call reconnects on its own
    assert!(dovecot.kick(SERVICE_USER).await.unwrap() >= 1);
    // Gone once the server no longer lists it (the kicked process has exited and closed it).
    flagpost_e2e::eventually(
        Duration::from_secs(10),
        "the kicked session to end",
        || async {
            let who = dovecot.doveadm(&["who", SERVICE_USER]).await?;
            Ok((!who.lines().any(|l| l.starts_with(SERVICE_USER))).then_some(()))
        },
    )
    .await
    .unwrap();
    let clones: Vec<Writer> = (0..4).map(|_| w.clone()).collect();
    let results = futures::future::join_all(clones.iter().map(|c| c.get_acl(QUEUE))).await;
    for r in results {
        assert!(!r.unwrap().is_empty());
    }
    assert_eq!(service_logins(&dovecot), logins + 1, "one new session");

    // a wrong service password is the service account's problem, not the caller's
    let bad = Writer::new(settings(&dovecot), SERVICE_USER, "wrong");
    let err = bad.get_acl(QUEUE).await.unwrap_err();
    assert!(matches!(err, WriteError::ServiceLogin(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);

    // the server is down (its sessions kicked first: a stopped Dovecot may leave running
    // sessions alive): unreachable, then fine again once it is back
    let mut dovecot = dovecot;
    dovecot.kick(SERVICE_USER).await.unwrap();
    dovecot.stop().await.unwrap();
    let err = w.get_acl(QUEUE).await.unwrap_err();
    assert!(matches!(err, WriteError::Unreachable(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);
    let err = writer(&dovecot).get_acl(QUEUE).await.unwrap_err();
    assert!(matches!(err, WriteError::Unreachable(_)), "{err:?}");
    dovecot.restart().await.unwrap();
    assert!(!w.get_acl(QUEUE).await.unwrap().is_empty());
}

/// Users whose passwords need escaping (quotes, backslashes, `{3}`, spaces) or a literal
/// (non-ASCII), besides the plain ones.
const LOGIN_USERS: [(&str, &str); 4] = [
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carla", "pa\"ss\\w{3}rd x"),
    ("dora", "pässwörd ünïcode €"),
];

/// A Dovecot with `users` (from [`LOGIN_USERS`]). Dovecot delays every failed login by 2 s and penalises the
/// client address by up to 15 s more per failure, for correct passwords too (auth penalty;
/// `login_trusted_networks` does not lift it). The first is turned off here; the penalty is
/// kept small by giving each failing case its own server.
async fn login_fixture(users: &[(&str, &str)]) -> Dovecot {
    let dovecot = Dovecot::start_with(DovecotOptions {
        extra_config: "auth_failure_delay = 0\n".into(),
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    for (user, password) in users {
        dovecot.add_user(user, password).unwrap();
    }
    // Dovecot re-reads the user file only once its mtime (which the harness bumps a second per
    // quick change, into the future) has passed: wait until its auth service accepts every
    // user's password (`doveadm auth test`, which costs no login penalty).
    for (user, password) in users {
        flagpost_e2e::wait_until_dovecot_knows(&dovecot, user, password)
            .await
            .unwrap();
    }
    dovecot
}

#[tokio::test]
async fn verify_login_accepts_right_passwords_quoted_or_as_literals() {
    let dovecot = login_fixture(&LOGIN_USERS).await;
    let s = settings(&dovecot);
    for (user, password) in LOGIN_USERS {
        verify_login(&s, user, password)
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    // STARTTLS on the plain port
    let starttls = ImapSettings {
        port: dovecot.imap_port(),
        tls: TlsMode::StartTls,
        ..s.clone()
    };
    verify_login(&starttls, "bob", "bob-pw").await.unwrap();
}

/// `password` for `user` is refused as bad credentials (each case on its own server, see
/// [`login_fixture`]).
async fn assert_bad_credentials(user: &str, password: &str) {
    let dovecot = login_fixture(&[LOGIN_USERS[0], LOGIN_USERS[3]]).await;
    let s = settings(&dovecot);
    let err = verify_login(&s, user, password).await.unwrap_err();
    assert!(
        matches!(err, LoginCheckError::BadCredentials(_)),
        "{user}: {err:?}"
    );
    assert_eq!(err.http_status(), 401);
}

#[tokio::test]
async fn verify_login_refuses_a_wrong_password() {
    assert_bad_credentials("alice", "Alice-pw").await;
}

#[tokio::test]
async fn verify_login_refuses_an_unknown_user() {
    assert_bad_credentials("nobody", "alice-pw").await;
}

#[tokio::test]
async fn verify_login_refuses_a_wrong_non_ascii_password() {
    assert_bad_credentials("dora", "passwörd ünïcode €").await;
}

#[tokio::test]
async fn verify_login_sends_a_password_with_quotes_as_one_argument() {
    // were the quotes not escaped, the server would see `LOGIN "alice" "alice-pw" "x"`
    assert_bad_credentials("alice", "alice-pw\" \"x").await;
}

#[tokio::test]
async fn verify_login_refuses_line_breaks_before_connecting() {
    // Nothing listens on this port: InvalidInput (not Unreachable) proves nothing was sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = ImapSettings {
        host: "127.0.0.1".into(),
        port: closed,
        tls: TlsMode::Implicit,
        ca_file: None,
        timeout: Duration::from_secs(5),
    };
    for (user, password) in [
        ("alice", "alice-pw\r\nfp9 LOGIN bob bob-pw"),
        ("alice\r\n", "alice-pw"),
        ("alice", "alice-pw\0"),
        ("alice", "alice-pw\n"),
        ("alice", "pw\r"),
        ("", "x"),
        ("alice", ""),
    ] {
        let err = verify_login(&s, user, password).await.unwrap_err();
        assert!(
            matches!(err, LoginCheckError::InvalidInput),
            "{user:?}: {err:?}"
        );
        assert_eq!(err.http_status(), 400);
    }
}

#[tokio::test]
async fn verify_login_reports_unreachable_and_untrusted_servers() {
    let dovecot = login_fixture(&LOGIN_USERS[..1]).await;
    let s = settings(&dovecot);
    verify_login(&s, "alice", "alice-pw").await.unwrap();
    // nothing listens
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = verify_login(
        &ImapSettings {
            host: "127.0.0.1".into(),
            port: closed,
            ..s.clone()
        },
        "alice",
        "alice-pw",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoginCheckError::Unreachable(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);

    // a certificate from a CA we do not trust
    let untrusted = ImapSettings {
        ca_file: None,
        ..s.clone()
    };
    let err = verify_login(&untrusted, "alice", "alice-pw")
        .await
        .unwrap_err();
    assert!(matches!(err, LoginCheckError::Tls(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);
    // the right CA but the wrong name: 127.0.0.2 (not in the certificate) relayed to Dovecot
    let relay = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let target = dovecot.imaps_port();
    let relay_task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let wrong_name = ImapSettings {
        host: "127.0.0.2".into(),
        port: relay_port,
        ..s.clone()
    };
    let err = verify_login(&wrong_name, "alice", "alice-pw")
        .await
        .unwrap_err();
    assert!(matches!(err, LoginCheckError::Tls(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);
    relay_task.abort();
}
