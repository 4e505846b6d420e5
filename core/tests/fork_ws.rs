//! A forked child serves the credential it inherited over a WebSocket too: the auth
//! message carries it without a login, the venue's acceptance keeps it served, and the
//! venue's rejection of it ("Invalid Bearer Token") stops it being served even though the
//! child's own machine never held it; the next auth message then carries a token of the
//! child's own login.
//!
//! One test in its own binary: `fork()` copies only the calling thread, so no other test
//! may be running threads of its own in this process image when it forks.

mod support;

use std::time::Duration;

use tradeauth::{Session, WsAuthReply};
use tradeauth_sim::Venue;

/// Writes a line to stderr from the child (see `support::say_in_child`).
fn say(text: &str) {
    support::say_in_child("fork_ws", text);
}

/// How long one step of the child may take.
const STEP: Duration = Duration::from_secs(10);

/// The token the session serves now, if any.
fn served(session: &Session) -> Option<String> {
    session
        .current()
        .map(|credential| credential.token().to_owned())
}

/// Everything the child checks; the exit code says which step failed.
fn child(session: Session, inherited: &str) -> i32 {
    let Ok(runtime) = support::runtime() else {
        return 10;
    };
    runtime.block_on(async move {
        // 1. The hot path serves the parent's token.
        if served(&session).as_deref() != Some(inherited) {
            say("the inherited credential is not served");
            return 11;
        }
        // 2. The auth message is built from it: no login in the child.
        match tokio::time::timeout(STEP, session.ws_auth_message(1)).await {
            Ok(Ok(message)) if message.contains(inherited) => {}
            Ok(Ok(_)) => {
                say("the auth message does not carry the inherited token");
                return 12;
            }
            _ => {
                say("no auth message from the inherited token");
                return 13;
            }
        }
        // 3. The venue accepts it: it is still served.
        let accepted = r#"{"jsonrpc":"2.0","id":1,"result":{"account":"0x7099"}}"#;
        let reply = tokio::time::timeout(STEP, session.handle_ws_reply(accepted)).await;
        if !matches!(reply, Ok(WsAuthReply::Authenticated { .. })) {
            say(&format!("the acceptance was read as {reply:?}"));
            return 14;
        }
        if served(&session).as_deref() != Some(inherited) {
            say("an accepted inherited token stopped being served");
            return 15;
        }
        // 4. The venue rejects it: it is not served again.
        let rejected =
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"Invalid Bearer Token"}}"#;
        let reply = tokio::time::timeout(STEP, session.handle_ws_reply(rejected)).await;
        if !matches!(reply, Ok(WsAuthReply::Rejected { .. })) {
            say(&format!("the rejection was read as {reply:?}"));
            return 16;
        }
        if served(&session).as_deref() == Some(inherited) {
            say("a rejected inherited token is still served");
            return 17;
        }
        // 5. The next auth message carries a token of the child's own login.
        match tokio::time::timeout(STEP, session.ws_auth_message(3)).await {
            Ok(Ok(message)) if !message.contains(inherited) => {}
            Ok(Ok(_)) => {
                say("the rejected inherited token was sent again");
                return 18;
            }
            _ => {
                say("no auth message after the rejection");
                return 19;
            }
        }
        match served(&session) {
            Some(own) if own != inherited => 0,
            _ => {
                say("the child serves no token of its own");
                20
            }
        }
    })
}

#[test]
fn a_forked_child_serves_its_inherited_token_over_websocket_until_the_venue_rejects_it() {
    let runtime = support::runtime().expect("runtime");
    let sim = runtime.block_on(support::sim());
    let session =
        runtime.block_on(async { support::cascade(&sim, support::options(&sim, Venue::Cascade)) });
    let inherited = runtime
        .block_on(session.credential())
        .expect("the parent logs in")
        .token()
        .to_owned();
    assert_eq!(support::cascade_logins(&sim).1, 1);

    let child_session = session.clone();
    let pid = support::fork_child(|| child(child_session, &inherited));
    support::assert_child_passed(pid);
    // One login in the child, after the rejection, and none before it.
    assert_eq!(support::cascade_logins(&sim).1, 2);
    // The parent's own machine was never told about the child's rejection.
    assert_eq!(served(&session).as_deref(), Some(inherited.as_str()));
    drop(session);
    drop(sim);
}
