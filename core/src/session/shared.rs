//! The driver's side of the shared credential store (see [`crate::store`]).
//!
//! Only renewals touch the store; the hot path ([`Session::current`]) never does. When a
//! renewal is due: read the record and adopt it if another process already renewed;
//! otherwise take the lease, read again, renew at the venue (keeping the lease while the
//! venue answers), write version + 1 with a compare-and-swap, release. A Cadenza refresh
//! token is fenced before it is presented (see [`Session::fence`]): taken out of the
//! record by a compare-and-swap, so no two processes ever present the same one, even when
//! a lease lapses under a killed or cut-off holder. When the store is unreachable the session keeps its valid
//! credential, retries the store, and renews on its own only in the second half of the
//! time it has left ("last resort"), so an outage never costs a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use zeroize::Zeroize;

use super::{Options, Session, State};
use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{Machine, MachineStatus, Venue};
use crate::store::record::{PAYLOAD_VERSION, Payload, writer_label};
use crate::store::{self, CredentialStore, OpenError, Sealer, StoreEvent, StoreFuture};

/// How often an unreachable store is retried while the cached credential is still good.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// A session's connection to its store.
pub(super) struct Shared {
    store: Arc<dyn CredentialStore>,
    sealer: Sealer,
    key: String,
    /// Lease holder id: `pid@host/random`, unique per session.
    holder: String,
    lease_ttl: Duration,
    timeout: Duration,
    available: AtomicBool,
    /// The last unreadable version reported, so a bad record is logged once, not per read.
    reported_unreadable: AtomicU64,
    events: broadcast::Sender<StoreEvent>,
}

/// Per-session store bookkeeping, under the session lock.
#[derive(Default)]
pub(super) struct SyncState {
    /// Random id of the record our credential came from (adopted or written), or that we
    /// saw rejected: such a record is never adopted again.
    known_rid: Option<u64>,
    /// Store unreachable during this renewal: past this instant we renew on our own.
    last_resort_at: Option<Instant>,
    /// Store unreachable: when the background refresher tries it again.
    pub(super) retry_at: Option<Instant>,
}

/// A record as read: its version (for the compare-and-swap) and its content if usable.
struct Read {
    version: u64,
    payload: Option<Payload>,
}

#[derive(serde::Deserialize)]
struct PayloadVersion {
    v: u32,
}

impl Shared {
    /// The store the options name, for venues that have something to share.
    pub(super) fn from_options(
        options: &Options,
        venue: Venue,
        shareable: bool,
        base_url: &str,
        account: &str,
    ) -> Result<Option<Self>> {
        let Some(url) = options.store.as_deref() else {
            return Ok(None);
        };
        if !shareable {
            // Partner tokens are minted locally and Exchange keys never change: every
            // process can hold its own without any venue cost.
            tracing::debug!(
                venue = venue.as_str(),
                "credential store not needed for this venue"
            );
            return Ok(None);
        }
        if options.store_lease_ttl.is_zero() {
            return Err(Error::invalid_argument(
                "the store lease must last more than 0 seconds",
            ));
        }
        let store = store::open_with_ca(
            url,
            options.store_prefix.as_deref(),
            options.store_timeout,
            options.store_ca_pem.as_deref(),
        )?;
        // An in-process store never puts a record at rest, so it needs no key.
        let in_memory = url.trim().to_ascii_lowercase().starts_with("memory:");
        let sealer = Sealer::from_options(
            options.store_key.as_ref(),
            options.store_plaintext || in_memory,
        )?;
        let (events, _) = broadcast::channel(64);
        Ok(Some(Shared {
            store,
            sealer,
            key: store::record_key(venue, base_url, account),
            holder: format!("{}/{:016x}", writer_label(), rand::random::<u64>()),
            lease_ttl: options.store_lease_ttl,
            timeout: options.store_timeout,
            available: AtomicBool::new(true),
            reported_unreadable: AtomicU64::new(u64::MAX),
            events,
        }))
    }

