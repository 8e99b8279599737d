//! The viewer's side of a connection to an engine (natively): connect and
//! read the handshake, then one thread owns the socket — it sends the app's
//! requests (cancelling the run still going), checks every frame
//! ([`RunCheck`]) and hands good ones to the app through the same bounded
//! channel the built-in engine uses. While that channel is full the thread
//! stops reading, so the socket's buffers fill and the engine waits: memory
//! stays bounded however fast the engine is.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::check::{RunCheck, Verdict};
use super::protocol::{self, EngineMessage, Hello, PROTOCOL_VERSION, Want};
use super::{EngineError, TokenTexts};
use crate::inference::stream::{ActivationFrame, CHANNEL_CAPACITY, FrameData, RunRequest, Worker};

/// How long connecting and the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a running engine may send nothing before the run is called stalled.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);
/// How often the connection thread looks for new requests while reading.
const POLL: Duration = Duration::from_millis(20);

/// An open connection whose handshake has been read.
pub struct Connection {
    pub url: String,
    pub hello: Hello,
    socket: WebSocket<TcpStream>,
}

/// Connects to `url` (`ws://HOST:PORT[/path]`) and reads the engine's handshake.
pub fn connect(url: &str) -> Result<Connection, EngineError> {
    let fail = |detail: String| EngineError::Connect {
        url: url.to_string(),
        detail,
    };
    let rest = match url.split_once("://") {
        Some(("ws", rest)) => rest,
        Some(("wss", _)) => {
            return Err(fail(
                "wss:// (TLS) is not supported; connect with ws:// through an SSH tunnel (ssh -L 7878:localhost:7878 HOST)".into(),
            ));
        }
        _ => return Err(fail("not a ws://HOST:PORT address".into())),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve `{authority}` ({e})")))?
        .collect();
    let stream = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, CONNECT_TIMEOUT).ok())
        .ok_or_else(|| {
            fail(
                "nothing accepts connections there; is the engine running (python -m tensorcity_stream serve MODEL)?"
                    .into(),
            )
        })?;
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .and_then(|_| stream.set_nodelay(true))
        .map_err(|e| fail(e.to_string()))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(protocol::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(protocol::MAX_MESSAGE_BYTES));
    let (mut socket, _) = tungstenite::client::client_with_config(url, stream, Some(config))
        .map_err(|e| fail(format!("the WebSocket handshake failed ({e})")))?;
    let hello = loop {
        match socket.read() {
            Ok(Message::Binary(bytes)) => match protocol::decode_engine_message(&bytes) {
                Ok(EngineMessage::Hello(hello)) => break *hello,
                Ok(_) => return Err(fail("the engine sent a frame before its handshake".into())),
                Err(e) => return Err(fail(format!("the engine sent {e}"))),
            },
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => return Err(fail(format!("expected the binary handshake, got {}", describe(&other)))),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                return Err(fail(format!("no handshake within {} s", CONNECT_TIMEOUT.as_secs())));
            }
            Err(e) => return Err(fail(format!("the connection failed before the handshake ({e})"))),
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(fail(format!(
            "the engine speaks protocol version {}, this viewer version {PROTOCOL_VERSION}; update the one that is older",
            hello.protocol
        )));
    }
    socket
        .get_mut()
        .set_read_timeout(Some(POLL))
        .map_err(|e| fail(e.to_string()))?;
    Ok(Connection {
        url: url.to_string(),
        hello,
        socket,
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn describe(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "a text message (the protocol's messages are binary)",
        Message::Close(_) => "the connection closing",
        _ => "a control message",
    }
}

/// The activations the viewer asks an engine for.
pub fn viewer_wants(hello: &Hello) -> Want {
    let can = |tap: &str| hello.can.taps.iter().any(|t| t == tap);
    Want {
        hidden: can("hidden"),
        attention: can("attention"),
        mlp: can("mlp"),
        router: can("router"),
        logits: can("logits"),
        lens: can("lens"),
        ..Want::default()
    }
}

/// Runs the connection on its own thread; the app talks to it as to any
/// [`Worker`]. `stall`: how long a run may go without a message.
pub fn spawn(connection: Connection, want: Want, stall: Duration) -> (Worker, Arc<TokenTexts>) {
    let (requests, inbox) = std::sync::mpsc::channel::<(u64, RunRequest)>();
    let (tx, frames) = sync_channel(CHANNEL_CAPACITY);
    let latest = Arc::new(AtomicU64::new(0));
    let texts = Arc::new(TokenTexts::default());
    let link = Link {
        check: RunCheck::new(connection.hello.dims),
        connection,
        want,
        stall,
        inbox,
        tx,
        latest: latest.clone(),
        texts: texts.clone(),
    };
    let started = std::thread::Builder::new()
        .name("tensorcity-engine".into())
        .spawn(move || link.serve());
    let post: Box<dyn FnMut(u64, RunRequest) + Send> = Box::new(move |run, request| {
        let _ = requests.send((run, request));
    });
    // Without a thread the link (and its sender) is gone: the worker's first drain says it stopped.
    drop(started);
    (Worker::remote(post, frames, latest), texts)
}

struct Link {
    connection: Connection,
    check: RunCheck,
    want: Want,
    stall: Duration,
    inbox: Receiver<(u64, RunRequest)>,
    tx: SyncSender<ActivationFrame>,
    latest: Arc<AtomicU64>,
    texts: Arc<TokenTexts>,
}

/// Why the connection loop stopped.
enum End {
    /// The app dropped its worker.
    AppGone,
    /// The connection is unusable; the message is for the user.
    Lost(String),
}

impl Link {
    fn serve(mut self) {
        let why = match self.pump() {
            End::AppGone => {
                let _ = self.connection.socket.close(None);
                let _ = self.connection.socket.flush();
                return;
            }
            End::Lost(why) => why,
        };
        let _ = self.connection.socket.close(None);
        let message = format!(
            "the engine at {}: {why}; what arrived is kept — reconnect from the model panel (Engine) or restart the engine",
            self.connection.url
        );
        // The run going on fails with the reason; later requests get it too.
        let mut run = self.check.run();
        loop {
            if !self.forward(ActivationFrame {
                run,
                data: FrameData::Failed(message.clone()),
            }) {
                return;
            }
            match self.inbox.recv() {
                Ok((next, _)) => run = next,
                Err(_) => return,
            }
        }
    }

    fn pump(&mut self) -> End {
        let mut heard = Instant::now();
        loop {
            loop {
                match self.inbox.try_recv() {
                    Ok((run, request)) => {
                        if let Err(e) = self.request(run, request) {
                            return End::Lost(e);
                        }
                        heard = Instant::now();
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return End::AppGone,
                }
            }
            match self.connection.socket.read() {
                Ok(Message::Binary(bytes)) => {
                    heard = Instant::now();
                    if let Some(end) = self.message(&bytes) {
                        return end;
                    }
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Text(_)) => {
                    return End::Lost("sent a text message (the protocol's messages are binary)".into());
                }
                Ok(Message::Close(_)) => return End::Lost("closed the connection".into()),
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                    if !self.check.ended() && heard.elapsed() > self.stall {
                        let _ = self.send(protocol::encode_cancel(self.check.run()));
                        self.check.abandon();
                        let quiet = format!(
                            "run {} stalled: the engine at {} sent nothing for {} s; it may be stuck or overloaded — check its console",
                            self.check.run(),
                            self.connection.url,
                            self.stall.as_secs()
                        );
                        let run = self.check.run();
                        if !self.forward(ActivationFrame {
                            run,
                            data: FrameData::Failed(quiet),
                        }) {
                            return End::AppGone;
                        }
                    }
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    return End::Lost(format!("sent a message over the limit ({e})"));
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return End::Lost("closed the connection".into());
                }
                Err(e) => return End::Lost(format!("dropped the connection ({e})")),
            }
        }
    }

    fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.connection
            .socket
            .send(Message::Binary(bytes.into()))
            .map_err(|e| format!("could not be sent a request ({e})"))
    }

    fn request(&mut self, run: u64, request: RunRequest) -> Result<(), String> {
        if !self.check.ended() {
            self.send(protocol::encode_cancel(self.check.run()))?;
        }
        let hello = &self.connection.hello;
        let failed = |message: String| ActivationFrame {
            run,
            data: FrameData::Failed(message),
        };
        let text_ok = request.text.is_none() || hello.can.text;
        let generate_ok = request.new_tokens == 0 || hello.can.generate;
        if !text_ok || !generate_ok {
            let what = if text_ok { "generate" } else { "tokenize text" };
            self.check.start(run, None);
            self.check.abandon();
            self.forward(failed(format!("the engine `{}` cannot {what}", hello.engine)));
            return Ok(());
        }
        let message = protocol::Run {
            run,
            tokens: request.text.is_none().then_some(request.tokens),
            text: request.text,
            generate: request.new_tokens,
            decoding: request.decoding.into(),
            want: self.want.clone(),
        };
        self.check.start(run, self.want.heads.as_ref().map(Vec::len));
        self.send(protocol::encode_run(&message))
    }

    /// Handles one engine message; `Some` ends the connection.
    fn message(&mut self, bytes: &[u8]) -> Option<End> {
        let url = self.connection.url.clone();
        let verdict = match protocol::decode_engine_message(bytes) {
            Ok(EngineMessage::Frame(frame)) => match self.check.frame(&frame) {
                Ok(Verdict::Pass) => {
                    return (!self.forward(frame)).then_some(End::AppGone);
                }
                v => v,
            },
            Ok(EngineMessage::Texts { run, texts }) => match self.check.texts(run, &texts) {
                Ok(Verdict::Pass) => {
                    self.texts.insert(texts);
                    return None;
                }
                v => v,
            },
            Ok(EngineMessage::Hello(_)) => Err("a second handshake".into()),
            Err(e) => Err(e.0),
        };
        match verdict {
            Ok(_) => None,
            Err(problem) => {
                // A broken frame ends this run, not the connection.
                let run = self.check.run();
                let _ = self.send(protocol::encode_cancel(run));
                self.check.abandon();
                let message = format!(
                    "the engine at {url} sent {problem}; run {run} stopped (what arrived is kept) — the engine has a bug or another protocol version"
                );
                (!self.forward(ActivationFrame {
                    run,
                    data: FrameData::Failed(message),
                }))
                .then_some(End::AppGone)
            }
        }
    }

    /// Hands a frame to the app, waiting while its channel is full (the
    /// engine then waits on the socket). A newer request makes it stale.
    fn forward(&self, frame: ActivationFrame) -> bool {
        let mut frame = frame;
        loop {
            if self.latest.load(Ordering::SeqCst) > frame.run {
                return true;
            }
            match self.tx.try_send(frame) {
                Ok(()) => return true,
                Err(TrySendError::Full(f)) => {
                    frame = f;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    }
}
