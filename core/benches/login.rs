//! Login round trips against the in-process simulator over real TLS on 127.0.0.1 (issue
//! #7): Cadenza (one POST) and Cascade (challenge GET, EIP-191 sign, login POST). Each
//! iteration wipes the session's credential locally (`logout`, no request) and logs in
//! again on the session's kept-alive connection, so the figure is the login itself, not
//! the TCP/TLS handshake.
//!
//! Run: `cargo bench -p tradeauth --bench login`.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tradeauth::{CadenzaConfig, CascadeConfig, Session};
use tradeauth_sim::{Sim, SimConfig, Venue, demo};

fn login(c: &mut Criterion) {
    let rt = common::runtime(2);
    let sim = rt
        .block_on(Sim::start(SimConfig::default()))
        .expect("simulator");
    let options = |venue| {
        // Each iteration logs in on purpose; no background task competing for the lock.
        common::options(&sim, venue).background_refresh(false)
    };
    let (cadenza, cascade) = rt.block_on(async {
        let cadenza = Session::cadenza(
            CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
            options(Venue::Cadenza),
        )
        .expect("cadenza session");
        let cascade = Session::cascade(
            CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY),
            options(Venue::Cascade),
        )
        .expect("cascade session");
        // Warm the connection pools (TCP + TLS handshakes happen here, not in the loop).
        cadenza.credential().await.expect("cadenza login");
        cascade.credential().await.expect("cascade login");
        (cadenza, cascade)
    });

    let mut g = c.benchmark_group("login_round_trip");
    g.measurement_time(Duration::from_secs(5));
    for (name, session) in [("cadenza", &cadenza), ("cascade", &cascade)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                session.logout().await;
                session.credential().await.expect("login")
            })
        });
    }
    g.finish();
    let stats = sim.stats();
    assert!(stats.cadenza.logins > 0 && stats.cascade.logins > 0);
}

criterion_group!(benches, login);
criterion_main!(benches);
