//! The viewer's side of a connection to an engine (natively): connect and
//! read the handshake, then one thread owns the socket — it sends the app's
//! requests, checks every message ([`Session`]) and hands good frames to the
//! app through the same bounded channel the built-in engine uses. While that
//! channel is full the thread stops reading, so the socket's buffers fill and
//! the engine waits: memory stays bounded however fast the engine is.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::session::{Received, Session, read_hello};
pub use super::session::{capture_wants, viewer_wants};
use super::{EngineError, TokenTexts, protocol};
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
    pub hello: protocol::Hello,
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
            Ok(Message::Binary(bytes)) => break read_hello(url, &bytes)?,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Text(_)) => return Err(fail("a text message instead of the binary handshake".into())),
            Ok(_) => return Err(fail("the connection closed before the handshake".into())),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                return Err(fail(format!("no handshake within {} s", CONNECT_TIMEOUT.as_secs())));
            }
            Err(e) => return Err(fail(format!("the connection failed before the handshake ({e})"))),
        }
    };
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

/// Runs the connection on its own thread; the app talks to it as to any
/// [`Worker`]. `stall`: how long a run may go without a message.
pub fn spawn(connection: Connection, want: protocol::Want, stall: Duration) -> (Worker, Arc<TokenTexts>) {
    let (requests, inbox) = std::sync::mpsc::channel::<(u64, RunRequest)>();
    let (tx, frames) = sync_channel(CHANNEL_CAPACITY);
    let latest = Arc::new(AtomicU64::new(0));
    let texts = Arc::new(TokenTexts::default());
    let link = Link {
        session: Session::new(connection.url, connection.hello, want),
        socket: connection.socket,
        stall,
        inbox,
        tx,
        latest: latest.clone(),
        texts: texts.clone(),
    };
    let started = std::thread::Builder::new()
        .name("tensorcity-engine".into())
        .spawn(move || link.serve());
    // Without a thread the link (and its sender) is gone: the worker's first drain says it stopped.
    drop(started);
    let post: Box<dyn FnMut(u64, RunRequest) + Send> = Box::new(move |run, request| {
        let _ = requests.send((run, request));
    });
    (Worker::remote(post, frames, latest), texts)
}

struct Link {
    session: Session,
    socket: WebSocket<TcpStream>,
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
    /// The connection is unusable; the reason is for the user.
    Lost(String),
}

impl Link {
    fn serve(mut self) {
        let end = self.pump();
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
        let End::Lost(why) = end else { return };
        let message = self.session.lost(&why);
        // The run going on fails with the reason; later requests get it too.
        let mut run = self.session.run();
        while self.forward(ActivationFrame {
            run,
            data: FrameData::Failed(message.clone()),
        }) {
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
                        heard = Instant::now();
                        match self.session.request(run, request) {
                            Ok(messages) => {
                                for m in messages {
                                    if let Err(e) = self.send(m) {
                                        return End::Lost(e);
                                    }
                                }
                            }
                            Err(failed) => {
                                if !self.forward(failed) {
                                    return End::AppGone;
                                }
                            }
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return End::AppGone,
                }
            }
            let received = match self.socket.read() {
                Ok(Message::Binary(bytes)) => {
                    heard = Instant::now();
                    self.session.receive(&bytes)
                }
                Ok(Message::Text(_)) => self.session.text_message(),
                Ok(Message::Close(_)) => return End::Lost("closed the connection".into()),
                Ok(_) => Received::Dropped,
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                    if !(self.session.running() && heard.elapsed() > self.stall) {
                        continue;
                    }
                    let (cancel, failed) = self.session.stalled(self.stall.as_secs());
                    Received::Broken { cancel, failed }
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    return End::Lost(format!("sent a message over the limit ({e})"));
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return End::Lost("closed the connection".into());
                }
                Err(e) => return End::Lost(format!("dropped the connection ({e})")),
            };
            let delivered = match received {
                Received::Frame(frame) => self.forward(frame),
                Received::Texts(texts) => {
                    self.texts.insert(texts);
                    true
                }
                Received::Dropped => true,
                Received::Broken { cancel, failed } => {
                    let _ = self.send(cancel);
                    self.forward(failed)
                }
            };
            if !delivered {
                return End::AppGone;
            }
        }
    }

    fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.socket
            .send(Message::Binary(bytes.into()))
            .map_err(|e| format!("could not be sent a request ({e})"))
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
