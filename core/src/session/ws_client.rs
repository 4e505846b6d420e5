//! A WebSocket client that stays authenticated (issue #15): it connects over the
//! session's TLS trust, authenticates with the session's credential (the one HTTP uses),
//! holds private messages until the venue has said authenticated, authenticates again on
//! the open connection when the session renews its credential, and reconnects (backoff,
//! a fresh credential, auth, the subscriptions replayed in order) on a close, an error or
//! silence. Which messages are private, which answer refuses the credential and how ids
//! work are the machine's [`WsRules`]; this file only runs the connection.
//!
//! One task owns the connection; the [`WsClient`] handle talks to it through channels,
//! so the caller's sends and the library's pings, auths and replays are written by one
//! writer, in one order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Session, WsStream};
use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::machine::{WsAuthReply, WsRules};

/// Whether a message needs an authenticated connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privacy {
    /// As the venue's rules classify it ([`WsRules::is_private`]).
    #[default]
    Auto,
    /// Public: sent as soon as the connection is open, authenticated or not.
    Public,
    /// Private: sent only on a connection the venue has authenticated.
    Private,
}

/// Where a [`WsClient`]'s connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsState {
    /// Opening the first connection.
    Connecting,
    /// Connected; the auth message was sent and its answer is awaited (private messages
    /// are held).
    Authenticating,
    /// The venue accepted the credential on this connection: private messages flow.
    Authenticated,
    /// Connected without authentication: the session has none for WebSockets (Exchange
    /// public or admin); private messages are refused.
    Open,
    /// The connection was lost; a new one is being opened after a backoff.
    Reconnecting,
    /// Closed by the caller, or for good after an error no retry can fix.
    Closed,
}

impl WsState {
    /// A stable snake_case name: `connecting`, `authenticating`, `authenticated`, `open`,
    /// `reconnecting`, `closed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WsState::Connecting => "connecting",
            WsState::Authenticating => "authenticating",
            WsState::Authenticated => "authenticated",
            WsState::Open => "open",
            WsState::Reconnecting => "reconnecting",
            WsState::Closed => "closed",
        }
    }
}

/// How a [`WsClient`] runs its connection (see the [`WsBuilder`] setters).
#[derive(Debug, Clone)]
struct WsOptions {
    idle_timeout: Duration,
    ping_interval: Option<Duration>,
    backoff_initial: Duration,
    backoff_max: Duration,
    max_held: usize,
    hold_timeout: Duration,
    auth_timeout: Duration,
    inbound_capacity: usize,
}

/// Builds a [`WsClient`]: `session.websocket("/ws")`, its options and the subscriptions
/// to send on every connection, then [`connect`](Self::connect).
#[derive(Debug)]
pub struct WsBuilder {
    session: Session,
    path: String,
    options: WsOptions,
    subscriptions: Vec<(Value, Privacy)>,
    error: Option<Error>,
}

impl Session {
    /// A WebSocket client for `path` on this session's venue (`"/ws"`), authenticated
    /// with this session's credential and kept authenticated; see [`WsClient`].
    pub fn websocket(&self, path: &str) -> WsBuilder {
        let request_timeout = self.inner.options.request_timeout;
        WsBuilder {
            session: self.clone(),
            path: path.to_owned(),
            options: WsOptions {
                idle_timeout: Duration::from_secs(30),
                ping_interval: None,
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                max_held: 1024,
                hold_timeout: Duration::from_secs(30),
                auth_timeout: request_timeout,
                inbound_capacity: 4096,
            },
            subscriptions: Vec::new(),
            error: None,
        }
    }

    /// The venue's auth message carrying `credential`, with request `id`.
    async fn ws_auth_message_with(&self, credential: &Credential, id: Value) -> Result<String> {
        self.with_machine(|m| m.ws_auth_message_for(credential, id))
            .await?
    }
}

impl WsBuilder {
    fn check(mut self, ok: bool, what: &str) -> Self {
        if !ok && self.error.is_none() {
            self.error = Some(Error::invalid_argument(what.to_owned()));
        }
        self
    }

