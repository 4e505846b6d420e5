//! The process-wide settings (issue #21) set from code: a renewal limit of 3 is what the
//! venue sees, and the runtime's worker count cannot change once it runs. Its own test
//! binary, because the settings are the process's.

mod support;

use tradeauth::runtime::{ProcessConfig, configure, process_config};
use tradeauth::{CadenzaConfig, ErrorKind, Session};
use tradeauth_sim::{CadenzaUser, Fault, Sim, SimConfig, Venue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_renewal_limit_is_what_the_venue_sees() {
    let defaults = process_config().expect("defaults");
    assert_eq!(
        defaults,
        ProcessConfig::default(),
        "no TRADEAUTH_* variable is set here"
    );
    for bad in [0, 4097] {
        let error = configure(ProcessConfig {
            max_concurrent_renewals: bad,
            ..defaults
        })
        .expect_err("out of range");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(
            error.message().contains("max_concurrent_renewals"),
            "{error}"
        );
    }
    assert_eq!(
        process_config().expect("unchanged"),
        defaults,
        "a refused call changes nothing"
    );
    configure(ProcessConfig {
        max_concurrent_renewals: 3,
        ..defaults
    })
    .expect("configured");

    const N: usize = 24;
    let mut config = SimConfig::default();
    config.cadenza.users = (0..N)
        .map(|i| CadenzaUser::new(format!("u{i}@scale.test"), format!("pw-{i}")))
        .collect();
    let sim = Sim::start(config).await.expect("simulator");
    sim.arm_fault(
        Fault::delay(Venue::Cadenza, 40)
            .on_path("/api/v3/auth/login")
            .times(N as u32),
    );
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let config = CadenzaConfig::new(format!("u{i}@scale.test"), format!("pw-{i}"));
            let session =
                Session::cadenza(config, support::options(&sim, Venue::Cadenza)).expect("session");
            tokio::spawn(async move { session.credential().await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("login");
    }
    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, N as u64);
    assert_eq!(
        stats.max_in_flight, 3,
        "the configured limit, reached and never passed"
    );
}

#[test]
fn the_worker_count_is_fixed_once_the_runtime_runs() {
    let running = tradeauth::runtime::shared().expect("runtime");
    let config = process_config().expect("config");
    let error = configure(ProcessConfig {
        worker_threads: config.worker_threads + 1,
        ..config
    })
    .expect_err("the runtime already runs");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("worker_threads"), "{error}");
    // The same count is fine (nothing changes).
    configure(config).expect("same count");
    assert_eq!(running.metrics().num_workers(), config.worker_threads);
}

#[test]
fn configure_some_changes_only_the_settings_given() {
    let before = process_config().expect("config");
    // Nothing given: nothing changes, and the answer is what is in force.
    assert_eq!(
        tradeauth::runtime::configure_some(None, None).expect("keep"),
        before
    );
    // A bad value for one setting changes neither.
    let error = tradeauth::runtime::configure_some(None, Some(0)).expect_err("0 is refused");
    assert!(
        error.message().contains("max_concurrent_renewals"),
        "{error}"
    );
    assert_eq!(process_config().expect("config"), before);
    // One setting given: the other is kept.
    let after = tradeauth::runtime::configure_some(None, Some(before.max_concurrent_renewals))
        .expect("same limit");
    assert_eq!(after.worker_threads, before.worker_threads);
}
