//! Effective rights (`flagpost_domain::acl`) against a real Dovecot: hundreds of random ACLs on
//! one shared folder, and for each ACL and each of several users, the rights Flagpost computes
//! from the folder's GETACL are compared with what the server's own `MYRIGHTS` says to that
//! user (RFC 4314 §3.5).
//!
//! The folder is `Queue` in `support`'s mailbox; the other users see it as
//! `shared/support/Queue` (the fixture's `shared/%u/` namespace). `support` is the owner: it
//! sets the ACLs, so it can never lock itself out (Dovecot gives the owner the `a` right no
//! matter what, and the random ACLs never name `support` or `-owner`). The owner's rights follow
//! a path of their own in Dovecot (owner default, no `anyone`/`authenticated`), which
//! `flagpost_domain::acl` does not model exactly: for the owner only "computed ⊆ MYRIGHTS" is
//! checked. The users checked for equality are `alice`, `bob`, `carol`, `dave` (named in the
//! random ACLs) and the service account `flagpost` (its own `flagpost lra` entry stays; the
//! random `anyone`/`authenticated` entries and negatives still act on it).
//!
//! Each round replaces the folder's ACL (DELETEACL of the previous round's identifiers, SETACL
//! of 1–7 random entries over those users, a user that does not exist, `anyone`,
//! `authenticated`, negatives, random letters of `lrswipkxtea`; about a third of the rounds
//! also use identifiers Flagpost cannot resolve: `$team`, `!$team`, `Alice`, `owner`). The
//! sessions stay logged in between rounds. Dovecot's vfile ACL cache notices a changed
//! `dovecot-acl` by mtime (whole seconds) and size, so a change within the same second that
//! keeps the size is invisible to an open session; the test gives the file a new mtime after
//! each round (as if a second had passed) and re-asks in a fresh session whenever an answer
//! disagrees, counting those.
//!
//! Assertions: computed ⊆ MYRIGHTS always; for every pair whose ACL Flagpost can resolve,
//! Dovecot's rule (`dovecot_rights`) equals MYRIGHTS exactly, and the effective rights equal
//! MYRIGHTS except where the RFC 4314 union rule is stricter (then they equal MYRIGHTS ∩ RFC).
//! `MYRIGHTS` answers `NO [NONEXISTENT]` when the user has no right or only `p`: such an answer
//! means "∅ or p". The seed is printed; `FLAGPOST_RIGHTS_SEED` replays a run,
//! `FLAGPOST_RIGHTS_ROUNDS` changes the number of rounds (default 250).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use flagpost_domain::acl::{
    AclContext, AclEntry, Applies, dovecot_rights_with, effective_rights_with, rfc4314_rights_with,
};
use flagpost_domain::{Right, Rights};
use flagpost_e2e::{SERVICE_USER, support_fixture};
use flagpost_harness::dovecot::imap_words;
use flagpost_harness::imap_client::quote;
use flagpost_harness::{Dovecot, ImapClient, ImapFixture};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const OWNER: &str = "support";
const FOLDER: &str = "Queue";
const SHARED: &str = "shared/support/Queue";
/// Users named in the random ACLs and checked for equality.
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Identifiers Flagpost can resolve for every checked user (`erin` does not exist), with
/// weights that leave most users some right in most rounds.
const RESOLVABLE: [(&str, u32); 7] = [
    ("alice", 2),
    ("bob", 2),
    ("carol", 2),
    ("dave", 2),
    ("erin", 1),
    ("anyone", 3),
    ("authenticated", 3),
];
/// Identifiers it cannot: a group, a group-override, a case variant of `alice`, `owner`.
const UNRESOLVABLE: [&str; 4] = ["$team", "!$team", "Alice", "owner"];
const LETTERS: &str = "lrswipkxtea";

/// What MYRIGHTS said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Rights(Rights),
    /// `NO [NONEXISTENT]`: no right at all, or only `p` (Dovecot hides the folder then).
    NoneOrPost,
}

