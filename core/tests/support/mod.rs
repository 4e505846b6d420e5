//! Shared by the session tests: an in-process simulator and options that trust its CA.

#![allow(dead_code)]

use std::time::Duration;

use tradeauth::{Options, Session};
use tradeauth_sim::{LifetimeUpdate, Sim, SimConfig, Venue, demo};

/// A fresh simulator with the demo accounts.
pub async fn sim() -> Sim {
    Sim::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// Options pointing at one simulated venue, trusting the simulator's CA, with quick
/// retries so fault tests stay fast.
pub fn options(sim: &Sim, venue: Venue) -> Options {
    Options::new()
        .base_url(sim.urls().venue(venue))
        .add_root_pem(sim.ca_pem())
        .retry_delays(Duration::from_millis(5), Duration::from_millis(50))
        .request_timeout(Duration::from_secs(5))
}

/// A Cadenza session for the demo user.
pub fn cadenza(_sim: &Sim, options: Options) -> Session {
    let config = tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD);
    Session::cadenza(config, options).expect("valid cadenza session")
}

/// A Partner session for the demo client.
pub fn partner(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::PartnerConfig::new(demo::PARTNER_CLIENT_ID, demo::PARTNER_SECRET_KEY);
    Session::partner(config, options).expect("valid partner session")
}

/// A Cascade session signing with the demo delegate key.
pub fn cascade(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY);
    Session::cascade(config, options).expect("valid cascade session")
}

/// An Exchange trader session with the demo key.
pub fn exchange(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::ExchangeConfig::trader(demo::EXCHANGE_API_KEY);
    Session::exchange(config, options).expect("valid exchange session")
}

/// A session for `venue`'s demo account (see the functions above).
pub fn session(sim: &Sim, venue: Venue, options: Options) -> Session {
    match venue {
        Venue::Cadenza => cadenza(sim, options),
        Venue::Partner => partner(sim, options),
        Venue::Cascade => cascade(sim, options),
        Venue::Exchange => exchange(sim, options),
    }
}

/// A fresh simulator and a session for `venue`'s demo account on it, with the options
/// above as they are (background refresh on).
pub async fn with_defaults(venue: Venue) -> (Sim, Session) {
    let sim = sim().await;
    let session = session(&sim, venue, options(&sim, venue));
    (sim, session)
}

/// A fresh simulator and a session for `venue`'s demo account on it that renews only
/// when used or asked to (no background refresh).
pub async fn on_demand(venue: Venue) -> (Sim, Session) {
    let sim = sim().await;
    let session = on_demand_on(&sim, venue);
    (sim, session)
}

/// The same on a simulator already set up (faults armed, lifetimes changed).
pub fn on_demand_on(sim: &Sim, venue: Venue) -> Session {
    session(sim, venue, options(sim, venue).background_refresh(false))
}

/// The simulator's Cadenza counts so far: (logins, refreshes).
pub fn cadenza_renewals(sim: &Sim) -> (u64, u64) {
    let stats = sim.stats().cadenza;
    (stats.logins, stats.refreshes)
}

/// The simulator's Cascade counts so far: (challenges, logins).
pub fn cascade_logins(sim: &Sim) -> (u64, u64) {
    let stats = sim.stats().cascade;
    (stats.challenges, stats.logins)
}

/// `on_demand_on(sim, venue)` after it logged in (`what` names the login if it fails).
pub async fn logged_in_on(sim: &Sim, venue: Venue, what: &str) -> Session {
    let session = on_demand_on(sim, venue);
    session.credential().await.expect(what);
    session
}

/// `on_demand(venue)` logged in, and then the venue revoked `what` of what it issued.
pub async fn revoked_after_login(venue: Venue, what: tradeauth_sim::Revoke) -> (Sim, Session) {
    let sim = sim().await;
    let session = logged_in_on(&sim, venue, "login").await;
    sim.revoke(venue, what).expect("revoked");
    (sim, session)
}

