//! Accounts (issue #16): a registered name belongs to its owner. Both servers, real sockets:
//! logins over TLS and over loopback plaintext, one answer for a wrong password and an
//! unknown user, guests refused by default and let in with `guests`, and a server without
//! accounts that ignores a login. (A password over plaintext from a non-loopback address
//! cannot be made here: host/src/accounts.rs tests it with a synthetic address.)

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tidings_core::wire::Secret;
use tidings_e2e::smol_client::*;
use tidings_e2e::{
    assert_refused, for_both_servers, ClientConfig, ClientEvent, Error, ErrorCode, ServerConfig,
    ServerEvent, ServerKind, TestServer,
};
use tidings_host::accounts::{Accounts, Policy, AUTH_FAILED, TOKEN_LIFETIME};
use tidings_host::tls::{ClientTls, SelfSigned, TlsClientConfig, TlsServerConfig};

for_both_servers! {
    native: [
        registered_users_log_in_over_tls_and_chat,
        a_wrong_password_and_an_unknown_user_get_the_same_answer,
        a_guest_taking_a_registered_name_is_told_to_log_in,
        guests_are_refused_by_default_and_let_in_with_guests,
        a_password_over_loopback_plaintext_is_taken,
        the_blocking_client_logs_in_too,
        a_server_without_accounts_ignores_a_login,
        a_logged_in_name_is_still_taken_by_its_first_owner,
        repeated_failures_make_the_next_try_wait,
        a_session_token_logs_in_again_without_the_password,
        new_accounts_close_removed_users_and_guests_on_registered_names,
        an_expired_token_is_refused_and_the_password_still_works,
        a_new_password_ends_the_sessions_and_tokens_of_the_old_one,
    ],
}

/// alice (password `alice-pw`) and bob (`bob-pw`), hashed once for the whole suite.
fn accounts() -> Arc<Accounts> {
    static ACCOUNTS: OnceLock<Arc<Accounts>> = OnceLock::new();
    ACCOUNTS
        .get_or_init(|| {
            let mut a = Accounts::default();
            a.set("alice", "alice-pw").unwrap();
            a.set("bob", "bob-pw").unwrap();
            Arc::new(a)
        })
        .clone()
}

fn with_accounts(guests: bool) -> ServerConfig {
    ServerConfig {
        accounts: Some(Policy {
            accounts: accounts(),
            guests,
            token_lifetime: TOKEN_LIFETIME,
            backoff: Default::default(),
        }),
        ..ServerConfig::default()
    }
}

fn password(p: &str) -> ClientConfig {
    ClientConfig {
        password: Some(Secret::new(p)),
        ..ClientConfig::default()
    }
}

/// The async client connected as `name` with `config`.
async fn join(
    server: &TestServer,
    name: &str,
    config: ClientConfig,
) -> Result<tidings_smol::Client, Error> {
    tidings_smol::Client::connect(server.addr, name, config).await
}

/// Connects `name` with `config` and leaves; the refusal if refused.
fn try_connect(server: &TestServer, name: &str, config: ClientConfig) -> Result<(), Error> {
    smol::block_on(async {
        join(server, name, config).await?.close().await;
        Ok(())
    })
}

fn refusal(server: &TestServer, name: &str, config: ClientConfig) -> (ErrorCode, String) {
    match try_connect(server, name, config) {
        Err(Error::Refused { code, reason }) => (code, reason),
        other => panic!("{name}: expected a refusal, got {other:?}"),
    }
}

fn registered_users_log_in_over_tls_and_chat(kind: ServerKind) {
    let certs = SelfSigned::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let tls =
        TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let server = TestServer::start(
        kind,
        ServerConfig {
            tls: Some(tls),
            ..with_accounts(false)
        },
    );
    let over_tls = |p: &str| ClientConfig {
        tls: Some(ClientTls {
            config: TlsClientConfig::from_ca_pem(certs.ca_pem.as_bytes()).unwrap(),
            server_name: "localhost".into(),
        }),
        ..password(p)
    };
    smol::block_on(async {
        let alice = join(&server, "alice", over_tls("alice-pw")).await.unwrap();
        let bob = join(&server, "BOB", over_tls("bob-pw")).await.unwrap();
        assert_eq!(bob.name(), "BOB", "the name as asked, matched by its key");
        wait_for(&alice, |e| *e == ClientEvent::Joined("BOB".into())).await;
        alice.say_to("bob", "hello, owner of bob").await.unwrap();
        let ev = wait_for(&bob, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Text { ref from, ref text, .. }
                if from == "alice" && text == "hello, owner of bob"),
            "{ev:?}"
        );
        // The wrong password over TLS: auth-failed.
        let err = join(&server, "carol", over_tls("bob-pw"))
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::AuthFailed);
        alice.close().await;
        bob.close().await;
    });
}