impl Answer {
    /// Whether `computed` is at most what the server grants.
    fn allows(self, computed: Rights) -> bool {
        match self {
            Answer::Rights(r) => computed.minus(r).is_empty(),
            Answer::NoneOrPost => computed.minus(post()).is_empty(),
        }
    }

    /// Whether `computed` is exactly what the server grants.
    fn equals(self, computed: Rights) -> bool {
        match self {
            Answer::Rights(r) => computed == r,
            Answer::NoneOrPost => computed.is_empty() || computed == post(),
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Rights(r) => write!(f, "{r:?}"),
            Answer::NoneOrPost => write!(f, "NO [NONEXISTENT] (∅ or p)"),
        }
    }
}

fn post() -> Rights {
    Rights::NONE.with(Right::Post)
}

async fn my_rights(c: &mut ImapClient) -> Answer {
    let r = c
        .command(&format!("MYRIGHTS {}", quote(SHARED).unwrap()))
        .await
        .unwrap();
    if r.is_ok() {
        let line = r.lines_of("MYRIGHTS").next().expect("a MYRIGHTS line");
        let words = imap_words(line);
        Answer::Rights(Rights::from_server(words.last().map_or("", String::as_str)))
    } else {
        assert!(
            r.text.contains("NONEXISTENT"),
            "MYRIGHTS failed: {} {}",
            r.status,
            r.text
        );
        Answer::NoneOrPost
    }
}

async fn get_acl(admin: &mut ImapClient) -> Vec<(String, String)> {
    let r = admin
        .command_ok(&format!("GETACL {}", quote(FOLDER).unwrap()))
        .await
        .unwrap();
    let line = r.lines_of("ACL").next().expect("an ACL line");
    let words = imap_words(line);
    words[1..]
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect()
}

/// Logs in as `user`, waiting for Dovecot to re-read its passwd-file after `add_user`.
async fn client_eventually(dovecot: &Dovecot, user: &str) -> ImapClient {
    // A user just added may not be known yet: Dovecot re-reads its passwd file once a second.
    flagpost_e2e::eventually(
        Duration::from_secs(5),
        &format!("a login as {user}"),
        || async { Ok(dovecot.client(user).await.ok()) },
    )
    .await
    .unwrap()
}

fn random_acl(rng: &mut StdRng, unresolvable: bool) -> Vec<(String, String)> {
    let n = rng.random_range(1..=7);
    (0..n)
        .map(|_| {
            let base = if unresolvable && rng.random_bool(0.35) {
                UNRESOLVABLE[rng.random_range(0..UNRESOLVABLE.len())]
            } else {
                let total: u32 = RESOLVABLE.iter().map(|(_, w)| w).sum();
                let mut pick = rng.random_range(0..total);
                let mut chosen = RESOLVABLE[0].0;
                for (id, w) in RESOLVABLE {
                    if pick < w {
                        chosen = id;
                        break;
                    }
                    pick -= w;
                }
                chosen
            };
            // `-owner` could take rights from the admin itself: never.
            let negative = base != "owner" && rng.random_bool(0.3);
            let mut rights: String = LETTERS.chars().filter(|_| rng.random_bool(0.4)).collect();
            if rights.is_empty() {
                let i = rng.random_range(0..LETTERS.len());
                rights.push_str(&LETTERS[i..=i]);
            }
            (format!("{}{base}", if negative { "-" } else { "" }), rights)
        })
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    pairs: usize,
    resolvable_pairs: usize,
    dovecot_rule_equal: usize,
    effective_equal: usize,
    rfc_stricter: usize,
    unresolvable_pairs: usize,
    unresolvable_equal: usize,
    owner_checks: usize,
    owner_equal: usize,
    ambiguous_answers: usize,
    stale_answers: usize,
}

