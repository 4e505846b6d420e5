//! A session inherited by a forked child works there: fork while another thread of the
//! parent is inside a forced refresh (so the session's lock is held at fork time and its
//! refresher and connection pool belong to threads the child does not have).
//!
//! One test in its own binary: `fork()` copies only the calling thread, so no other test
//! may be running threads of its own in this process image when it forks.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tradeauth::{AuthEvent, Method, Session};
use tradeauth_sim::{Fault, LifetimeUpdate, Venue};

/// How often the `on_each_process` hook ran in this process (a fork copies the count).
static HOOK_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Writes a line to stderr from the child (see `support::say_in_child`).
fn say(text: &str) {
    support::say_in_child("fork", text);
}

/// Everything the child checks; the exit code says which step failed.
fn child(session: Session, fresh: impl FnOnce() -> Session) -> i32 {
    let Ok(runtime) = support::runtime() else {
        return 10;
    };
    runtime.block_on(async move {
        let mut events = session.subscribe();
        // 1. The hot path serves the credential inherited from the parent, still valid.
        if session.current().is_none() {
            say("the inherited credential is not served");
            return 11;
        }
        // 2. An authenticated request goes out from the child (its own pool and lock).
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            session
                .request(Method::Get, "/api/v3/market/venue/list")
                .send(),
        )
        .await;
        match answer {
            Ok(Ok(response)) if response.status == 200 => {}
            Ok(Ok(response)) => {
                say(&format!("request answered {}", response.status));
                return 12;
            }
            Ok(Err(error)) => {
                say(&format!("request failed: {error}"));
                return 12;
            }
            Err(_) => {
                say("request hung (a lock held at fork time?)");
                return 13;
            }
        }
        // The `on_each_process` hook ran again here, once, when the child rebuilt.
        let runs = HOOK_RUNS.load(Ordering::SeqCst);
        if runs != 2 {
            say(&format!(
                "the process hook ran {runs} times (want 2: parent, child)"
            ));
            return 17;
        }
        // 3. A session made in the child authenticates.
        let made_here = fresh();
        match tokio::time::timeout(Duration::from_secs(10), made_here.credential()).await {
            Ok(Ok(_)) => {}
            _ => {
                say("a new session in the child did not authenticate");
                return 14;
            }
        }
        // 4. Background renewal runs in the child: its own login before the inherited
        //    credential expires, then a refresh of its own token.
        let renewed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match events.recv().await {
                    Ok(AuthEvent::Refreshed) => return true,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return false,
                }
            }
        })
        .await;
        if renewed != Ok(true) {
            say("no background refresh in the child");
            return 15;
        }
        if session.current().is_none() {
            say("no credential after the child's refresh");
            return 16;
        }
        0
    })
}

/// The second child: only reads the hot path, from a plain thread (no runtime of its
/// own). That read rebuilds the session's parts, so its own background renewal replaces
/// the inherited token before that expires.
fn hot_path_reader(session: Session) -> i32 {
    let Some(inherited) = session.current() else {
        say("hot path: the inherited credential is not served");
        return 20;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(now) = session.current()
            && now.header_value() != inherited.header_value()
        {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    say("hot path: no renewal of the child's own in 10 s (the read did not rebuild)");
    21
}

#[test]
fn a_session_inherited_across_fork_mid_refresh_keeps_working_in_both_processes() {
    let runtime = support::runtime().expect("runtime");
    let sim = runtime.block_on(support::sim());
    // Short lifetimes so renewals happen within the test: refreshed ~3 s after each login.
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(4))
        .expect("ttl");
    let options = support::options(&sim, Venue::Cadenza);
    let session = runtime.block_on(async { support::cadenza(&sim, options.clone()) });
    runtime
        .block_on(session.credential())
        .expect("the parent logs in");
    // A hook (what the Python binding forwards its logs with) runs now, and again in the
    // child once it has rebuilt its parts there.
    session.on_each_process(|s| {
        assert_eq!(s.venue(), tradeauth::Venue::Cadenza);
        HOOK_RUNS.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(HOOK_RUNS.load(Ordering::SeqCst), 1, "the hook runs at once");
    // The parent's forced refresh hangs 1.5 s at the venue, holding the session's lock.
    sim.arm_fault(Fault::delay(Venue::Cadenza, 1_500).on_path("/api/v3/auth/token/refresh"));
    let refreshing = {
        let session = session.clone();
        let handle = runtime.handle().clone();
        std::thread::spawn(move || handle.block_on(session.refresh()))
    };
    std::thread::sleep(Duration::from_millis(300));

    let connections_before = sim.venue_stats(Venue::Cadenza).connections;
    let child_session = session.clone();
    let fresh_options = options.clone();
    let pid =
        support::fork_child(|| child(child_session, || support::cadenza(&sim, fresh_options)));

    // The parent: its forced refresh finishes, and it keeps working.
    let refreshed = refreshing.join().expect("refresh thread");
    assert!(
        refreshed.is_ok(),
        "the parent's refresh failed: {refreshed:?}"
    );
    let response = runtime
        .block_on(
            session
                .request(Method::Get, "/api/v3/market/venue/list")
                .send(),
        )
        .expect("the parent's request");
    assert_eq!(response.status, 200);

    support::assert_child_passed(pid);
    // The child's sessions (the inherited one, rebuilt, and the one made there) shared
    // the child's own pool: one connection for both (the parent's stays its own).
    let child_connections = sim.venue_stats(Venue::Cadenza).connections - connections_before;
    assert_eq!(
        child_connections, 1,
        "the child's two sessions opened {child_connections} connections"
    );
    assert_eq!(
        HOOK_RUNS.load(Ordering::SeqCst),
        1,
        "the parent never rebuilds: its hook ran once"
    );
    let reader = session.clone();
    let pid = support::fork_child(move || hot_path_reader(reader));
    support::assert_child_passed(pid);
    // The venue saw the child's own login (the inherited refresh token was not reused).
    let stats = sim.stats().cadenza;
    assert!(
        stats.logins >= 3,
        "parent login, child login, child's new session: {stats:?}"
    );
    drop(session);
    drop(sim);
}
