//! The WebSocket side that Cascade and Exchange share: the upgrade, the per-venue
//! registry of open connections (what each subscribed to, who it authenticated as, and a
//! sender for server pushes), and the session loop. The loop waits on the socket, on
//! pushes and commands from the registry (order events, bursts, `ws_drop`/`ws_silence`
//! faults), on its orderbook delta timer and on shutdown; it hands each text message to
//! the venue's protocol and sends back its replies, until the client closes, a fault
//! drops it or the simulator shuts down.
//!
//! A burst may be paced ([`Pace`], opt-in through `POST /ws/burst`'s `stamp` and
//! `interval_us`): each delta then carries `sent_unix_ns`, the wall clock (Unix
//! nanoseconds, `CLOCK_REALTIME`, not the simulator's offset clock) read just before the
//! delta is serialized and written, and/or consecutive deltas are spaced by at least
//! `interval`, so that a client on the same host can measure per-message latency. Without
//! them a burst is byte for byte what it always was.
//!
//! A dropped connection (`ws_drop`) is closed abruptly: the TLS stream and TCP socket are
//! dropped with no WebSocket close frame and no TLS close_notify, as a crashed venue or a
//! broken network path would, so a client sees a reset or an unexpected EOF.

use std::collections::{BTreeSet, HashMap};
use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::Venue;
use crate::common::{error_text, lock};
use crate::faults::EchoCredential;
use crate::state::Shared;

/// One venue's WebSocket protocol: what a connection remembers, and the answers.
pub(crate) trait Protocol: Send + 'static {
    /// The venue that speaks it (for counters and its connection registry).
    const VENUE: Venue;
    /// What a connection remembers between messages (who authenticated on it).
    type Conn: Default + Send;
    /// The reply to a binary frame: both venues speak text only.
    fn binary_reply() -> Value;
    /// The reply to a text message that is not JSON.
    fn invalid_json_reply() -> Value;
    /// The replies to one JSON message, in order. `echo`: an `echo_credential` fault was
    /// armed on the upgrade, so every auth message is rejected, quoting the credential.
    /// `link` records subscriptions and the authenticated account in the registry.
    fn handle(
        shared: &Shared,
        conn: &mut Self::Conn,
        link: &mut Link,
        request: Value,
        echo: bool,
    ) -> Vec<Value>;
    /// The `seq`-th orderbook delta of `market` on one connection (`seq` counts from 1).
    fn delta(market: &str, seq: u64) -> Value;
}

/// What the registry asks an open connection to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message (an order event).
    Push(Value),
    /// Send `count` deltas of each of these markets, as fast as possible (or as `pace`
    /// says).
    Burst {
        /// The markets the connection had subscribed to when the burst was asked for.
        markets: Vec<String>,
        /// Deltas per market.
        count: u64,
        /// Timestamps and spacing (both off by default).
        pace: Pace,
    },
    /// Close abruptly now (`None`) or after this many more sent messages.
    Drop(Option<u64>),
    /// Neither read nor send for this long, then resume.
    Silence(Duration),
}

/// How a burst is sent: the opt-in latency aids of `POST /ws/burst`. The default (no
/// stamp, no interval) sends plain deltas back to back, as a burst always did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pace {
    /// Add `"sent_unix_ns"` (Unix nanoseconds, read just before the send) to each delta:
    /// at the top level on Exchange, in `params` on Cascade.
    pub(crate) stamp: bool,
    /// At least this long between consecutive deltas of the burst (zero: back to back).
    /// Tokio's timer has millisecond resolution, so a sub-millisecond interval is rounded
    /// up to the next timer tick.
    pub(crate) interval: Duration,
}

/// Unix nanoseconds from the system's wall clock (`CLOCK_REALTIME` on Linux), ignoring
/// the simulator's clock offset: comparable with other processes on the same host.
fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Adds `sent_unix_ns` to a delta: in its JSON-RPC `params` (Cascade) if it has them,
/// else at its top level (Exchange).
fn stamp(delta: &mut Value, ns: u64) {
    let target = match delta.get_mut("params") {
        Some(params) if params.is_object() => params,
        _ => delta,
    };
    if let Some(object) = target.as_object_mut() {
        object.insert("sent_unix_ns".to_owned(), Value::from(ns));
    }
}

/// One open connection as the registry sees it.
struct Entry {
    sender: mpsc::UnboundedSender<Command>,
    /// Orderbook markets subscribed to, in subscription order.
    markets: Vec<String>,
    /// Private channels subscribed to (`orders`, `fills`, `positions`).
    private: BTreeSet<String>,
    /// The account (Exchange trader id, Cascade lowercase address) it authenticated as.
    account: Option<String>,
}

/// The open WebSocket connections of one venue.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    conns: std::sync::Mutex<HashMap<u64, Entry>>,
}