fn a_wrong_password_and_an_unknown_user_get_the_same_answer(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(true));
    let wrong = refusal(&server, "alice", password("bob-pw"));
    let unknown = refusal(&server, "nobody", password("alice-pw"));
    assert_eq!(wrong, (ErrorCode::AuthFailed, AUTH_FAILED.to_owned()));
    assert_eq!(
        unknown, wrong,
        "one answer: it does not tell which names exist"
    );
    // The operator hears of it (the first at once; others within a second are counted).
    let ev = server.wait_event(|e| matches!(e, ServerEvent::LoginRefused { .. }));
    assert!(
        matches!(ev, ServerEvent::LoginRefused { ref name, code: ErrorCode::AuthFailed, addr: Some(a), .. }
            if name == "alice" && a.is_loopback()),
        "{ev:?}"
    );
    assert_eq!(server.peer_count(), 0);
}

fn a_guest_taking_a_registered_name_is_told_to_log_in(kind: ServerKind) {
    for guests in [false, true] {
        let server = TestServer::start(kind, with_accounts(guests));
        let (code, reason) = refusal(&server, "Alice", ClientConfig::default());
        assert_eq!(code, ErrorCode::AuthRequired);
        assert!(reason.contains("registered"), "{reason}");
    }
}

fn guests_are_refused_by_default_and_let_in_with_guests(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    let (code, reason) = refusal(&server, "guest", ClientConfig::default());
    assert_eq!(code, ErrorCode::AuthRequired, "{reason}");
    drop(server);
    let server = TestServer::start(kind, with_accounts(true));
    smol::block_on(async {
        let guest = connect(server.addr, "guest").await;
        let alice = join(&server, "alice", password("alice-pw")).await.unwrap();
        wait_for(&guest, |e| *e == ClientEvent::Joined("alice".into())).await;
        alice.say("hi guest").await.unwrap();
        wait_for(
            &guest,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "hi guest"),
        )
        .await;
        guest.close().await;
        alice.close().await;
    });
}

fn a_password_over_loopback_plaintext_is_taken(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    try_connect(&server, "alice", password("alice-pw")).unwrap();
    let ev = server.wait_event(|e| matches!(e, ServerEvent::Joined { .. }));
    assert!(matches!(ev, ServerEvent::Joined { ref name, .. } if name == "alice"));
}

fn the_blocking_client_logs_in_too(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    let bob = tidings_std::Client::connect(server.addr, "bob", password("bob-pw")).unwrap();
    assert_eq!(bob.name(), "bob");
    let err = tidings_std::Client::connect(server.addr, "alice", password("nope")).unwrap_err();
    assert_refused(&err, ErrorCode::AuthFailed);
    let err =
        tidings_std::Client::connect(server.addr, "alice", ClientConfig::default()).unwrap_err();
    assert_refused(&err, ErrorCode::AuthRequired);
    bob.say("still here").unwrap();
}

fn a_server_without_accounts_ignores_a_login(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    try_connect(&server, "alice", password("anything")).unwrap();
    try_connect(&server, "zed", ClientConfig::default()).unwrap();
}

fn a_logged_in_name_is_still_taken_by_its_first_owner(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    smol::block_on(async {
        let first = join(&server, "alice", password("alice-pw")).await.unwrap();
        let err = join(&server, "alice", password("alice-pw"))
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::NameTaken);
        first.close().await;
    });
}

fn repeated_failures_make_the_next_try_wait(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    for _ in 0..tidings_host::accounts::FREE_FAILURES + 1 {
        assert_eq!(
            refusal(&server, "alice", password("guess")),
            (ErrorCode::AuthFailed, AUTH_FAILED.to_owned())
        );
    }
    // Within the backoff (a second at least) even the right password is refused, with the
    // same answer; another name from the same address waits too.
    assert_eq!(
        refusal(&server, "alice", password("alice-pw")).0,
        ErrorCode::AuthFailed
    );
    assert_eq!(
        refusal(&server, "bob", password("bob-pw")).0,
        ErrorCode::AuthFailed
    );
    // A guest is not a login: told to log in, as before.
    assert_eq!(
        refusal(&server, "guest", ClientConfig::default()).0,
        ErrorCode::AuthRequired
    );
}

/// The token the server sends right after welcome to a client that logged in.
async fn token_of(client: &tidings_smol::Client) -> Secret {
    match wait_for(client, |e| matches!(e, ClientEvent::Token(_))).await {
        ClientEvent::Token(t) => t,
        _ => unreachable!(),
    }
}

/// Not news of the default room (its members after welcome, someone coming in), which may
/// come between a login and the answer a test waits for.
fn not_room_news(e: &ClientEvent) -> bool {
    !matches!(e, ClientEvent::Joined(_) | ClientEvent::RoomEntered { .. })
}