#[tokio::test]
async fn computed_rights_match_dovecot_myrights_on_random_acls() {
    let seed = flagpost_e2e::test_seed("FLAGPOST_RIGHTS_SEED");
    let rounds = flagpost_e2e::env_count("FLAGPOST_RIGHTS_ROUNDS", 250);
    println!("rights test seed: {seed} (FLAGPOST_RIGHTS_SEED={seed} replays it), {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);

    let dovecot = support_fixture().await.unwrap();
    dovecot.add_user("carol", "carol-pw").unwrap();
    dovecot.add_user("dave", "dave-pw").unwrap();
    let acl_file = dovecot
        .dir()
        .join("mail")
        .join(OWNER)
        .join("Maildir")
        .join(format!(".{FOLDER}"))
        .join("dovecot-acl");
    assert!(acl_file.is_file(), "no ACL file at {}", acl_file.display());

    let mut admin = dovecot.client(OWNER).await.unwrap();
    let checked: Vec<&str> = USERS.iter().copied().chain([SERVICE_USER]).collect();
    let mut sessions: Vec<(&str, ImapClient)> = Vec::new();
    for user in checked.iter().copied().chain([OWNER]) {
        let mut c = client_eventually(&dovecot, user).await;
        my_rights(&mut c).await;
        sessions.push((user, c));
    }
    let context = AclContext {
        owner: Some(OWNER),
        reader: Some(OWNER),
        dialect: flagpost_domain::acl::AclDialect::Dovecot,
    };

    let mut tally = Tally::default();
    let mut failures: Vec<String> = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let unresolvable = rng.random_bool(0.3);
        let wanted = random_acl(&mut rng, unresolvable);
        // SETACL replaces an identifier's rights: delete only the ones not set again.
        for id in previous
            .drain(..)
            .filter(|p| !wanted.iter().any(|(id, _)| id == p))
        {
            admin
                .command_ok(&format!(
                    "DELETEACL {} {}",
                    quote(FOLDER).unwrap(),
                    quote(&id).unwrap()
                ))
                .await
                .unwrap();
        }
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for (id, rights) in &wanted {
            admin
                .command_ok(&format!(
                    "SETACL {} {} {}",
                    quote(FOLDER).unwrap(),
                    quote(id).unwrap(),
                    quote(rights).unwrap()
                ))
                .await
                .unwrap();
            set.insert(id.clone(), rights.clone());
        }
        previous = set.keys().cloned().collect();
        // As if a second had passed: open sessions re-read the ACL file (module docs).
        std::fs::File::options()
            .write(true)
            .open(&acl_file)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000 + round as u64))
            .unwrap();

        // What the mirror would hold: the folder's GETACL.
        let listed = get_acl(&mut admin).await;
        let acl: Vec<AclEntry> = listed
            .iter()
            .map(|(id, r)| AclEntry::from_server(id.as_str(), r))
            .collect();
        let shown = listed
            .iter()
            .map(|(i, r)| format!("{i} {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (id, rights) in &set {
            if id == "owner" {
                continue; // listed under the reader's name (module docs of flagpost_domain::acl)
            }
            let got = listed.iter().find(|(i, _)| i == id).map(|(_, r)| r);
            assert_eq!(
                got.map(|r| Rights::from_server(r)),
                Some(Rights::from_server(rights)),
                "round {round}: SETACL {id} {rights} not listed as such in GETACL: {shown} (seed {seed})"
            );
        }

        let answers = futures::future::join_all(
            sessions
                .iter_mut()
                .map(|(user, session)| async move { (*user, my_rights(session).await) }),
        )
        .await;
        for (user, mut answer) in answers {
            let model = dovecot_rights_with(&acl, user, &context);
            let rfc = rfc4314_rights_with(&acl, user, &context);
            let effective = effective_rights_with(&acl, user, &context);
            let resolvable = user != OWNER
                && acl
                    .iter()
                    .all(|e| e.parsed().applies_to(user, &context) != Applies::Maybe);
            let plausible = |a: Answer| {
                if resolvable {
                    a.equals(model)
                } else {
                    a.allows(effective)
                }
            };
            if !plausible(answer) {
                // Ask again in a fresh session, in case an open one answered from its cache.
                let mut fresh = dovecot.client(user).await.unwrap();
                let again = my_rights(&mut fresh).await;
                fresh.logout().await;
                if again != answer {
                    tally.stale_answers += 1;
                    answer = again;
                }
            }
            if answer == Answer::NoneOrPost {
                tally.ambiguous_answers += 1;
            }
            tally.pairs += 1;
            let describe = |what: &str| {
                format!(
                    "round {round}, seed {seed}: {what}\n  ACL: {shown}\n  user {user}: MYRIGHTS {answer}, \
                     computed {effective:?} (Dovecot rule {model:?}, RFC 4314 rule {rfc:?})"
                )
            };
            if !answer.allows(effective) {
                failures.push(describe("computed rights exceed MYRIGHTS"));
                continue;
            }
            if user == OWNER {
                tally.owner_checks += 1;
                tally.owner_equal += answer.equals(effective) as usize;
                continue;
            }
            if !resolvable {
                tally.unresolvable_pairs += 1;
                tally.unresolvable_equal += answer.equals(effective) as usize;
                continue;
            }
            tally.resolvable_pairs += 1;
            if answer.equals(model) {
                tally.dovecot_rule_equal += 1;
            } else {
                failures.push(describe("Dovecot's rule differs from MYRIGHTS"));
                continue;
            }
            if answer.equals(effective) {
                tally.effective_equal += 1;
            } else if effective == intersect(model, rfc) {
                tally.rfc_stricter += 1;
            } else {
                failures.push(describe("effective rights differ from MYRIGHTS"));
            }
        }
    }
    println!(
        "{rounds} random ACLs in {:?} (seed {seed}): {tally:#?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches (seed {seed}, FLAGPOST_RIGHTS_SEED={seed} replays):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(tally.resolvable_pairs >= rounds * 3, "{tally:?}");
}