impl Registry {
    fn register(&self, sender: mpsc::UnboundedSender<Command>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            sender,
            markets: Vec::new(),
            private: BTreeSet::new(),
            account: None,
        };
        lock(&self.conns).insert(id, entry);
        id
    }

    fn unregister(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    fn with_entry(&self, id: u64, f: impl FnOnce(&mut Entry)) {
        if let Some(entry) = lock(&self.conns).get_mut(&id) {
            f(entry);
        }
    }

    /// How many connections are open now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Asks every orderbook subscriber for `count` deltas of each market it subscribed
    /// to, sent as `pace` says; returns the number of delta messages queued.
    pub(crate) fn burst(&self, count: u64, pace: Pace) -> u64 {
        let conns = lock(&self.conns);
        let mut queued = 0u64;
        for entry in conns.values().filter(|e| !e.markets.is_empty()) {
            let markets = entry.markets.clone();
            let n = count.saturating_mul(markets.len() as u64);
            let command = Command::Burst {
                markets,
                count,
                pace,
            };
            if count > 0 && entry.sender.send(command).is_ok() {
                queued = queued.saturating_add(n);
            }
        }
        queued
    }

    /// Pushes `message` to every connection authenticated as `account` that subscribed
    /// to `channel`; returns how many it was queued to.
    pub(crate) fn push_private(&self, account: &str, channel: &str, message: &Value) -> usize {
        let conns = lock(&self.conns);
        conns
            .values()
            .filter(|e| e.account.as_deref() == Some(account) && e.private.contains(channel))
            .filter(|e| e.sender.send(Command::Push(message.clone())).is_ok())
            .count()
    }

    /// Sends a command (made fresh for each) to every open connection; returns how many.
    pub(crate) fn broadcast(&self, command: impl Fn() -> Command) -> usize {
        let conns = lock(&self.conns);
        conns
            .values()
            .filter(|e| e.sender.send(command()).is_ok())
            .count()
    }
}

/// A session's handle on its registry entry; the protocol records subscriptions and
/// authentication through it. Dropping it removes the entry.
pub(crate) struct Link {
    shared: Arc<Shared>,
    venue: Venue,
    id: u64,
    /// The session's own copy of its orderbook subscriptions, for the delta timer.
    markets: Vec<String>,
}

impl Link {
    fn registry(&self) -> &Registry {
        self.shared.ws_registry(self.venue)
    }

    /// Records an orderbook subscription (a repeated one is kept once).
    pub(crate) fn subscribe_market(&mut self, market: &str) {
        if self.markets.iter().any(|m| m == market) {
            return;
        }
        self.markets.push(market.to_owned());
        self.registry()
            .with_entry(self.id, |e| e.markets.push(market.to_owned()));
    }

    /// Records a subscription to a private channel (`orders`, `fills`, `positions`).
    pub(crate) fn subscribe_private(&mut self, channel: &str) {
        self.registry().with_entry(self.id, |e| {
            e.private.insert(channel.to_owned());
        });
    }

    /// Records the account the connection authenticated as.
    pub(crate) fn set_account(&mut self, account: &str) {
        self.registry()
            .with_entry(self.id, |e| e.account = Some(account.to_owned()));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.ws_registry(self.venue).unregister(self.id);
    }
}

/// `GET /ws`: upgrades to a WebSocket that speaks `P`.
pub(crate) async fn upgrade<P: Protocol>(
    State(shared): State<Arc<Shared>>,
    echo: Option<Extension<EchoCredential>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let echo = echo.is_some();
    match upgrade {
        Ok(upgrade) => {
            // Registered (and counted) before the 101 goes out, so a client that holds an
            // open connection is always reached by a fault or a burst armed after that.
            let opened = open(&shared, P::VENUE);
            upgrade.on_upgrade(move |socket| session::<P>(shared, socket, echo, opened))
        }
        Err(rejection) => error_text(rejection.status(), "expected a WebSocket upgrade"),
    }
}

/// A connection registered but not yet upgraded: its registry handle and command queue.
struct Opened {
    link: Link,
    commands: mpsc::UnboundedReceiver<Command>,
}

fn open(shared: &Arc<Shared>, venue: Venue) -> Opened {
    let (sender, commands) = mpsc::unbounded_channel();
    let registry = shared.ws_registry(venue);
    let id = registry.register(sender.clone());
    shared.stats.update(venue, |s| s.ws_connections += 1);
    // Faults armed at start (`--fault`) wait for the connections they apply to.
    for command in shared.take_pending_ws_faults(venue) {
        // The receiver is alive: it is in `Opened`.
        let _ = sender.send(command);
    }
    let link = Link {
        shared: shared.clone(),
        venue,
        id,
        markets: Vec::new(),
    };
    Opened { link, commands }
}

/// What woke the session loop.
enum Event {
    Socket(Option<Result<Message, axum::Error>>),
    Command(Command),
    Tick,
}

/// The sending half of a session: counts every message and carries out `ws_drop`.
struct Outbox {
    socket: WebSocket,
    venue: Venue,
    /// Messages still to send before an abrupt close (`ws_drop` with `after_messages`).
    drop_after: Option<u64>,
    /// The next `seq` of each market's deltas on this connection.
    seqs: HashMap<String, u64>,
}