fn a_session_token_logs_in_again_without_the_password(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(true));
    let other = TestServer::start(kind, with_accounts(true));
    let with_token = |t: &Secret| ClientConfig {
        token: Some(t.clone()),
        ..ClientConfig::default()
    };
    smol::block_on(async {
        let alice = join(&server, "alice", password("alice-pw")).await.unwrap();
        let token = token_of(&alice).await;
        alice.close().await;
        // The token alone, in place of the password (the chat reconnecting).
        let again = join(&server, "ALICE", with_token(&token)).await.unwrap();
        // No new token: a token login keeps the old one's expiry (a token never renews
        // itself), so its next event is not a token.
        again.request_list().await.unwrap();
        let ev = wait_for(&again, not_room_news).await;
        assert!(matches!(ev, ClientEvent::PeerList(_)), "{ev:?}");
        again.close().await;
        // Not for another name, not on another server, not altered.
        for (srv, name, t) in [
            (&server, "bob", token.clone()),
            (&other, "alice", token.clone()),
            (
                &server,
                "alice",
                Secret::new(&format!("{}x", token.expose())),
            ),
        ] {
            let err = join(srv, name, with_token(&t)).await.unwrap_err();
            assert_refused(&err, ErrorCode::AuthFailed);
        }
        // A guest gets no token: its next event is not one.
        let guest = join(&server, "guest", ClientConfig::default())
            .await
            .unwrap();
        guest.request_list().await.unwrap();
        let ev = wait_for(&guest, not_room_news).await;
        assert!(matches!(ev, ClientEvent::PeerList(_)), "{ev:?}");
        guest.close().await;
    });
}

fn an_expired_token_is_refused_and_the_password_still_works(kind: ServerKind) {
    let lifetime = Duration::from_millis(300);
    let mut config = with_accounts(false);
    if let Some(policy) = config.accounts.as_mut() {
        policy.token_lifetime = lifetime;
    }
    let server = TestServer::start(kind, config);
    smol::block_on(async {
        let alice = join(&server, "alice", password("alice-pw")).await.unwrap();
        let token = token_of(&alice).await;
        let issued = Instant::now();
        alice.close().await;
        // Nothing announces an expiry: wait past it.
        smol::Timer::at(issued + lifetime + Duration::from_millis(100)).await;
        let with_token = ClientConfig {
            token: Some(token),
            ..ClientConfig::default()
        };
        let err = join(&server, "alice", with_token).await.unwrap_err();
        assert_refused(&err, ErrorCode::AuthFailed);
        join(&server, "alice", password("alice-pw"))
            .await
            .unwrap()
            .close()
            .await;
    });
}

fn a_new_password_ends_the_sessions_and_tokens_of_the_old_one(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(false));
    smol::block_on(async {
        let alice = join(&server, "alice", password("alice-pw")).await.unwrap();
        let token = token_of(&alice).await;
        let bob = join(&server, "bob", password("bob-pw")).await.unwrap();
        let mut next = Accounts::parse(&accounts().to_text()).unwrap();
        next.set("alice", "new-alice-pw").unwrap();
        assert_eq!(server.set_accounts(next), ["alice"]);
        let ev = wait_for(&alice, |e| matches!(e, ClientEvent::Closed { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Closed { code: ErrorCode::Kicked, ref reason, .. }
                if reason.contains("password of alice was changed")),
            "{ev:?}"
        );
        // The old token and the old password are refused; the new password works.
        let with_token = ClientConfig {
            token: Some(token),
            ..ClientConfig::default()
        };
        let err = join(&server, "alice", with_token).await.unwrap_err();
        assert_refused(&err, ErrorCode::AuthFailed);
        let err = join(&server, "alice", password("alice-pw"))
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::AuthFailed);
        join(&server, "alice", password("new-alice-pw"))
            .await
            .unwrap()
            .close()
            .await;
        bob.close().await;
    });
}

fn new_accounts_close_removed_users_and_guests_on_registered_names(kind: ServerKind) {
    let server = TestServer::start(kind, with_accounts(true));
    smol::block_on(async {
        let alice = join(&server, "alice", password("alice-pw")).await.unwrap();
        let bob = join(&server, "bob", password("bob-pw")).await.unwrap();
        let carol = join(&server, "carol", ClientConfig::default())
            .await
            .unwrap();
        let dave = join(&server, "dave", ClientConfig::default())
            .await
            .unwrap();
        // alice removed, carol registered: bob (still a user) and dave (still a guest) stay.
        let mut next = Accounts::parse(&accounts().to_text()).unwrap();
        next.remove("alice").unwrap();
        next.set("Carol", "carol-pw").unwrap();
        let mut closed = server.set_accounts(next);
        closed.sort();
        assert_eq!(closed, ["alice", "carol"]);
        for (client, why) in [(&alice, "was removed"), (&carol, "is now registered")] {
            let ev = wait_for(client, |e| matches!(e, ClientEvent::Closed { .. })).await;
            assert!(
                matches!(ev, ClientEvent::Closed { code: ErrorCode::Kicked, ref reason, .. }
                    if reason.contains(why)),
                "{ev:?}"
            );
        }
        wait_for(&bob, |e| *e == ClientEvent::Left("carol".into())).await;
        let mut who = server.who();
        who.sort();
        assert_eq!(who, ["bob", "dave"]);
        // The removed user cannot come back; the new one can.
        let err = join(&server, "alice", password("alice-pw"))
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::AuthFailed);
        join(&server, "carol", password("carol-pw"))
            .await
            .unwrap()
            .close()
            .await;
        bob.close().await;
        dave.close().await;
    });
}