    /// A connection that delivers no frame (message, ping or pong) for this long is taken
    /// for dead and replaced (default 30 s); pings go out in between.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.idle_timeout = timeout;
        self.check(!timeout.is_zero(), "idle_timeout must be above zero")
    }

    /// How often a WebSocket ping is sent on a quiet connection (default: a third of the
    /// idle timeout).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.options.ping_interval = Some(interval);
        self.check(!interval.is_zero(), "ping_interval must be above zero")
    }

    /// The reconnect backoff: the first delay's ceiling, doubled per failed attempt up to
    /// `max` (defaults 100 ms and 5 s); each delay is drawn between half the ceiling and
    /// the ceiling, so many clients do not reconnect in step.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.options.backoff_initial = initial;
        self.options.backoff_max = max;
        self.check(
            !initial.is_zero() && initial <= max,
            "reconnect_backoff needs 0 < initial <= max",
        )
    }

    /// How many messages may wait for a connection or its authentication (default 1024);
    /// a send beyond that fails at once.
    pub fn max_held(mut self, messages: usize) -> Self {
        self.options.max_held = messages;
        self.check(messages > 0, "max_held must be at least 1")
    }

    /// How long a message may wait for a connection or its authentication before its send
    /// fails with a timeout (default 30 s). It is never sent unauthenticated instead.
    pub fn hold_timeout(mut self, timeout: Duration) -> Self {
        self.options.hold_timeout = timeout;
        self.check(!timeout.is_zero(), "hold_timeout must be above zero")
    }

    /// How long the venue may take to answer the auth message (default: the session's
    /// request timeout). A rejection is reported when it arrives, never as this timeout.
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.options.auth_timeout = timeout;
        self.check(!timeout.is_zero(), "auth_timeout must be above zero")
    }

    /// How many received messages may wait for [`WsClient::recv`] (default 4096); when
    /// full, the client stops reading the socket until the caller catches up (nothing is
    /// dropped). One task owns the connection, so while the queue is full the caller's
    /// sends, pings and re-auths wait too: a caller that stops reading for longer than the
    /// venue tolerates unanswered pings loses the connection (it is then replaced).
    pub fn inbound_capacity(mut self, messages: usize) -> Self {
        self.options.inbound_capacity = messages;
        self.check(messages > 0, "inbound_capacity must be at least 1")
    }

    /// A subscription sent on every connection: public ones right after it opens, private
    /// ones once it is authenticated, each group in the order given.
    pub fn subscribe(self, message: Value) -> Self {
        self.subscribe_as(message, Privacy::Auto)
    }

    /// [`subscribe`](Self::subscribe) with the privacy stated instead of classified.
    pub fn subscribe_as(mut self, message: Value, privacy: Privacy) -> Self {
        self.subscriptions.push((message, privacy));
        self
    }

    /// Connects and authenticates (for a session that can): returns once the venue has
    /// accepted the credential, with its rejection text as an
    /// [`Unauthorized`](ErrorKind::Unauthorized) error the moment it answers, or the
    /// connect failure. From then on the client reconnects by itself.
    pub async fn connect(self) -> Result<WsClient> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut options = self.options;
        let ping = options.ping_interval.unwrap_or(options.idle_timeout / 3);
        if ping >= options.idle_timeout {
            return Err(Error::invalid_argument(
                "ping_interval must be shorter than idle_timeout",
            ));
        }
        options.ping_interval = Some(ping);
        let session = self.session;
        let rules = session.ws_rules().await?;
        let capabilities = session.capabilities();
        let (commands_tx, commands) = mpsc::channel(options.max_held.max(16));
        let (inbound_tx, inbound) = mpsc::channel(options.inbound_capacity);
        let (state_tx, state) = watch::channel(WsState::Connecting);
        let mut subscriptions = Vec::with_capacity(self.subscriptions.len());
        for (message, privacy) in self.subscriptions {
            subscriptions.push(Recorded::new(message, privacy, &rules));
        }
        let events = session.subscribe();
        let task = Task {
            session,
            path: self.path,
            options,
            rules,
            can_auth: capabilities.ws_auth,
            renewable: capabilities.renewable,
            commands,
            inbound: inbound_tx,
            state: state_tx,
            events,
            subscriptions,
            held: VecDeque::new(),
            next_id: 0,
            events_closed: false,
        };
        let (ready_tx, ready) = oneshot::channel();
        let handle = tokio::spawn(task.run(ready_tx));
        match ready.await {
            Ok(Ok(())) => Ok(WsClient {
                commands: commands_tx,
                inbound: Mutex::new(inbound),
                state,
                task: handle,
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::new(
                ErrorKind::Transport,
                "the WebSocket client stopped before it connected",
            )),
        }
    }
}

/// A WebSocket connection to the venue that stays authenticated: made by
/// [`Session::websocket`].
///
/// - Public messages go out as soon as the connection is open; private ones (the venue's
///   rules, or [`Privacy::Private`]) only once the venue has accepted the credential on it.
///   A private send issued before that waits (bounded count and time) and is then sent,
///   or fails — it is never sent unauthenticated.
/// - When the session renews its credential, the client authenticates again on the open
///   connection; on the venue's "Invalid Bearer Token" it renews once (shared with HTTP
///   callers) and authenticates again.
/// - On a close, an error or silence it reconnects with backoff and jitter, a fresh
///   credential, auth, then the subscriptions in their original order. Events on the
///   session's stream say so.
/// - Received messages come out of [`recv`](Self::recv) in order; the library's own auth
///   replies are consumed. Dropping the client closes the connection.
#[derive(Debug)]
pub struct WsClient {
    commands: mpsc::Sender<Command>,
    inbound: Mutex<mpsc::Receiver<Result<String>>>,
    state: watch::Receiver<WsState>,
    task: tokio::task::JoinHandle<()>,
}