/// Waits (bounded) for the first event matching `pred`; events, not sleeps, say when.
pub async fn wait_for_event(
    events: &mut tokio::sync::broadcast::Receiver<tradeauth::AuthEvent>,
    within: Duration,
    pred: impl Fn(&tradeauth::AuthEvent) -> bool,
) -> tradeauth::AuthEvent {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("event arrived in time")
}

/// Waits (bounded) for the first event equal to `wanted`.
pub async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<tradeauth::AuthEvent>,
    within: Duration,
    wanted: tradeauth::AuthEvent,
) {
    wait_for_event(events, within, |e| *e == wanted).await;
}

/// A fresh simulator whose venue issues tokens as `lifetime` says, and a session for
/// that venue's demo account on it (background refresh on).
pub async fn renewing(lifetime: LifetimeUpdate) -> (Sim, Session) {
    let sim = sim().await;
    let venue = lifetime.venue;
    sim.set_lifetimes(lifetime).expect("lifetimes");
    let session = session(&sim, venue, options(&sim, venue));
    (sim, session)
}

/// The session's events from now on, and its first token (a login).
pub async fn subscribe_and_log_in(
    session: &Session,
) -> (
    tokio::sync::broadcast::Receiver<tradeauth::AuthEvent>,
    std::sync::Arc<tradeauth::Credential>,
) {
    let events = session.subscribe();
    let first = session.credential().await.expect("login");
    (events, first)
}

/// `callers` tasks started at once, each running `call` on its own clone of `session`;
/// their results, in the order they were started.
pub async fn concurrently<T, Fut>(
    session: &Session,
    callers: usize,
    call: impl Fn(Session) -> Fut,
) -> Vec<T>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..callers)
        .map(|_| tokio::spawn(call(session.clone())))
        .collect();
    let mut results = Vec::with_capacity(callers);
    for task in tasks {
        results.push(task.await.expect("task ran"));
    }
    results
}

/// `callers` concurrent `credential()` calls on `session`.
pub async fn credentials_at_once(
    session: &Session,
    callers: usize,
) -> Vec<tradeauth::Result<std::sync::Arc<tradeauth::Credential>>> {
    concurrently(session, callers, |s| async move { s.credential().await }).await
}

/// How many distinct credentials `callers` concurrent callers got (each got one).
pub async fn distinct_credentials(session: &Session, callers: usize) -> usize {
    let mut values = std::collections::HashSet::new();
    for credential in credentials_at_once(session, callers).await {
        let credential = credential.expect("credential");
        values.insert(credential.header_value().to_owned());
    }
    values.len()
}

/// The session's token, obtained (logged in) if need be.
pub async fn token(session: &Session) -> String {
    session
        .credential()
        .await
        .expect("login")
        .token()
        .to_owned()
}

/// `GET path` on a session; a transport or auth failure fails the test, naming the path.
pub async fn get(session: &Session, path: &str) -> tradeauth::HttpResponse {
    session
        .request(tradeauth::Method::Get, path)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Writes `fork child (<test>): <text>` to stderr without Rust's stderr lock, which a
/// parent thread may have held at fork time.
pub fn say_in_child(test: &str, text: &str) {
    let line = format!("fork child ({test}): {text}\n");
    // SAFETY: writes a buffer we own to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Forks. The child runs `body` under a 40 s watchdog (a child stuck on a lock held at
/// fork time must not hang the test) and ends with `_exit(code)`, running none of the
/// parent's destructors; the parent gets the child's pid (`body` is dropped there).
pub fn fork_child(body: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `body` (which must build its own runtime) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: arms SIGALRM (default action: terminate) for this process only.
        unsafe { libc::alarm(40) };
        let code = body();
        // SAFETY: ends the child without running the parent's destructors or atexit.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for a child made by [`fork_child`]; fails the test unless it exited with 0 (any
/// other code names the step that failed; the child's stderr line says which).
pub fn assert_child_passed(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for a child of this process.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit normally (status {status:#x}; SIGALRM = it hung)"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child failed a step (see its stderr line)"
    );
}

/// A two-worker runtime, for tests that drive sessions from plain threads (and for a
/// forked child, which must build its own: the parent's workers are not in it).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