    /// One store call, bounded by the store timeout.
    async fn op<T>(&self, call: StoreFuture<'_, T>) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the credential store {} did not answer within {:?}",
                    self.store.describe(),
                    self.timeout
                ),
            )),
        }
    }

    fn emit(&self, event: StoreEvent) {
        // No receiver is not an error: events are optional.
        let _ = self.events.send(event);
    }

    fn healthy(&self) {
        if !self.available.swap(true, Ordering::AcqRel) {
            tracing::info!(store = %self.store.describe(), "credential store reachable again");
            self.emit(StoreEvent::Recovered);
        }
    }

    fn failed(&self, error: &Error) {
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!(store = %self.store.describe(), kind = error.kind().as_str(),
                message = error.message(), "credential store unavailable; serving the cached credential");
            self.emit(StoreEvent::Unavailable {
                message: error.message().to_owned(),
            });
        }
    }

    /// Reads and opens the record; an unusable one reads as "no record" (logged once).
    async fn read(&self, venue: Venue, account: &str) -> Result<Read> {
        let Some(record) = self.op(self.store.read(&self.key)).await? else {
            return Ok(Read {
                version: 0,
                payload: None,
            });
        };
        let version = record.version;
        let payload = match self.sealer.open(&self.key, version, &record.data) {
            Ok(mut bytes) => {
                let parsed = match serde_json::from_slice::<PayloadVersion>(&bytes) {
                    Ok(v) if v.v > PAYLOAD_VERSION => Err(OpenError::NewerFormat.describe()),
                    Ok(_) => serde_json::from_slice::<Payload>(&bytes)
                        .map_err(|_| "the stored record's content is not a credential record"),
                    Err(_) => Err("the stored record's content is not a credential record"),
                };
                bytes.zeroize();
                match parsed {
                    Ok(p) if p.venue == venue.as_str() && p.account == account => Ok(p),
                    Ok(_) => Err("the stored record belongs to another venue or account"),
                    Err(why) => Err(why),
                }
            }
            Err(error) => Err(error.describe()),
        };
        match payload {
            Ok(p) => Ok(Read {
                version,
                payload: Some(p),
            }),
            Err(why) => {
                if self.reported_unreadable.swap(version, Ordering::AcqRel) != version {
                    tracing::warn!(store = %self.store.describe(), version, "{why}; treating it as absent");
                    self.emit(StoreEvent::Unreadable {
                        message: why.to_owned(),
                    });
                }
                Ok(Read {
                    version,
                    payload: None,
                })
            }
        }
    }
}

/// Whether the machine is about to send something (login, refresh, challenge).
fn wants_request(machine: &dyn Machine) -> bool {
    machine.status().wants_request()
}

/// Whether the machine fell back to a full login (Cadenza) or a new challenge (Cascade).
fn needs_login(machine: &dyn Machine) -> bool {
    machine.status() == MachineStatus::LoggingIn
}

/// Extends the lease (a third of its ttl at a time) until it is lost to another holder;
/// never returns while it is ours. A store error is retried at the next tick.
async fn keep_lease(shared: &Shared) {
    let every = (shared.lease_ttl / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let call = shared
            .store
            .try_lease(&shared.key, &shared.holder, shared.lease_ttl);
        match shared.op(call).await {
            Ok(true) | Err(_) => {}
            Ok(false) => {
                tracing::warn!(store = %shared.store.describe(),
                    "store lease lost during a renewal; finishing it, its write is a compare-and-swap");
                return;
            }
        }
    }
}