fn intersect(a: Rights, b: Rights) -> Rights {
    Right::ALL
        .into_iter()
        .filter(|r| a.contains(*r) && b.contains(*r))
        .fold(Rights::NONE, Rights::with)
}

/// Dovecot 2.3 lists an `owner` entry under the *reader's* name when the reader has no entry
/// of its own: a mirror that trusted it would grant the service account the owner's rights.
/// [`AclContext::reader`] makes such an entry "maybe", which keeps Flagpost within MYRIGHTS.
#[tokio::test]
async fn getacl_lists_the_owner_entry_under_the_readers_name() {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .set_acl(OWNER, FOLDER, "authenticated", "lra")
        .await
        .unwrap();
    dovecot
        .set_acl(OWNER, FOLDER, "owner", "lrswa")
        .await
        .unwrap();
    let mut admin = dovecot.client(OWNER).await.unwrap();
    admin
        .command_ok(&format!(
            "DELETEACL {} {}",
            quote(FOLDER).unwrap(),
            quote(SERVICE_USER).unwrap()
        ))
        .await
        .unwrap();

    let mut service = dovecot.client(SERVICE_USER).await.unwrap();
    let r = service
        .command_ok(&format!("GETACL {}", quote(SHARED).unwrap()))
        .await
        .unwrap();
    let words = imap_words(r.lines_of("ACL").next().unwrap());
    let acl: Vec<AclEntry> = words[1..]
        .chunks(2)
        .map(|c| AclEntry::from_server(c[0].as_str(), &c[1]))
        .collect();
    assert!(
        acl.iter()
            .any(|e| e.identifier == SERVICE_USER && e.rights.contains(Right::Seen)),
        "expected the owner's entry under {SERVICE_USER}'s name: {acl:?}"
    );
    let answer = my_rights(&mut service).await;
    assert_eq!(answer, Answer::Rights(Rights::from_server("lra")));

    let naive = effective_rights_with(&acl, SERVICE_USER, &AclContext::default());
    assert!(!answer.allows(naive), "{naive:?} vs {answer}");
    let context = AclContext {
        owner: Some(OWNER),
        reader: Some(SERVICE_USER),
        dialect: flagpost_domain::acl::AclDialect::Dovecot,
    };
    let safe = effective_rights_with(&acl, SERVICE_USER, &context);
    assert!(answer.equals(safe), "{safe:?} vs {answer}");
}

