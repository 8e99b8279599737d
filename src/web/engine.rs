//! The browser's engine client (`?engine=ws://HOST:PORT`, or the model
//! panel's Engine field): a WebSocket whose first message is the handshake
//! (the page draws the architecture from it), then the same [`Session`] the
//! desktop client uses checks every message in the socket's callbacks and
//! hands frames to the app. The connection opened for the handshake is kept
//! for the runs. A browser WebSocket has no flow control, so frames are queued
//! unbounded here (the app takes all that arrived each frame); each one is
//! bounded by the protocol's size checks.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bevy::tasks::BoxedFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::activations::Connected;
use crate::arch::{ArchError, Architecture};
use crate::engine::protocol::Hello;
use crate::engine::session::{Received, Session, read_hello, viewer_wants};
use crate::engine::{EngineError, TokenTexts};
use crate::inference::stream::{ActivationFrame, FrameData, RunRequest, Worker};

/// How long the page waits for a handshake.
const HELLO_TIMEOUT_MS: i32 = 10_000;
/// How long a running engine may send nothing before the run is called
/// stalled (as on the desktop), and how often the page looks.
const STALL_SECS: u64 = 60;
const STALL_CHECK_MS: i32 = 1_000;

struct Link {
    url: String,
    ws: web_sys::WebSocket,
    /// The handshake (or why there is none), once the first message came.
    hello: Option<Result<Hello, EngineError>>,
    /// Resolves the page's wait for the handshake.
    wake: Option<js_sys::Function>,
    /// Once the app's worker is attached.
    session: Option<Session>,
    tx: Option<std::sync::mpsc::Sender<ActivationFrame>>,
    texts: Arc<TokenTexts>,
    /// Why the connection is gone.
    lost: Option<String>,
    /// When the engine was last heard from (or the last request went out), ms on the page's clock.
    heard: f64,
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

impl Link {
    /// Gives up on a run the engine has sent nothing for in [`STALL_SECS`].
    fn check_stall(&mut self) {
        let Some(session) = &mut self.session else { return };
        if self.lost.is_some() || !session.running() || now_ms() - self.heard < STALL_SECS as f64 * 1000.0 {
            return;
        }
        let (cancel, failed) = session.stalled(STALL_SECS);
        let _ = self.ws.send_with_u8_array(&cancel);
        self.to_app(failed);
    }

    fn woken(&mut self) {
        if let Some(wake) = self.wake.take() {
            let _ = wake.call0(&JsValue::NULL);
        }
    }

    fn to_app(&self, frame: ActivationFrame) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(frame);
        }
    }

    fn message(&mut self, bytes: Option<Vec<u8>>) {
        self.heard = now_ms();
        if self.hello.is_none() {
            self.hello = Some(match &bytes {
                Some(bytes) => read_hello(&self.url, bytes),
                None => Err(EngineError::Connect {
                    url: self.url.clone(),
                    detail: "a text message instead of the binary handshake".into(),
                }),
            });
            self.woken();
            return;
        }
        let Some(session) = &mut self.session else { return };
        let received = match bytes {
            Some(bytes) => session.receive(&bytes),
            None => session.text_message(),
        };
        match received {
            Received::Frame(frame) => self.to_app(frame),
            Received::Texts(texts) => self.texts.insert(texts),
            Received::Dropped => {}
            Received::Broken { cancel, failed } => {
                let _ = self.ws.send_with_u8_array(&cancel);
                self.to_app(failed);
            }
        }
    }

    fn closed(&mut self, why: &str) {
        self.lost = Some(why.to_string());
        if self.hello.is_none() {
            self.hello = Some(Err(EngineError::Connect {
                url: self.url.clone(),
                detail: format!("{why}; is the engine running (python -m tensorcity_stream serve MODEL)?"),
            }));
            self.woken();
        }
        if let Some(session) = &self.session {
            self.to_app(ActivationFrame {
                run: session.run(),
                data: FrameData::Failed(session.lost(why)),
            });
        }
    }
}

/// The page's connection and its callbacks.
struct Socket {
    link: Rc<RefCell<Link>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_close: Closure<dyn FnMut(web_sys::CloseEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    _stall_check: Closure<dyn FnMut()>,
    interval: Option<i32>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let (Some(window), Some(id)) = (web_sys::window(), self.interval) {
            window.clear_interval_with_handle(id);
        }
        let _ = self.link.borrow().ws.close();
    }
}

thread_local! {
    static SOCKET: RefCell<Option<Socket>> = const { RefCell::new(None) };
}