impl Session {
    /// Subscribes to the shared store's events (unavailable, recovered, adopted, written,
    /// unreadable); they carry no secret. Without a store the receiver never yields.
    pub fn subscribe_store(&self) -> broadcast::Receiver<StoreEvent> {
        match self.local().ok().and_then(|local| local.shared.clone()) {
            Some(shared) => shared.events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Whether the shared store answered the last time it was used; `None` without one.
    pub fn store_available(&self) -> Option<bool> {
        self.local()
            .ok()?
            .shared
            .as_ref()
            .map(|s| s.available.load(Ordering::Acquire))
    }

    /// The shared store this session uses (no password), if any.
    pub fn store_description(&self) -> Option<String> {
        self.local()
            .ok()?
            .shared
            .as_ref()
            .map(|s| s.store.describe())
    }

    /// [`Session::drive`] with the shared store around it (plain `drive` without a store).
    pub(super) async fn drive_shared(
        &self,
        state: &mut State,
        want_credential: bool,
    ) -> Result<Option<Arc<Credential>>> {
        let Some(shared) = state.ctx.shared.clone() else {
            return self.drive(state, want_credential).await;
        };
        let shared = &*shared;
        state.sync.retry_at = None;
        if state.machine.is_busy() {
            // A drive cancelled by a timeout; forget its request so a record can be adopted.
            let error = Error::new(ErrorKind::Timeout, "previous request was abandoned");
            let at = self.now();
            state.machine.handle_transport_error(at, &error);
        }
        let at = self.now();
        state.machine.handle_timeout(at);
        self.publish(state, at);
        if !wants_request(&*state.machine) {
            return self.drive(state, want_credential).await;
        }
        // Another process may have renewed already: take theirs, no lease needed.
        match shared.read(self.inner.venue, &self.inner.account).await {
            Ok(read) => {
                shared.healthy();
                if self.adopt(shared, state, &read) && !wants_request(&*state.machine) {
                    return Ok(self.current());
                }
            }
            Err(error) => return self.degraded(shared, state, want_credential, error).await,
        }
        let leased = match self.take_lease(shared, state).await {
            Ok(Some(leased)) => leased,
            Ok(None) => return Ok(self.current()),
            Err(error) => return self.degraded(shared, state, want_credential, error).await,
        };
        let outcome = self
            .renew_under_lease(shared, state, want_credential, leased)
            .await;
        if leased
            && let Err(error) = shared
                .op(shared.store.release(&shared.key, &shared.holder))
                .await
        {
            // It expires on its own; the others wait at most the lease ttl.
            tracing::debug!(kind = error.kind().as_str(), "store lease not released");
        }
        outcome
    }

    /// Waits for the lease, adopting what its holder writes meanwhile. A live holder keeps
    /// its lease for as long as its renewal runs (bounded by its `auth_timeout`); a dead
    /// one loses it a lease ttl later. `Some(true)`: taken; `Some(false)`: still held
    /// past both (renew without it: the write is still a compare-and-swap, and the fence
    /// keeps a refresh token from being presented twice); `None`: a record made renewing
    /// unnecessary.
    async fn take_lease(&self, shared: &Shared, state: &mut State) -> Result<Option<bool>> {
        let give_up = Instant::now() + shared.lease_ttl + self.inner.options.auth_timeout;
        let mut waited = false;
        loop {
            let call = shared
                .store
                .try_lease(&shared.key, &shared.holder, shared.lease_ttl);
            if shared.op(call).await? {
                return Ok(Some(true));
            }
            if !waited {
                waited = true;
                self.counters().store_lease_wait();
            }
            let pause = Duration::from_millis(20 + rand::random::<u64>() % 40);
            tokio::time::sleep(pause).await;
            let read = shared.read(self.inner.venue, &self.inner.account).await?;
            if self.adopt(shared, state, &read) && !wants_request(&*state.machine) {
                return Ok(None);
            }
            if Instant::now() >= give_up {
                tracing::warn!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                    "store lease held past its ttl; renewing without it");
                return Ok(Some(false));
            }
        }
    }

    /// Under the lease (`leased`; or past waiting for it): read again, adopt if someone
    /// renewed, else fence, renew and write.
    async fn renew_under_lease(
        &self,
        shared: &Shared,
        state: &mut State,
        want_credential: bool,
        leased: bool,
    ) -> Result<Option<Arc<Credential>>> {
        let read = match shared.read(self.inner.venue, &self.inner.account).await {
            Ok(read) => read,
            Err(error) => return self.degraded(shared, state, want_credential, error).await,
        };
        if self.adopt(shared, state, &read) && !wants_request(&*state.machine) {
            return Ok(self.current());
        }
        let expected = match self.fence(shared, state, &read).await {
            Ok(Some(version)) => version,
            // Someone wrote between our read and the fence: start over from the store.
            Ok(None) => {
                return Box::pin(self.renew_under_lease(shared, state, want_credential, leased))
                    .await;
            }
            Err(error) => return self.degraded(shared, state, want_credential, error).await,
        };
        let before = self.current();
        let known = state.sync.known_rid;
        let outcome = {
            // Keep the lease while the venue call runs, so waiters keep waiting for our
            // write instead of renewing too. Losing it stops nothing: the request is in
            // flight, and our write is a compare-and-swap.
            let drive = self.drive(state, want_credential);
            tokio::pin!(drive);
            if leased {
                let keep = keep_lease(shared);
                tokio::pin!(keep);
                tokio::select! {
                    outcome = &mut drive => outcome,
                    () = &mut keep => drive.await,
                }
            } else {
                drive.await
            }
        };
        let renewed = match (&before, self.current()) {
            (Some(old), Some(new)) => old.header_value() != new.header_value(),
            (None, Some(_)) => true,
            _ => false,
        };
        // Written only if this drive renewed at the venue (not if it adopted a record).
        if outcome.is_ok()
            && renewed
            && state.sync.known_rid == known
            && let Err(error) = self.write(shared, state, expected).await
        {
            shared.failed(&error);
        }
        outcome
    }

    /// Before a Cadenza refresh token is presented: makes sure no other process presents
    /// it too. Venues rotate refresh tokens and may revoke the whole family when one is
    /// presented twice; the lease alone cannot promise that (a holder may be killed or cut
    /// off mid-refresh, and its lease then lapses while its request may have reached the
    /// venue). So the token is taken out of the shared record first, by a
    /// compare-and-swap to a fence (the same access token, no refresh token, naming the
    /// record it came from): of all processes holding that token, only the one whose
    /// fence lands presents it; any other that later finds the fence logs in instead.
    /// Returns the version the renewal's own write must replace, or `None` if the record
    /// changed under us (read again).
    async fn fence(&self, shared: &Shared, state: &mut State, read: &Read) -> Result<Option<u64>> {
        let machine = &mut *state.machine;
        if machine.status() != MachineStatus::Refreshing || !machine.holds_refresh_token() {
            return Ok(Some(read.version));
        }
        let Some(record) = &read.payload else {
            // No shared record of our token: nobody else can hold it.
            return Ok(Some(read.version));
        };
        let known = state.sync.known_rid;
        if known.is_some() && record.presented_rid == known {
            tracing::info!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                "another process took this refresh token to present it; logging in instead");
            machine.forget_refresh_token();
            return Ok(Some(read.version));
        }
        if known != Some(record.rid) || record.refresh_token.is_none() {
            // Our refresh token is not the record's (ours is newer, or the record is
            // our own fence from an earlier attempt): nobody else was handed it.
            return Ok(Some(read.version));
        }
        let rid = rand::random::<u64>();
        let fence = record.fence(rid);
        if !self.cas_payload(shared, read.version, &fence).await? {
            return Ok(None);
        }
        state.sync.known_rid = Some(rid);
        Ok(Some(read.version + 1))
    }