/// The rights `GET /folders` shows the caller on the shared folder, once it is listed.
async fn listed_rights(api: &flagpost_e2e::http::Api, token: &str, serve: &crate::Serve) -> String {
    flagpost_e2e::eventually(
        Duration::from_secs(15),
        "the folder listed",
        || async move {
            let r = api.get("/api/v1/folders", token).await?;
            Ok(r.json["folders"].as_array().and_then(|fs| {
                fs.iter()
                    .find(|f| f["imap_name"] == SHARED)
                    .and_then(|f| f["my_rights"].as_str().map(str::to_owned))
            }))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap()
}

/// MYRIGHTS on the shared folder for `login`, in a session of its own.
async fn my_rights_as(dovecot: &Dovecot, login: &str, password: &str) -> Answer {
    let mut c =
        flagpost_harness::ImapClient::connect_tls(dovecot.imaps_port(), dovecot.certificates())
            .await
            .unwrap();
    c.login(login, password).await.unwrap();
    let answer = my_rights(&mut c).await;
    c.logout().await;
    answer
}

/// The usual set-up of the contract's minimal service account: an admin granted it `l r a` in
/// an entry of its own, and staff have their own entries. That entry is the service account's
/// (its rights are exactly its MYRIGHTS), not the owner's listed under its name, so it does not
/// cap anyone else: each user's `my_rights` in `GET /folders` is what MYRIGHTS tells that user.
/// `carol` has no entry and gets `l r` from `authenticated`, which Dovecot (recognised by its
/// `ID`) reads as every logged-in user.
#[tokio::test]
async fn the_service_accounts_own_entry_does_not_cap_other_users() {
    let dovecot = support_fixture().await.unwrap();
    for (user, pw, rights) in [("alice", "alice-pw", "lrswi"), ("bob", "bob-pw", "lr")] {
        dovecot.add_user_ready(user, pw).await.unwrap();
        dovecot.set_acl(OWNER, FOLDER, user, rights).await.unwrap();
    }
    dovecot.add_user_ready("carol", "carol-pw").await.unwrap();
    dovecot
        .set_acl(OWNER, FOLDER, "authenticated", "lr")
        .await
        .unwrap();
    let db = flagpost_harness::TestDatabase::create().await.unwrap();
    let serve = crate::Serve::start(&flagpost_e2e::flagpost_env(&dovecot, &db))
        .await
        .unwrap();
    let api = flagpost_e2e::http::Api::new(serve.addr);
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        let mut c = client_eventually(&dovecot, user).await;
        let Answer::Rights(server) = my_rights(&mut c).await else {
            panic!("{user} has rights on {SHARED}");
        };
        let token = api.login(user, pw).await.unwrap();
        let shown = listed_rights(&api, &token, &serve).await;
        assert_eq!(
            Rights::from_server(&shown),
            server,
            "{user}: my_rights {shown} vs MYRIGHTS"
        );
    }
    assert!(serve.stop().await.unwrap().success());
}

/// A Dovecot that knows every login by its lower-cased local part (`auth_username_format =
/// %Ln`: the login `Alice@Example.com` is the user `alice`), with `acl` on the shared folder,
/// and `flagpost serve` watching that folder.
async fn domain_login_fixture(
    acl: &[(&str, &str)],
) -> (Dovecot, flagpost_harness::TestDatabase, crate::Serve) {
    let dovecot = Dovecot::start_with(flagpost_harness::dovecot::DovecotOptions {
        extra_config: "auth_username_format = %Ln\n".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for (user, pw) in [
        (OWNER, "support-pw"),
        (SERVICE_USER, "service-pw"),
        ("alice", "alice-pw"),
    ] {
        dovecot.add_user_ready(user, pw).await.unwrap();
    }
    dovecot.create_folder(OWNER, FOLDER).await.unwrap();
    for (id, rights) in acl {
        dovecot.set_acl(OWNER, FOLDER, id, rights).await.unwrap();
    }
    let db = flagpost_harness::TestDatabase::create().await.unwrap();
    let mut env = flagpost_e2e::flagpost_env(&dovecot, &db);
    env.retain(|(k, _)| *k != "FLAGPOST_FOLDERS");
    env.push(("FLAGPOST_FOLDERS", SHARED.to_owned()));
    let serve = crate::Serve::start(&env).await.unwrap();
    (dovecot, db, serve)
}

/// A server may know a login under another name: with `auth_username_format = %Ln`, Dovecot
/// turns the login `alice@example.com` into the user `alice`, so `-alice r` takes `r` away from
/// whoever logs in as `alice@example.com`. Whether or not Flagpost finds out at sign-in that
/// `alice` is that login's name, it must not show the folder `anyone lr` would otherwise open:
/// the server's MYRIGHTS for the login is `l`, so the API answers 404.
#[tokio::test]
async fn a_negative_entry_under_the_servers_form_of_the_login_still_removes() {
    let (dovecot, _db, serve) =
        domain_login_fixture(&[(SERVICE_USER, "lra"), ("anyone", "lr"), ("-alice", "r")]).await;
    let login = "alice@example.com";
    assert_eq!(
        my_rights_as(&dovecot, login, "alice-pw").await,
        Answer::Rights(Rights::NONE.with(Right::Lookup)),
        "the fixture: Dovecot applies -alice to {login}"
    );
    let api = flagpost_e2e::http::Api::new(serve.addr);
    // The service account (it holds `a`) sees the folder and, once mirrored, its ACL.
    let service = api.login(SERVICE_USER, "service-pw").await.unwrap();
    let id = flagpost_e2e::eventually(Duration::from_secs(15), "the ACL mirrored", || {
        let (api, service) = (&api, &service);
        async move {
            let r = api.get("/api/v1/folders", service).await?;
            let Some(id) = r.json["folders"].as_array().and_then(|fs| {
                fs.iter()
                    .find(|f| f["imap_name"] == SHARED)
                    .and_then(|f| f["id"].as_str().map(str::to_owned))
            }) else {
                return Ok(None);
            };
            let acl = api
                .get(&format!("/api/v1/folders/{id}/acl"), service)
                .await?;
            Ok(acl.text.contains("-alice").then_some(id))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    let alice = api.login(login, "alice-pw").await.unwrap();
    let r = api.get("/api/v1/folders", &alice).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.text.contains(SHARED),
        "{login} must not see a folder it cannot read: {}",
        r.text
    );
    let r = api
        .get(&format!("/api/v1/folders/{id}"), &alice)
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(serve.stop().await.unwrap().success());
}

/// The other side of the same layout: with `auth_username_format = %Ln` the ACL entry `alice`
/// is what gives `alice@example.com` (or `Alice@Example.COM`) its rights. Flagpost learns the
/// server's name for the login from the user's own INBOX ACL at sign-in, so the API shows the
/// folder with exactly the rights MYRIGHTS gives that login.
#[tokio::test]
async fn a_login_in_another_form_gets_the_rights_of_the_servers_name_for_it() {
    let (dovecot, _db, serve) =
        domain_login_fixture(&[(SERVICE_USER, "lra"), ("alice", "lrsw")]).await;
    let api = flagpost_e2e::http::Api::new(serve.addr);
    for login in ["alice@example.com", "Alice@Example.COM"] {
        let Answer::Rights(server) = my_rights_as(&dovecot, login, "alice-pw").await else {
            panic!("{login} has rights on {SHARED}");
        };
        let token = api.login(login, "alice-pw").await.unwrap();
        let shown = listed_rights(&api, &token, &serve).await;
        assert_eq!(
            Rights::from_server(&shown),
            server,
            "{login}: my_rights {shown} vs MYRIGHTS"
        );
        assert_eq!(server, Rights::from_server("lrsw"));
        let me = api.get("/api/v1/me", &token).await.unwrap();
        assert_eq!(
            me.json["username"], login,
            "the caller keeps its login name"
        );
    }
    assert!(serve.stop().await.unwrap().success());
}
