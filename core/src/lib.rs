//! tradeauth: trading venues' authentication, implemented once.
//!
//! This crate holds the sans-IO authentication state machines of four venues
//! ([`CadenzaMachine`], [`PartnerMachine`], [`CascadeMachine`], [`ExchangeMachine`]),
//! behind one [`Machine`] trait. A machine does no I/O, reads no clock and draws no
//! randomness: the driver passes the time in ([`Now`]), sends the [`HttpRequest`]s the
//! machine asks for, feeds back the [`HttpResponse`]s, and attaches the [`Credential`] the
//! machine hands out. Failures are classified into one [`Error`] with a stable
//! [`ErrorKind`]; secrets live in [`Secret`], which never prints its value.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tradeauth::{Machine, Now, PartnerConfig, PartnerMachine};
//!
//! let mut m = PartnerMachine::new(PartnerConfig::new("demo-client", "demo-secret-key"))?;
//! let now = Now::new(Instant::now(), 1_700_000_000_000);
//! m.handle_timeout(now); // mints
//! let c = m.credential(now.instant).expect("a fresh token");
//! assert_eq!(c.header_name(), "authorization");
//! assert!(c.header_value().starts_with("Bearer eyJ"));
//! // Proactive renewal: wake at poll_timeout() and call handle_timeout again.
//! assert!(m.poll_timeout().unwrap() <= now.instant + Duration::from_secs(900));
//! # Ok::<(), tradeauth::Error>(())
//! ```

#![deny(missing_docs)]

/// Builder setters, one line each: `with_x(v: T) => x = v;` makes
/// `#[must_use] pub fn with_x(mut self, v: T) -> Self { self.x = v; self }`, with the doc
/// given. The configs, `Options` and `Error` had the same five lines per field.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}

mod clock;
pub mod credential;
pub mod error;
pub mod event;
mod hmac;
pub mod http;
pub mod keystore;
pub mod machine;
pub mod metrics;
#[cfg(feature = "client")]
pub mod process;
#[cfg(feature = "client")]
pub mod runtime;
pub mod secret;
#[cfg(feature = "client")]
pub mod session;
pub mod signer;
#[cfg(feature = "client")]
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod time;

pub use credential::Credential;
pub use error::{Error, ErrorKind, Result};
pub use event::AuthEvent;
pub use http::{HttpRequest, HttpResponse, Method};
pub use machine::cadenza::{CadenzaConfig, CadenzaMachine};
pub use machine::cascade::{CascadeConfig, CascadeMachine, eip191_sign};
pub use machine::exchange::{ExchangeConfig, ExchangeMachine};
pub use machine::partner::{PartnerConfig, PartnerMachine, mint_token};
pub use machine::{
    Capabilities, Machine, MachineStatus, NewSecret, SessionSnapshot, Venue, WsAuthReply, WsRules,
};
pub use metrics::{Metrics, prometheus_text};
pub use secret::Secret;
pub use time::Now;

#[cfg(feature = "client")]
pub use session::{
    CADENZA_PRODUCTION_URL, CADENZA_UAT_URL, CASCADE_URL, EXCHANGE_URL, OptionSpec, Options,
    Privacy, RequestBuilder, Session, WeakSession, WsBuilder, WsClient, WsState, WsStream,
    parse_ws_message,
};
#[cfg(feature = "client")]
pub use store::{CredentialStore, StoreEvent};

/// The crate version, as the C and Python layers report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// Compiles the README's examples as doctests so they cannot drift from the API.
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