    /// Writes the machine's session as version `expected + 1`; if another writer got there
    /// first, adopts theirs when it is at least as fresh.
    async fn write(&self, shared: &Shared, state: &mut State, expected: u64) -> Result<()> {
        let now = self.now();
        let Some(snapshot) = state.machine.snapshot(now.instant) else {
            return Ok(());
        };
        let rid = rand::random::<u64>();
        let payload = Payload::new(
            self.inner.venue.as_str(),
            &self.inner.account,
            rid,
            &snapshot,
        );
        if self.cas_payload(shared, expected, &payload).await? {
            state.sync.known_rid = Some(rid);
            let version = expected + 1; // cas_payload checked it
            tracing::debug!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                version, "credential record written");
            self.counters().store_write();
            shared.emit(StoreEvent::Written { version });
        } else {
            tracing::info!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                "another process wrote the credential record first");
            let read = shared.read(self.inner.venue, &self.inner.account).await?;
            self.adopt(shared, state, &read);
        }
        Ok(())
    }

    /// Seals `payload` and writes it as version `expected + 1` if the stored version is
    /// still `expected`; `false` if another writer got there first.
    async fn cas_payload(&self, shared: &Shared, expected: u64, payload: &Payload) -> Result<bool> {
        let next = crate::store::next_version(expected)?;
        let mut json = serde_json::to_vec(payload).map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                "the credential record could not be encoded",
            )
        })?;
        let sealed = shared.sealer.seal(&shared.key, next, &json);
        json.zeroize();
        let blob = sealed?;
        shared
            .op(shared.store.compare_and_swap(&shared.key, expected, &blob))
            .await
    }

    /// Adopts the record if it is another valid credential, at least as fresh as ours.
    fn adopt(&self, shared: &Shared, state: &mut State, read: &Read) -> bool {
        let Some(payload) = &read.payload else {
            return false;
        };
        if state.sync.known_rid == Some(payload.rid) {
            return false;
        }
        let now = self.now();
        if payload.expires_at_ms <= now.unix_ms {
            return false;
        }
        let machine = &mut *state.machine;
        if machine
            .snapshot(now.instant)
            .is_some_and(|ours| ours.expires_at_ms > payload.expires_at_ms)
        {
            return false;
        }
        if let Err(error) = machine.restore(now, &payload.snapshot()) {
            tracing::debug!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                reason = error.message(), "stored credential not adopted");
            return false;
        }
        // An adopted record already in its refresh window is renewed right away.
        machine.handle_timeout(now);
        state.sync.known_rid = Some(payload.rid);
        state.sync.last_resort_at = None;
        self.publish(state, now);
        tracing::debug!(venue = self.inner.venue.as_str(), account = %self.inner.account,
            version = read.version, "adopted the shared credential");
        self.counters().store_adoption();
        shared.emit(StoreEvent::Adopted {
            version: read.version,
        });
        true
    }

    /// The store failed: keep the valid credential and retry the store until the second
    /// half of its remaining life, then renew on our own (the last resort).
    async fn degraded(
        &self,
        shared: &Shared,
        state: &mut State,
        want_credential: bool,
        error: Error,
    ) -> Result<Option<Arc<Credential>>> {
        shared.failed(&error);
        // The deadline clock: `until` and `retry_at` are on it.
        let now = crate::time::deadline_now();
        if let Some(current) = self.current()
            && let Some(until) = current.valid_until()
        {
            let last_resort = *state
                .sync
                .last_resort_at
                .get_or_insert_with(|| now + until.saturating_duration_since(now) / 2);
            if now < last_resort {
                let pause = (last_resort - now)
                    .min(STORE_RETRY)
                    .max(Duration::from_millis(20));
                state.sync.retry_at = Some(now + pause);
                return Ok(Some(current));
            }
        }
        state.sync.last_resort_at = None;
        tracing::warn!(venue = self.inner.venue.as_str(), account = %self.inner.account,
            "credential store unreachable; renewing without it");
        self.drive(state, want_credential).await
    }

    /// Called by [`Session::drive`] after each request it sent: if the answer left the
    /// machine needing a full login (a refresh rejected because another process rotated
    /// the token), reads the store once before logging in and adopts a fresher record.
    pub(super) async fn adopt_before_login(&self, state: &mut State, done: &mut bool) {
        let Some(shared) = state.ctx.shared.clone() else {
            return;
        };
        let shared = &*shared;
        if *done || !needs_login(&*state.machine) {
            return;
        }
        *done = true;
        match shared.read(self.inner.venue, &self.inner.account).await {
            Ok(read) => {
                shared.healthy();
                self.adopt(shared, state, &read);
            }
            Err(error) => shared.failed(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::SessionSnapshot;
    use crate::machine::demo::DemoMachine;
    use crate::secret::Secret;

    /// The venue of these tests: the demo venue, as sharing is venue-neutral.
    fn venue() -> Venue {
        DemoMachine::new("key").expect("machine").venue()
    }

    /// A session's connection to the in-process store (no key needed), under a record
    /// key of its own: every `memory:` store is the one process-wide store.
    fn shared(account: &str) -> Shared {
        let options = Options::new().store("memory:");
        let base_url = format!("https://{:x}.example/", rand::random::<u64>());
        Shared::from_options(&options, venue(), true, &base_url, account)
            .expect("store")
            .expect("a shareable venue gets one")
    }

    /// Writes `payload` as version 1, with `v` set to `v`.
    async fn write(shared: &Shared, payload: &Payload, v: u32) {
        let mut json = serde_json::to_value(payload).expect("json");
        json["v"] = v.into();
        let sealed = shared
            .sealer
            .seal(&shared.key, 1, json.to_string().as_bytes())
            .expect("seal");
        let written = shared.store.compare_and_swap(&shared.key, 0, &sealed);
        assert!(written.await.expect("store"), "first write");
    }

    fn payload(venue: &str, account: &str) -> Payload {
        let snapshot = SessionSnapshot {
            token: Secret::from("tok"),
            expires_at_ms: u64::MAX / 2,
            obtained_at_ms: 1,
            refresh_token: Some(Secret::from("rt")),
            claims: None,
        };
        Payload::new(venue, account, 7, &snapshot)
    }

    fn drain(events: &mut broadcast::Receiver<StoreEvent>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(match event {
                StoreEvent::Unavailable { .. } => "unavailable".to_owned(),
                StoreEvent::Recovered => "recovered".to_owned(),
                StoreEvent::Unreadable { message } => format!("unreadable: {message}"),
                _ => "other".to_owned(),
            });
        }
        seen
    }

    #[tokio::test]
    async fn a_record_of_this_payload_version_is_read() {
        let shared = shared("me");
        write(&shared, &payload("demo", "me"), PAYLOAD_VERSION).await;
        let read = shared.read(venue(), "me").await.expect("read");
        assert_eq!(read.version, 1);
        assert_eq!(read.payload.expect("usable").rid, 7);
    }

    /// A newer tradeauth's record, even one whose fields this version can parse, is not
    /// adopted: its meaning may have changed. It reads as absent, reported once.
    #[tokio::test]
    async fn a_record_of_a_newer_payload_version_reads_as_absent() {
        let shared = shared("me");
        let mut events = shared.events.subscribe();
        write(&shared, &payload("demo", "me"), PAYLOAD_VERSION + 1).await;
        for _ in 0..2 {
            let read = shared.read(venue(), "me").await.expect("read");
            assert_eq!(
                read.version, 1,
                "its version is kept for the compare-and-swap"
            );
            assert!(read.payload.is_none(), "a newer record was adopted");
        }
        let seen = drain(&mut events);
        assert_eq!(seen.len(), 1, "reported once: {seen:?}");
        assert!(seen[0].contains("newer"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_record_of_another_venue_or_account_reads_as_absent() {
        for (other, account) in [("cascade", "me"), ("demo", "someone else")] {
            let shared = shared("me");
            write(&shared, &payload(other, account), PAYLOAD_VERSION).await;
            let read = shared.read(venue(), "me").await.expect("read");
            assert!(read.payload.is_none(), "{other}/{account} was adopted");
        }
    }

    /// Unavailable once per outage, Recovered once per recovery, nothing while healthy.
    #[test]
    fn store_health_is_reported_on_change_only() {
        let shared = shared("me");
        let mut events = shared.events.subscribe();
        shared.healthy();
        assert_eq!(
            drain(&mut events),
            Vec::<String>::new(),
            "healthy while healthy"
        );
        let down = Error::transport("connection refused");
        shared.failed(&down);
        shared.failed(&down);
        assert_eq!(drain(&mut events), ["unavailable"]);
        shared.healthy();
        shared.healthy();
        assert_eq!(drain(&mut events), ["recovered"]);
    }
}