/// Why a session ends.
struct Closed;

impl Outbox {
    /// Sends one text message; `Err` when the session must end (send failed, or a
    /// `ws_drop` countdown reached zero).
    async fn send(&mut self, shared: &Shared, message: &Value) -> Result<(), Closed> {
        if self.drop_after == Some(0) {
            return Err(Closed);
        }
        // Counted before it is sent, so the counter is never behind what a client read.
        shared.stats.update(self.venue, |s| s.ws_messages_sent += 1);
        let sent = self
            .socket
            .send(Message::Text(message.to_string().into()))
            .await;
        if sent.is_err() {
            shared.stats.update(self.venue, |s| {
                s.ws_messages_sent = s.ws_messages_sent.saturating_sub(1);
            });
            return Err(Closed);
        }
        if let Some(left) = &mut self.drop_after {
            *left = left.saturating_sub(1);
            if *left == 0 {
                return Err(Closed);
            }
        }
        Ok(())
    }

    async fn send_all(&mut self, shared: &Shared, messages: &[Value]) -> Result<(), Closed> {
        for message in messages {
            self.send(shared, message).await?;
        }
        Ok(())
    }

    /// Sends the next delta of `market`; `stamped` adds `sent_unix_ns` (see [`Pace`]).
    async fn delta<P: Protocol>(
        &mut self,
        shared: &Shared,
        market: &str,
        stamped: bool,
    ) -> Result<(), Closed> {
        let seq = self.seqs.entry(market.to_owned()).or_insert(0);
        *seq += 1;
        let mut delta = P::delta(market, *seq);
        if stamped {
            stamp(&mut delta, unix_ns_now());
        }
        self.send(shared, &delta).await
    }
}

/// Waits for the next delta tick, or forever when deltas are off.
async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => pending().await,
    }
}

async fn session<P: Protocol>(shared: Arc<Shared>, socket: WebSocket, echo: bool, opened: Opened) {
    let venue = P::VENUE;
    let Opened {
        mut link,
        mut commands,
    } = opened;
    let mut timer = match shared.ws_delta_interval_ms(venue) {
        0 => None,
        ms => {
            let period = Duration::from_millis(ms);
            let mut timer = tokio::time::interval_at(Instant::now() + period, period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(timer)
        }
    };
    let mut shutdown = shared.shutdown.clone();
    let mut conn = P::Conn::default();
    let mut out = Outbox {
        socket,
        venue,
        drop_after: None,
        seqs: HashMap::new(),
    };
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            command = commands.recv() => match command {
                Some(command) => Event::Command(command),
                // Cannot happen while the registry holds our sender; end quietly if it does.
                None => break,
            },
            m = out.socket.recv() => Event::Socket(m),
            () = tick(&mut timer) => Event::Tick,
        };
        let result = match event {
            Event::Socket(message) => {
                let replies = match message {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                        Ok(request) => P::handle(&shared, &mut conn, &mut link, request, echo),
                        Err(_) => vec![P::invalid_json_reply()],
                    },
                    Some(Ok(Message::Binary(_))) => vec![P::binary_reply()],
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                out.send_all(&shared, &replies).await
            }
            Event::Tick => {
                let mut result = Ok(());
                for market in link.markets.clone() {
                    result = out.delta::<P>(&shared, &market, false).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            Event::Command(Command::Push(message)) => out.send(&shared, &message).await,
            Event::Command(Command::Burst {
                markets,
                count,
                pace,
            }) => {
                let mut result = Ok(());
                let mut first = true;
                'burst: for _ in 0..count {
                    for market in &markets {
                        if !pace.interval.is_zero() && !first {
                            // Spaced: wait, but end at once on shutdown.
                            tokio::select! {
                                () = tokio::time::sleep(pace.interval) => {}
                                _ = shutdown.wait_for(|stop| *stop) => {
                                    result = Err(Closed);
                                    break 'burst;
                                }
                            }
                        }
                        first = false;
                        result = out.delta::<P>(&shared, market, pace.stamp).await;
                        if result.is_err() {
                            break 'burst;
                        }
                    }
                }
                result
            }
            Event::Command(Command::Drop(None)) => Err(Closed),
            Event::Command(Command::Drop(Some(n))) => {
                out.drop_after = Some(n);
                if n == 0 { Err(Closed) } else { Ok(()) }
            }
            Event::Command(Command::Silence(period)) => {
                // Neither read (so pings go unanswered) nor send; only shutdown ends it.
                tokio::select! {
                    () = tokio::time::sleep(period) => Ok(()),
                    _ = shutdown.wait_for(|stop| *stop) => Err(Closed),
                }
            }
        };
        if result.is_err() {
            break;
        }
    }
    // First leave the registry, then close: dropping the socket drops the TLS stream and
    // TCP socket abruptly (no close frame, no close_notify).
    drop(link);
    drop(out);
}