impl WsClient {
    /// Sends a subscription and remembers it, to replay on every new connection (a
    /// private one after auth). Resolves when it is written to the socket.
    pub async fn subscribe(&self, message: Value) -> Result<()> {
        self.subscribe_as(message, Privacy::Auto).await
    }

    /// [`subscribe`](Self::subscribe) with the privacy stated instead of classified.
    pub async fn subscribe_as(&self, message: Value, privacy: Privacy) -> Result<()> {
        self.command(message, privacy, true).await
    }

    /// Sends one message (an order, a query), held until the connection is authenticated
    /// if it is private. Resolves when it is written to the socket; not replayed.
    pub async fn send(&self, message: Value) -> Result<()> {
        self.send_as(message, Privacy::Auto).await
    }

    /// [`send`](Self::send) with the privacy stated instead of classified.
    pub async fn send_as(&self, message: Value, privacy: Privacy) -> Result<()> {
        self.command(message, privacy, false).await
    }

    async fn command(&self, message: Value, privacy: Privacy, subscription: bool) -> Result<()> {
        let (done, result) = oneshot::channel();
        let command = Command::Send {
            message,
            privacy,
            subscription,
            done,
        };
        // A full command queue is the held-message bound too: fail at once, not later.
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::new(
                ErrorKind::Transport,
                "too many WebSocket messages are waiting to be sent",
            ),
            mpsc::error::TrySendError::Closed(_) => closed_error(),
        })?;
        result.await.unwrap_or_else(|_| Err(closed_error()))
    }

    /// The next received message (the venue's JSON text, as sent), in order. After the
    /// client closed for good, the error that closed it, then a `Transport` error.
    pub async fn recv(&self) -> Result<String> {
        let mut inbound = self.inbound.lock().await;
        inbound.recv().await.unwrap_or_else(|| Err(closed_error()))
    }

    /// The next received message if one is waiting now (`None` if none is, or another
    /// caller is inside [`recv`](Self::recv)); never waits. Bindings use it to hand over
    /// a backlog without a wake-up per message.
    pub fn try_recv(&self) -> Option<Result<String>> {
        let mut inbound = self.inbound.try_lock().ok()?;
        inbound.try_recv().ok()
    }

    /// [`recv`](Self::recv), parsed as JSON.
    pub async fn recv_json(&self) -> Result<Value> {
        let text = self.recv().await?;
        serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("the venue sent a WebSocket message that is not JSON ({e})"),
            )
        })
    }

    /// [`recv`](Self::recv) that gives up after `timeout` with a `Timeout` error (no
    /// message is lost: a later call gets it).
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<String> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "no WebSocket message in time"))?
    }

    /// Where the connection stands now.
    pub fn state(&self) -> WsState {
        *self.state.borrow()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<WsState> {
        self.state.clone()
    }

    /// Closes the connection (a close frame, bounded by a second) and stops reconnecting;
    /// held sends fail.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close { done }).await.is_ok() {
            let _ = closed.await;
        }
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        // The task also ends when it sees the command channel closed; aborting makes
        // that immediate even while it waits out a backoff or a renewal.
        self.task.abort();
    }
}

/// An outgoing WebSocket message from its JSON text, as every binding takes it: a JSON
/// object (both venues' requests are one), else `InvalidArgument`.
pub fn parse_ws_message(text: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(Error::invalid_argument(
            "a WebSocket message must be a JSON object",
        )),
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Transport, "the WebSocket client is closed")
}

