//! The unit tests' demo venue (see `machine/demo.rs`): a constructor is all the driver
//! needs from a new venue, and the tests below drive it over real TLS.

use super::{Options, Session};
use crate::error::Result;
use crate::machine::demo::DemoMachine;

impl Session {
    /// A demo-venue session presenting `key`; the base URL is required (no default).
    pub(crate) fn demo(key: &str, options: Options) -> Result<Self> {
        let key = key.to_owned();
        Self::from_machine(move || DemoMachine::new(&key), None, options)
    }
}

#[cfg(test)]
mod tests {
    use tradeauth_sim::{Sim, SimConfig, Venue as SimVenue, demo};

    use super::*;
    use crate::error::ErrorKind;
    use crate::http::Method;
    use crate::machine::Venue;

    async fn options() -> (Sim, Options) {
        let sim = Sim::start(SimConfig::default()).await.expect("simulator");
        let options = Options::new()
            .base_url(sim.urls().venue(SimVenue::Exchange))
            .add_root_pem(sim.ca_pem());
        (sim, options)
    }

    /// `request` within 30 s: a driver that resends forever fails the test rather than
    /// hanging the unit tests (and every test after them).
    async fn bounded<T>(request: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(30), request)
            .await
            .expect("the request finished within 30 s (sent once, not resent forever)")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_driver_drives_a_venue_it_was_never_told_about() {
        let (_sim, options) = options().await;
        let session = Session::demo(demo::EXCHANGE_API_KEY, options).expect("session");
        assert_eq!(session.venue(), Venue::Demo);
        assert!(!session.capabilities().renewable);
        let answer = bounded(session.request(Method::Get, "/api/v1/positions").send())
            .await
            .expect("request");
        assert_eq!(
            answer.status, 200,
            "the venue accepted the demo machine's key"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_key_stops_the_demo_venue_as_its_machine_says() {
        let (_sim, options) = options().await;
        let session =
            Session::demo("exch_00000000000000000000000000000000", options).expect("session");
        let answer = bounded(session.request(Method::Get, "/api/v1/positions").send())
            .await
            .expect("an answer");
        // Not renewable (its capabilities say so): the driver hands the 401 back
        // rather than retrying the same key.
        assert_eq!(answer.status, 401);
        let key = session.credential().await.expect("the key, until reported");
        session.invalidate(&key).await;
        let error = session
            .credential()
            .await
            .expect_err("no credential after a 401");
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert_eq!(error.message(), "the demo venue refused the key");
    }

    #[test]
    fn a_machine_that_cannot_be_built_fails_the_constructor() {
        let error = Session::demo("", Options::new().base_url("https://127.0.0.1:1"))
            .expect_err("an empty key");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }
}
