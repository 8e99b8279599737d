//! One viewer's side of a connection, without the socket: what to send for
//! a request, and what each received message means for the app. The native
//! client (a thread with a blocking socket) and the browser's (a WebSocket's
//! callbacks) both drive one of these, so they agree on every check and message.

use super::check::{RunCheck, Verdict};
use super::protocol::{self, EngineMessage, Hello, Want};
use crate::inference::stream::{ActivationFrame, FrameData, RunRequest};

pub struct Session {
    pub url: String,
    pub hello: Hello,
    pub want: Want,
    check: RunCheck,
}

/// What a received message comes to.
#[derive(Debug)]
pub enum Received {
    /// A checked frame for the app.
    Frame(ActivationFrame),
    /// Token strings to remember.
    Texts(Vec<(u32, String)>),
    /// A frame of an older run, or of one given up on.
    Dropped,
    /// The engine broke the protocol: send `cancel`, give the app `failed`.
    Broken { cancel: Vec<u8>, failed: ActivationFrame },
}

impl Session {
    pub fn new(url: String, hello: Hello, want: Want) -> Session {
        Session {
            check: RunCheck::new(hello.dims),
            url,
            hello,
            want,
        }
    }

    /// The run whose frames are expected.
    pub fn run(&self) -> u64 {
        self.check.run()
    }

    /// The messages to send for a request (a cancel of the run still going,
    /// then the run), or the frame that refuses it at once.
    pub fn request(&mut self, run: u64, request: RunRequest) -> Result<Vec<Vec<u8>>, ActivationFrame> {
        let mut out = Vec::new();
        if !self.check.ended() {
            out.push(protocol::encode_cancel(self.check.run()));
        }
        let can = &self.hello.can;
        let text_ok = request.text.is_none() || can.text;
        let generate_ok = request.new_tokens == 0 || can.generate;
        if !text_ok || !generate_ok {
            self.check.start(run, None);
            self.check.abandon();
            let what = if text_ok {
                "generate (its handshake says so)"
            } else {
                "tokenize text; send token ids"
            };
            return Err(ActivationFrame {
                run,
                data: FrameData::Failed(format!("the engine at {} cannot {what}", self.url)),
            });
        }
        out.push(protocol::encode_run(&protocol::Run {
            run,
            tokens: request.text.is_none().then_some(request.tokens),
            text: request.text,
            generate: request.new_tokens,
            decoding: request.decoding.into(),
            want: self.want.clone(),
        }));
        self.check.start(run, self.want.heads.as_ref().map(Vec::len));
        Ok(out)
    }

    /// Whether a run is going (for stall detection).
    pub fn running(&self) -> bool {
        !self.check.ended()
    }

    /// Gives up on the current run after `secs` without a message.
    pub fn stalled(&mut self, secs: u64) -> (Vec<u8>, ActivationFrame) {
        let run = self.check.run();
        self.check.abandon();
        let message = format!(
            "run {run} stalled: the engine at {} sent nothing for {secs} s; it may be stuck or overloaded — check its console",
            self.url
        );
        (
            protocol::encode_cancel(run),
            ActivationFrame {
                run,
                data: FrameData::Failed(message),
            },
        )
    }

    /// Decodes and checks one binary message from the engine.
    pub fn receive(&mut self, bytes: &[u8]) -> Received {
        let verdict = match protocol::decode_engine_message(bytes) {
            Ok(EngineMessage::Frame(frame)) => match self.check.frame(&frame) {
                Ok(Verdict::Pass) => return Received::Frame(frame),
                v => v,
            },
            Ok(EngineMessage::Texts { run, texts }) => match self.check.texts(run, &texts) {
                Ok(Verdict::Pass) => return Received::Texts(texts),
                v => v,
            },
            Ok(EngineMessage::Hello(_)) => Err("a second handshake".into()),
            Err(e) => Err(e.0),
        };
        match verdict {
            Ok(_) => Received::Dropped,
            Err(problem) => self.broken(&problem),
        }
    }

    /// A message that is not binary.
    pub fn text_message(&mut self) -> Received {
        self.broken("a text message (the protocol's messages are binary)")
    }

    fn broken(&mut self, problem: &str) -> Received {
        // A broken frame ends this run, not the connection.
        let run = self.check.run();
        self.check.abandon();
        Received::Broken {
            cancel: protocol::encode_cancel(run),
            failed: ActivationFrame {
                run,
                data: FrameData::Failed(format!(
                    "the engine at {} sent {problem}; run {run} stopped (what arrived is kept) — the engine has a bug or another protocol version",
                    self.url
                )),
            },
        }
    }

    /// The message for every run once the connection is gone.
    pub fn lost(&self, why: &str) -> String {
        format!(
            "the engine at {}: {why}; what arrived is kept — reconnect from the model panel (Engine) or restart the engine",
            self.url
        )
    }
}

/// Reads a handshake message (the first an engine sends).
pub fn read_hello(url: &str, bytes: &[u8]) -> Result<Hello, super::EngineError> {
    let fail = |detail: String| super::EngineError::Connect {
        url: url.to_string(),
        detail,
    };
    let hello = match protocol::decode_engine_message(bytes) {
        Ok(EngineMessage::Hello(hello)) => *hello,
        Ok(_) => return Err(fail("the engine sent a frame before its handshake".into())),
        Err(e) => return Err(fail(format!("the engine sent {e}"))),
    };
    if hello.protocol != protocol::PROTOCOL_VERSION {
        return Err(fail(format!(
            "the engine speaks protocol version {}, this viewer version {}; update the one that is older",
            hello.protocol,
            protocol::PROTOCOL_VERSION
        )));
    }
    Ok(hello)
}

/// The activations the viewer asks an engine for: every tap it can send
/// except the full logits (`[T, vocab]`, the largest tensor of a pass, which
/// the app uses only with a local model); the top-k predictions of every
/// position instead.
pub fn viewer_wants(hello: &Hello) -> Want {
    let can = |tap: &str| hello.can.taps.iter().any(|t| t == tap);
    Want {
        hidden: can("hidden"),
        attention: can("attention"),
        mlp: can("mlp"),
        router: can("router"),
        logits: false,
        lens: can("lens"),
        top_k_rows: super::protocol::TopKRows::All,
        ..Want::default()
    }
}

/// Everything the engine can send, full logits included (what `capture` writes).
pub fn capture_wants(hello: &Hello) -> Want {
    Want {
        logits: hello.can.taps.iter().any(|t| t == "logits"),
        ..viewer_wants(hello)
    }
}