fn open_socket(url: &str) -> Result<Rc<RefCell<Link>>, EngineError> {
    let ws = web_sys::WebSocket::new(url).map_err(|e| EngineError::Connect {
        url: url.to_string(),
        detail: format!("not a WebSocket address ({})", super::embedded::js_text(&e)),
    })?;
    ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
    let link = Rc::new(RefCell::new(Link {
        url: url.to_string(),
        ws: ws.clone(),
        hello: None,
        wake: None,
        session: None,
        tx: None,
        texts: Arc::new(TokenTexts::default()),
        lost: None,
        heard: now_ms(),
    }));
    let on = link.clone();
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let bytes = event
            .data()
            .dyn_into::<js_sys::ArrayBuffer>()
            .ok()
            .map(|b| js_sys::Uint8Array::new(&b).to_vec());
        on.borrow_mut().message(bytes);
    });
    let on = link.clone();
    let on_close = Closure::<dyn FnMut(web_sys::CloseEvent)>::new(move |_: web_sys::CloseEvent| {
        on.borrow_mut().closed("closed the connection");
    });
    let on = link.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        on.borrow_mut().closed("the connection failed");
    });
    let on = link.clone();
    let stall_check = Closure::<dyn FnMut()>::new(move || on.borrow_mut().check_stall());
    let interval = web_sys::window().and_then(|w| {
        w.set_interval_with_callback_and_timeout_and_arguments_0(stall_check.as_ref().unchecked_ref(), STALL_CHECK_MS)
            .ok()
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    SOCKET.with(|s| {
        *s.borrow_mut() = Some(Socket {
            link: link.clone(),
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
            _stall_check: stall_check,
            interval,
        })
    });
    Ok(link)
}

/// The handshake of the engine at `url`: the open connection's when it is
/// that engine's and still up, else a new connection's.
async fn hello(url: String) -> Result<(Hello, Rc<RefCell<Link>>), EngineError> {
    let current = SOCKET.with(|s| {
        s.borrow()
            .as_ref()
            .map(|s| s.link.clone())
            .filter(|l| l.borrow().url == url && l.borrow().lost.is_none())
    });
    let link = match current {
        Some(link) => link,
        None => open_socket(&url)?,
    };
    if link.borrow().hello.is_none() {
        let wait = link.clone();
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, HELLO_TIMEOUT_MS);
            }
            wait.borrow_mut().wake = Some(resolve);
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
    let hello = link.borrow().hello.clone();
    match hello {
        Some(Ok(hello)) => Ok((hello, link)),
        Some(Err(e)) => Err(e),
        None => Err(EngineError::Connect {
            url,
            detail: format!("no handshake within {} s", HELLO_TIMEOUT_MS / 1000),
        }),
    }
}

/// For [`crate::model::EngineLoader`]: the architecture from the handshake.
pub fn architecture(url: String) -> BoxedFuture<'static, Result<Architecture, ArchError>> {
    Box::pin(async move {
        let (hello, _) = hello(url.clone()).await?;
        crate::engine::architecture(&hello, &url)
    })
}

/// For [`crate::activations::InferenceBackend`]: the app's worker on the connection.
pub fn connect(url: String) -> BoxedFuture<'static, Result<Connected, EngineError>> {
    Box::pin(async move {
        let (hello, link) = hello(url.clone()).await?;
        let (tx, frames) = std::sync::mpsc::channel();
        let engine = hello.engine.clone();
        let texts = {
            let mut l = link.borrow_mut();
            l.session = Some(Session::new(url, hello.clone(), viewer_wants(&hello)));
            l.tx = Some(tx);
            l.texts.clone()
        };
        let post: Box<dyn FnMut(u64, RunRequest) + Send> = Box::new(submit);
        Ok((Worker::remote(post, frames, Arc::new(AtomicU64::new(0))), texts, engine))
    })
}

/// Sends a request on the page's connection (or answers it with why it cannot run).
fn submit(run: u64, request: RunRequest) {
    SOCKET.with(|s| {
        let Some(socket) = s.borrow().as_ref().map(|s| s.link.clone()) else {
            return;
        };
        let mut link = socket.borrow_mut();
        if let Some(why) = link.lost.clone() {
            let message = link.session.as_ref().map(|s| s.lost(&why)).unwrap_or(why);
            link.to_app(ActivationFrame {
                run,
                data: FrameData::Failed(message),
            });
            return;
        }
        link.heard = now_ms();
        let Some(session) = &mut link.session else { return };
        match session.request(run, request) {
            Ok(messages) => {
                for m in messages {
                    let _ = link.ws.send_with_u8_array(&m);
                }
            }
            Err(failed) => link.to_app(failed),
        }
    });
}