enum Command {
    Send {
        message: Value,
        privacy: Privacy,
        subscription: bool,
        done: oneshot::Sender<Result<()>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A subscription to replay on each new connection.
struct Recorded {
    message: Value,
    private: bool,
}

impl Recorded {
    fn new(message: Value, privacy: Privacy, rules: &WsRules) -> Self {
        let private = is_private(&message, privacy, rules);
        Self { message, private }
    }
}

fn is_private(message: &Value, privacy: Privacy, rules: &WsRules) -> bool {
    match privacy {
        Privacy::Auto => (rules.is_private)(message),
        Privacy::Public => false,
        Privacy::Private => true,
    }
}

/// A message waiting for a connection (public) or for its authentication (private).
struct Held {
    text: String,
    /// A subscription: recorded for replay once it is sent (not before, or the replay
    /// would send it a second time).
    subscription: Option<Value>,
    private: bool,
    deadline: Instant,
    done: oneshot::Sender<Result<()>>,
}

/// How one connection ended.
enum Ended {
    /// The caller closed the client (or dropped it).
    Closed,
    /// No retry can fix it (a permanent key rejected, a bad path): close for good.
    Fatal(Error),
    /// Lost; reconnect. `authenticated`: it had been authenticated (the backoff restarts).
    Lost { error: Error, authenticated: bool },
}

/// The auth message in flight on a connection.
struct PendingAuth {
    id: Value,
    credential: Arc<Credential>,
    deadline: Instant,
    /// 1 for the first try; 2 after the venue refused a credential and it was renewed.
    tries: u32,
}

/// What one connection knows.
struct Conn {
    authenticated: bool,
    authed_with: Option<Arc<Credential>>,
    pending: Option<PendingAuth>,
    /// The private subscriptions are replayed after the first auth on this connection.
    replayed_private: bool,
    reconnect: bool,
    replays: usize,
    last_frame: Instant,
    next_ping: Instant,
    reauth_at: Option<Instant>,
}

struct Task {
    session: Session,
    path: String,
    options: WsOptions,
    rules: WsRules,
    can_auth: bool,
    renewable: bool,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Result<String>>,
    state: watch::Sender<WsState>,
    events: broadcast::Receiver<AuthEvent>,
    subscriptions: Vec<Recorded>,
    held: VecDeque<Held>,
    next_id: u64,
    /// The session's event stream ended (it cannot while the session lives): stop
    /// polling it.
    events_closed: bool,
}

/// The longest single timer nap: timers run on a clock that stops during a suspend, so
/// the loop looks again at least this often.
const MAX_NAP: Duration = Duration::from_secs(5);

/// How long a close handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Task {
    async fn run(mut self, ready: oneshot::Sender<Result<()>>) {
        let mut ready = Some(ready);
        let mut attempt = 0u32;
        loop {
            let ended = self.connection(&mut ready, attempt > 0).await;
            match ended {
                Ended::Closed => break,
                Ended::Fatal(error) => {
                    match ready.take() {
                        Some(ready) => {
                            let _ = ready.send(Err(error));
                        }
                        None => {
                            let _ = self.inbound.send(Err(error)).await;
                        }
                    }
                    break;
                }
                Ended::Lost {
                    error,
                    authenticated,
                } => {
                    if let Some(ready) = ready.take() {
                        // The first connection: the caller of `connect` decides.
                        let _ = ready.send(Err(error));
                        break;
                    }
                    tracing::warn!(
                        venue = self.session.venue().as_str(),
                        account = self.session.account(),
                        reason = error.message(),
                        "WebSocket connection lost"
                    );
                    self.session.emit(AuthEvent::WsDisconnected {
                        reason: error.message().to_owned(),
                    });
                    if authenticated {
                        attempt = 0;
                    }
                    attempt = attempt.saturating_add(1);
                    let delay = self.backoff(attempt);
                    self.session.emit(AuthEvent::WsReconnecting {
                        attempt,
                        delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    });
                    self.state.send_replace(WsState::Reconnecting);
                    if !self.wait(delay).await {
                        break;
                    }
                }
            }
        }
        self.state.send_replace(WsState::Closed);
        for held in self.held.drain(..) {
            let _ = held.done.send(Err(closed_error()));
        }
    }

    /// Equal jitter: between half the ceiling and the ceiling, the ceiling doubling per
    /// attempt from `backoff_initial` up to `backoff_max`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .options
            .backoff_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.options.backoff_max);
        ceiling / 2 + (ceiling / 2).mul_f64(rand::random::<f64>())
    }

    /// Waits out a backoff while still taking commands (held for the next connection).
    /// `false`: the caller closed the client.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let expiry = self.next_hold_expiry().unwrap_or(until).min(until);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::Close { done }) => {
                        let _ = done.send(());
                        return false;
                    }
                    Some(Command::Send { message, privacy, subscription, done }) => {
                        self.hold_new(message, privacy, subscription, done);
                    }
                },
                () = tokio::time::sleep_until(expiry) => {
                    self.expire_held();
                    if Instant::now() >= until {
                        return true;
                    }
                }
            }
        }
    }

    /// A send while no connection can take it: it waits in the bounded queue.
    fn hold_new(
        &mut self,
        message: Value,
        privacy: Privacy,
        subscription: bool,
        done: oneshot::Sender<Result<()>>,
    ) {
        let private = is_private(&message, privacy, &self.rules);
        if private && !self.can_auth {
            let _ = done.send(Err(no_private_error(&self.session)));
            return;
        }
        let text = message.to_string();
        self.hold(text, subscription.then_some(message), private, done);
    }

    fn hold(
        &mut self,
        text: String,
        subscription: Option<Value>,
        private: bool,
        done: oneshot::Sender<Result<()>>,
    ) {
        if self.held.len() >= self.options.max_held {
            let _ = done.send(Err(Error::new(
                ErrorKind::Transport,
                "too many WebSocket messages are waiting for the connection to authenticate",
            )));
            return;
        }
        self.held.push_back(Held {
            text,
            subscription,
            private,
            deadline: Instant::now() + self.options.hold_timeout,
            done,
        });
    }

    fn next_hold_expiry(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.deadline).min()
    }

    /// Fails the held messages whose time is up: they were not sent, and will not be.
    fn expire_held(&mut self) {
        let now = Instant::now();
        let timeout = self.options.hold_timeout;
        let mut kept = VecDeque::with_capacity(self.held.len());
        for held in self.held.drain(..) {
            if held.deadline <= now {
                let _ = held.done.send(Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the WebSocket message waited {} ms for an authenticated connection and was not sent",
                        timeout.as_millis()
                    ),
                )));
            } else {
                kept.push_back(held);
            }
        }
        self.held = kept;
    }

    fn next_id(&mut self, what: &str) -> Value {
        self.next_id += 1;
        Value::String(format!("tradeauth-{what}-{}", self.next_id))
    }

    /// One connection, from connect to its end.
    async fn connection(
        &mut self,
        ready: &mut Option<oneshot::Sender<Result<()>>>,
        reconnect: bool,
    ) -> Ended {
        let connect = self.session.connect_ws(&self.path);
        let mut stream = match connect.await {
            Ok(stream) => stream,
            Err(error) => {
                return match error.kind() {
                    ErrorKind::InvalidArgument | ErrorKind::InsecureUrl => Ended::Fatal(error),
                    _ => Ended::Lost {
                        error,
                        authenticated: false,
                    },
                };
            }
        };
        self.session.emit(AuthEvent::WsConnected);
        let now = Instant::now();
        let ping = self
            .options
            .ping_interval
            .unwrap_or(self.options.idle_timeout / 3);
        let mut conn = Conn {
            authenticated: false,
            authed_with: None,
            pending: None,
            replayed_private: false,
            reconnect,
            replays: 0,
            last_frame: now,
            next_ping: now + ping,
            reauth_at: None,
        };
        // Public first (the venue's market data need no auth), then the auth message.
        if let Err(ended) = self.replay(&mut stream, &mut conn, false).await {
            return ended;
        }
        if self.can_auth {
            self.state.send_replace(WsState::Authenticating);
            if let Err(ended) = self.authenticate(&mut stream, &mut conn, None, 1).await {
                return ended;
            }
        } else {
            self.state.send_replace(WsState::Open);
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
            if let Err(ended) = self.flush_held(&mut stream, &mut conn).await {
                return ended;
            }
        }
        loop {
            let wake = self.next_wake(&conn);
            tokio::select! {
                biased;
                frame = stream.next() => {
                    let step = match frame {
                        Some(Ok(message)) => {
                            conn.last_frame = Instant::now();
                            self.on_frame(&mut stream, &mut conn, ready, message).await
                        }
                        Some(Err(e)) => Err(lost(&conn, format!("WebSocket read failed: {e}"))),
                        None => Err(lost(&conn, "the venue closed the WebSocket".to_owned())),
                    };
                    if let Err(ended) = step {
                        return ended;
                    }
                }
                command = self.commands.recv() => {
                    let step = match command {
                        None => Err(Ended::Closed),
                        Some(Command::Close { done }) => {
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.close(None)).await;
                            let _ = done.send(());
                            Err(Ended::Closed)
                        }
                        Some(Command::Send { message, privacy, subscription, done }) => {
                            self.on_send(&mut stream, &mut conn, message, privacy, subscription, done).await
                        }
                    };
                    if let Err(ended) = step {
                        return ended;
                    }
                }
                event = self.events.recv(), if !self.events_closed => {
                    if matches!(event, Err(broadcast::error::RecvError::Closed)) {
                        self.events_closed = true;
                        continue;
                    }
                    // A renewal (or missed events): authenticate again if the session now
                    // serves another credential.
                    let renewed = matches!(
                        event,
                        Ok(AuthEvent::LoggedIn | AuthEvent::Refreshed | AuthEvent::ReLoggedIn)
                            | Err(broadcast::error::RecvError::Lagged(_))
                    );
                    if renewed && let Err(ended) = self.reauth_if_renewed(&mut stream, &mut conn).await {
                        return ended;
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if let Err(ended) = self.on_timer(&mut stream, &mut conn).await {
                        return ended;
                    }
                }
            }
        }
    }

    fn next_wake(&self, conn: &Conn) -> Instant {
        let now = Instant::now();
        let mut wake = now + MAX_NAP;
        wake = wake.min(conn.next_ping);
        wake = wake.min(conn.last_frame + self.options.idle_timeout);
        if let Some(pending) = &conn.pending {
            wake = wake.min(pending.deadline);
        }
        if let Some(at) = conn.reauth_at {
            wake = wake.min(at);
        }
        if let Some(at) = self.next_hold_expiry() {
            wake = wake.min(at);
        }
        wake
    }

    async fn on_timer(&mut self, stream: &mut WsStream, conn: &mut Conn) -> Step {
        let now = Instant::now();
        self.expire_held();
        if now >= conn.last_frame + self.options.idle_timeout {
            return Err(lost(
                conn,
                format!(
                    "no WebSocket frame for {} ms (the venue went silent)",
                    self.options.idle_timeout.as_millis()
                ),
            ));
        }
        if let Some(pending) = &conn.pending
            && now >= pending.deadline
        {
            return Err(Ended::Lost {
                error: Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the venue did not answer the WebSocket auth message within {} ms",
                        self.options.auth_timeout.as_millis()
                    ),
                ),
                authenticated: conn.authenticated,
            });
        }
        if now >= conn.next_ping {
            conn.next_ping = now
                + self
                    .options
                    .ping_interval
                    .unwrap_or(self.options.idle_timeout / 3);
            write(stream, Message::Ping(Vec::new().into()), conn).await?;
        }
        if conn.reauth_at.is_some_and(|at| now >= at) && conn.pending.is_none() {
            conn.reauth_at = None;
            let Some(authed) = conn.authed_with.clone() else {
                return Ok(());
            };
            let renewed = self
                .session
                .current()
                .filter(|current| current.header_value() != authed.header_value());
            if let Some(current) = renewed {
                return self.authenticate(stream, conn, Some(current), 1).await;
            }
            if last_moment(&authed).is_some_and(|at| now >= at) {
                // Still the same credential, near its end, and no renewal came: renew
                // now (shared with any HTTP caller doing the same).
                return match self.fresh_credential(true).await {
                    Ok(credential) => self.authenticate(stream, conn, Some(credential), 1).await,
                    Err(error) => Err(self.credential_failure(error, conn)),
                };
            }
            conn.reauth_at = self.reauth_at(&authed).await;
        }
        Ok(())
    }

    /// If the session serves a credential other than the one this connection
    /// authenticated with, authenticates again with it, on the open connection.
    /// Otherwise schedules the next look.
    async fn reauth_if_renewed(&mut self, stream: &mut WsStream, conn: &mut Conn) -> Step {
        if !conn.authenticated || conn.pending.is_some() {
            return Ok(());
        }
        let Some(authed) = conn.authed_with.clone() else {
            return Ok(());
        };
        match self.session.current() {
            Some(current) if current.header_value() != authed.header_value() => {
                self.authenticate(stream, conn, Some(current), 1).await
            }
            _ => {
                conn.reauth_at = self.reauth_at(&authed).await;
                Ok(())
            }
        }
    }

    /// When to look again at the credential a connection authenticated with: the
    /// session's renewal deadline, and at the latest shortly before that credential's end.
    async fn reauth_at(&self, authed: &Credential) -> Option<Instant> {
        let now = Instant::now();
        let latest = last_moment(authed)?;
        let renewal = self.session.ws_reauth_due().await.map(to_tokio);
        Some(match renewal {
            // Just after the renewal is due: by then the refresher has the new credential.
            Some(at) if at + Duration::from_millis(50) < latest => {
                (at + Duration::from_millis(50)).max(now + Duration::from_millis(50))
            }
            _ => latest.max(now),
        })
    }

    /// A credential to authenticate with: the session's, never an expired one. `renew`:
    /// the current one is near its end, renew it now.
    async fn fresh_credential(&self, renew: bool) -> Result<Arc<Credential>> {
        let budget = self.session.inner.options.auth_timeout;
        let work = async {
            if renew {
                self.session.refresh().await
            } else {
                self.session.credential().await
            }
        };
        tokio::time::timeout(budget, work)
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "renewing the credential timed out"))?
    }

    /// A failure to obtain a credential: a refused login cannot be fixed by retrying
    /// (close for good); a venue outage can (reconnect later).
    fn credential_failure(&self, error: Error, conn: &Conn) -> Ended {
        match error.kind() {
            ErrorKind::Unauthorized | ErrorKind::InvalidArgument | ErrorKind::Signing => {
                Ended::Fatal(error)
            }
            _ => Ended::Lost {
                error,
                authenticated: conn.authenticated,
            },
        }
    }

    /// Sends the auth message with `credential` (or the session's current one).
    async fn authenticate(
        &mut self,
        stream: &mut WsStream,
        conn: &mut Conn,
        credential: Option<Arc<Credential>>,
        tries: u32,
    ) -> Step {
        let credential = match credential {
            Some(c) if c.is_valid_now() => c,
            _ => match self.fresh_credential(false).await {
                Ok(c) => c,
                Err(error) => return Err(self.credential_failure(error, conn)),
            },
        };
        let id = self.next_id("auth");
        let text = match self
            .session
            .ws_auth_message_with(&credential, id.clone())
            .await
        {
            Ok(text) => text,
            Err(error) => return Err(Ended::Fatal(error)),
        };
        write(stream, Message::text(text), conn).await?;
        conn.pending = Some(PendingAuth {
            id,
            credential,
            deadline: Instant::now() + self.options.auth_timeout,
            tries,
        });
        Ok(())
    }

    async fn on_frame(
        &mut self,
        stream: &mut WsStream,
        conn: &mut Conn,
        ready: &mut Option<oneshot::Sender<Result<()>>>,
        message: Message,
    ) -> Step {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => {
                return Err(lost(conn, "the venue closed the WebSocket".to_owned()));
            }
            // Pings are answered by tungstenite; any frame counts as life.
            _ => return Ok(()),
        };
        let text = text.as_str();
        if let Some(pending) = &conn.pending {
            let id = pending.id.clone();
            match self.session.handle_ws_auth_reply(text, &id).await {
                WsAuthReply::Authenticated { .. } => {
                    return self.authenticated(stream, conn, ready).await;
                }
                WsAuthReply::Rejected { message } => {
                    return self.rejected(stream, conn, ready, message).await;
                }
                WsAuthReply::Unrelated => {}
            }
        }
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        if let Some(value) = &parsed {
            // The answer to a subscription the client replayed (an id of its own): a
            // success is consumed; an error goes to the caller, who should know.
            if let Some(Value::String(id)) = (self.rules.reply_id)(value)
                && id.starts_with("tradeauth-")
                && value.get("error").is_none()
            {
                return Ok(());
            }
        }
        let refused = conn.authenticated
            && conn.pending.is_none()
            && parsed
                .as_ref()
                .is_some_and(|v| (self.rules.refuses_credential)(v));
        self.deliver(text.to_owned()).await?;
        if refused && self.renewable {
            // The venue dropped the credential under an open connection (a revocation):
            // hold private traffic, renew once (single flight with HTTP), authenticate.
            conn.authenticated = false;
            self.state.send_replace(WsState::Authenticating);
            if let Some(authed) = conn.authed_with.take() {
                self.session.invalidate(&authed).await;
            }
            self.authenticate(stream, conn, None, 2).await?;
        }
        Ok(())
    }

    async fn deliver(&self, text: String) -> Step {
        // Backpressure: wait for the caller rather than drop a message.
        self.inbound.send(Ok(text)).await.map_err(|_| Ended::Closed)
    }

    async fn authenticated(
        &mut self,
        stream: &mut WsStream,
        conn: &mut Conn,
        ready: &mut Option<oneshot::Sender<Result<()>>>,
    ) -> Step {
        let Some(pending) = conn.pending.take() else {
            return Ok(());
        };
        conn.authenticated = true;
        conn.authed_with = Some(Arc::clone(&pending.credential));
        self.state.send_replace(WsState::Authenticated);
        self.session.emit(AuthEvent::WsAuthenticated);
        if !conn.replayed_private {
            conn.replayed_private = true;
            self.replay(stream, conn, true).await?;
            if conn.reconnect && conn.replays > 0 {
                self.session.emit(AuthEvent::WsResubscribed {
                    count: conn.replays,
                });
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
        self.flush_held(stream, conn).await?;
        conn.reauth_at = self.reauth_at(&pending.credential).await;
        Ok(())
    }

    async fn rejected(
        &mut self,
        stream: &mut WsStream,
        conn: &mut Conn,
        ready: &mut Option<oneshot::Sender<Result<()>>>,
        reason: String,
    ) -> Step {
        let Some(pending) = conn.pending.take() else {
            return Ok(());
        };
        tracing::warn!(venue = self.session.venue().as_str(),
            account = self.session.account(), reason = %reason,
            "WebSocket authentication rejected");
        self.session.emit(AuthEvent::WsRejected {
            reason: reason.clone(),
        });
        conn.authenticated = false;
        self.state.send_replace(WsState::Authenticating);
        if self.renewable && pending.tries < 2 {
            // Renew once (the machine already dropped a refused token) and try again on
            // this connection.
            self.session.invalidate(&pending.credential).await;
            return self
                .authenticate(stream, conn, None, pending.tries + 1)
                .await;
        }
        let error = Error::new(
            ErrorKind::Unauthorized,
            format!("WebSocket authentication rejected: {reason}"),
        );
        if ready.is_some() || !self.renewable {
            return Err(Ended::Fatal(error));
        }
        Err(Ended::Lost {
            error,
            authenticated: false,
        })
    }

    /// Sends the recorded subscriptions of one kind (public or private), in order;
    /// JSON-RPC ones get ids of the client's own on a reconnect.
    async fn replay(&mut self, stream: &mut WsStream, conn: &mut Conn, private: bool) -> Step {
        for i in 0..self.subscriptions.len() {
            if self.subscriptions[i].private != private {
                continue;
            }
            let message = &self.subscriptions[i].message;
            let text = if conn.reconnect {
                let id = self.next_id("sub");
                let message = &self.subscriptions[i].message;
                (self.rules.with_id)(message, id)
                    .unwrap_or_else(|| message.clone())
                    .to_string()
            } else {
                message.to_string()
            };
            write(stream, Message::text(text), conn).await?;
            conn.replays += 1;
        }
        Ok(())
    }

    /// Sends the held messages the connection may now carry, in the order they came.
    async fn flush_held(&mut self, stream: &mut WsStream, conn: &mut Conn) -> Step {
        let mut kept = VecDeque::with_capacity(self.held.len());
        while let Some(held) = self.held.pop_front() {
            if held.private && !conn.authenticated {
                kept.push_back(held);
                continue;
            }
            match write(stream, Message::text(held.text), conn).await {
                Ok(()) => {
                    if let Some(message) = held.subscription {
                        self.subscriptions.push(Recorded {
                            message,
                            private: held.private,
                        });
                    }
                    let _ = held.done.send(Ok(()));
                }
                Err(ended) => {
                    // Written or not is unknown: say so rather than send it twice.
                    let _ = held.done.send(Err(Error::new(
                        ErrorKind::Transport,
                        "the WebSocket connection failed while sending; the message may not have arrived",
                    )));
                    kept.extend(self.held.drain(..));
                    self.held = kept;
                    return Err(ended);
                }
            }
        }
        self.held = kept;
        Ok(())
    }

    async fn on_send(
        &mut self,
        stream: &mut WsStream,
        conn: &mut Conn,
        message: Value,
        privacy: Privacy,
        subscription: bool,
        done: oneshot::Sender<Result<()>>,
    ) -> Step {
        let private = is_private(&message, privacy, &self.rules);
        if private && !self.can_auth {
            let _ = done.send(Err(no_private_error(&self.session)));
            return Ok(());
        }
        let text = message.to_string();
        if private && !conn.authenticated {
            // Before auth (or while renewing after a refusal): wait for it.
            self.hold(text, subscription.then_some(message), private, done);
            return Ok(());
        }
        match write(stream, Message::text(text), conn).await {
            Ok(()) => {
                if subscription {
                    self.subscriptions.push(Recorded { message, private });
                }
                let _ = done.send(Ok(()));
                Ok(())
            }
            Err(ended) => {
                let _ = done.send(Err(Error::new(
                    ErrorKind::Transport,
                    "the WebSocket connection failed while sending; the message may not have arrived",
                )));
                Err(ended)
            }
        }
    }
}

type Step = std::result::Result<(), Ended>;

/// A deadline-clock instant (the clock credentials use, which counts a suspend) as a
/// tokio instant, for timers.
fn to_tokio(at: std::time::Instant) -> Instant {
    Instant::now() + at.saturating_duration_since(crate::time::deadline_now())
}

/// The last moment to renew a credential on our own before it ends: a tenth of what is
/// left of it before its end, between 0.5 s and 30 s.
fn last_moment(credential: &Credential) -> Option<Instant> {
    let until = credential.valid_until()?;
    let left = until.saturating_duration_since(crate::time::deadline_now());
    let margin = (left / 10).clamp(Duration::from_millis(500), Duration::from_secs(30));
    Some(to_tokio(until) - margin.min(left))
}

fn lost(conn: &Conn, reason: String) -> Ended {
    Ended::Lost {
        error: Error::new(ErrorKind::Transport, reason),
        authenticated: conn.authenticated,
    }
}

fn no_private_error(session: &Session) -> Error {
    Error::invalid_argument(format!(
        "this {} session cannot authenticate a WebSocket; a private message is not sent",
        session.venue().display_name()
    ))
}

/// Writes one frame, bounded: a peer that stops reading cannot stall the client.
async fn write(stream: &mut WsStream, message: Message, conn: &Conn) -> Step {
    match tokio::time::timeout(Duration::from_secs(10), stream.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(lost(conn, format!("WebSocket send failed: {e}"))),
        Err(_) => Err(lost(conn, "WebSocket send timed out".to_owned())),
    }
}
