//! A venue that exists only in this crate's unit tests. It is the proof that adding a
//! venue touches only what ARCHITECTURE.md lists: this file, a [`Venue`] variant with its
//! names, and a constructor in `session/demo.rs`. The driver, the store and the bindings
//! are not touched. It presents a static key in `x-api-key`, the header the simulator's
//! Exchange venue checks, so a real `Session` can drive it over TLS.

use std::time::Instant;

use crate::credential::{Credential, X_API_KEY};
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse};
use crate::machine::common::Events;
use crate::machine::{Capabilities, Machine, MachineStatus, Venue};
use crate::secret::Secret;
use crate::time::Now;

/// The demo venue's machine: one static key, refused for good after a 401.
pub(crate) struct DemoMachine {
    key: Secret,
    refused: Option<Error>,
    events: Events,
}

impl DemoMachine {
    /// A machine presenting `key`; an empty key is refused before anything is sent.
    pub(crate) fn new(key: &str) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::invalid_argument("the demo venue needs a key"));
        }
        Ok(DemoMachine {
            key: Secret::from(key.to_owned()),
            refused: None,
            events: Events::default(),
        })
    }
}

/// Static key, nothing renewed, nothing shared, no WebSocket, no public use.
const CAPABILITIES: Capabilities = Capabilities {
    renewable: false,
    shareable: false,
    ws_auth: false,
    public: false,
};

impl Machine for DemoMachine {
    fn credential(&self, _now: Instant) -> Option<Credential> {
        match self.refused {
            Some(_) => None,
            None => Credential::new(X_API_KEY, self.key.clone(), None, None).ok(),
        }
    }

    fn handle_unauthorized(&mut self, _now: Now) {
        if self.refused.is_none() {
            let e = Error::new(ErrorKind::Unauthorized, "the demo venue refused the key");
            self.events.push(AuthEvent::failed(&e));
            self.refused = Some(e);
        }
    }

    fn status(&self) -> MachineStatus {
        match self.refused {
            Some(_) => MachineStatus::Stopped,
            None => MachineStatus::Active,
        }
    }

    fn last_error(&self) -> Option<&Error> {
        self.refused.as_ref()
    }

    fn logout(&mut self) {
        self.refused = None;
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop()
    }

    fn handle_response(&mut self, _now: Now, _response: HttpResponse) -> Result<()> {
        Err(Error::invalid_argument("the demo venue sends no requests"))
    }

    // Nothing is ever sent and nothing expires: no request, timer or transport to track.
    fn poll_request(&mut self, _now: Now) -> Option<HttpRequest> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_busy(&self) -> bool {
        false
    }
    fn handle_timeout(&mut self, _now: Now) {}
    fn handle_transport_error(&mut self, _now: Now, _error: &Error) {}

    fn venue(&self) -> Venue {
        Venue::Demo
    }
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }
    fn account(&self) -> &str {
        "demo"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::NewSecret;
    use crate::secret::Secret;

    /// A venue that overrides none of the signer or rotation methods gets the trait's
    /// defaults: nothing to sign, and every signature or replacement refused by name.
    #[test]
    fn the_defaults_refuse_signatures_and_replacements() {
        let mut m = DemoMachine::new("key").expect("machine");
        let now = Now::capture();
        assert!(m.poll_sign(now).is_none());
        let e = m
            .handle_signature(now, Ok([0u8; 65]))
            .expect_err("not asked");
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
        assert!(e.message().contains("Demo got a signature"), "{e}");
        let e = m
            .replace_secret(now, NewSecret::ApiKey(Secret::new("k")))
            .expect_err("no such secret");
        assert!(
            e.message().contains("Demo has no api_key to replace"),
            "{e}"
        );
    }
}
