//! The viewer never trusts an engine: every frame is checked against the
//! handshake's sizes and the run it claims to belong to before the app sees
//! it. Pure, so each bad frame is tested without a socket.

use crate::inference::Tap;
use crate::inference::stream::{ActivationFrame, FrameData};

use super::protocol::Dims;

/// Widest MLP / router rows accepted (no released model comes near).
const MAX_WIDTH: usize = 1 << 20;
const MAX_EXPERTS: usize = 4096;
const MAX_TOP_K: usize = 100;

/// What to do with a frame that passed.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Hand it to the app.
    Pass,
    /// A frame of an older (cancelled) run: normal after a new request, dropped.
    Stale,
}

/// The state of one connection's current run.
#[derive(Debug, Clone)]
pub struct RunCheck {
    dims: Dims,
    /// Heads per attention map (the request may have picked some).
    heads: usize,
    /// The newest run requested, 0 before any.
    run: u64,
    /// The run's sequence length, once its tokens arrived.
    tokens: Option<usize>,
    ended: bool,
    /// The viewer gave up on the current run (a bad frame, a stall): its
    /// remaining frames are dropped.
    abandoned: bool,
}

impl RunCheck {
    pub fn new(dims: Dims) -> RunCheck {
        RunCheck {
            dims,
            heads: dims.heads,
            run: 0,
            tokens: None,
            ended: true,
            abandoned: false,
        }
    }

    /// A new run was requested (with `heads` picked, `None`: all).
    pub fn start(&mut self, run: u64, heads: Option<usize>) {
        self.run = run;
        self.heads = heads.unwrap_or(self.dims.heads);
        self.tokens = None;
        self.ended = false;
        self.abandoned = false;
    }

    /// Gives up on the current run: it counts as ended, its later frames are stale.
    pub fn abandon(&mut self) {
        self.ended = true;
        self.abandoned = true;
    }

    /// The run whose frames are expected.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Whether the current run has ended (done or failed).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Token ids and strings of the texts frame.
    pub fn texts(&self, run: u64, texts: &[(u32, String)]) -> Result<Verdict, String> {
        if let Some(v) = self.which_run(run)? {
            return Ok(v);
        }
        match texts.iter().find(|(id, _)| *id as usize >= self.dims.vocab) {
            Some((id, _)) => Err(format!(
                "token text for id {id}, outside the vocabulary of {}",
                self.dims.vocab
            )),
            None => Ok(Verdict::Pass),
        }
    }

    fn which_run(&self, run: u64) -> Result<Option<Verdict>, String> {
        if run > self.run {
            return Err(format!(
                "frames for run {run}, which the viewer never requested (the newest is {})",
                self.run
            ));
        }
        if run < self.run || self.abandoned {
            return Ok(Some(Verdict::Stale));
        }
        if self.ended {
            return Err(format!("a frame after run {run} had ended"));
        }
        Ok(None)
    }

    /// Checks one frame; `Err` is the message for the user.
    pub fn frame(&mut self, frame: &ActivationFrame) -> Result<Verdict, String> {
        if let Some(v) = self.which_run(frame.run)? {
            return Ok(v);
        }
        let d = self.dims;
        let vocab_ok = |id: u32| (id as usize) < d.vocab;
        match &frame.data {
            FrameData::Tokens(ids) => {
                if ids.is_empty() || ids.len() > d.context {
                    return Err(format!("{} tokens (the context is {})", ids.len(), d.context));
                }
                if let Some(id) = ids.iter().find(|&&id| !vocab_ok(id)) {
                    return Err(format!("token id {id}, outside the vocabulary of {}", d.vocab));
                }
                self.tokens = Some(ids.len());
            }
            FrameData::Activation { tap, from, tensor } => {
                let Some(len) = self.tokens else {
                    return Err(format!("a {tap:?} tensor before the run's tokens"));
                };
                check_tensor(d, self.heads, len, *tap, *from, tensor.dims())?;
            }
            FrameData::TopK { layer, from, top } => {
                if self.tokens.is_none_or(|len| from.saturating_add(top.len()) > len) {
                    return Err(format!("top-k rows for positions {from}.. beyond the run's tokens"));
                }
                if layer.is_some_and(|l| l >= d.blocks) {
                    return Err(format!("logit-lens entries for block {layer:?} of {}", d.blocks));
                }
                for row in top {
                    if row.len() > MAX_TOP_K {
                        return Err(format!("{} top-k entries (the limit is {MAX_TOP_K})", row.len()));
                    }
                    if let Some((id, p)) = row.iter().find(|(id, p)| !vocab_ok(*id) || !(0.0..=1.0001).contains(p)) {
                        return Err(format!(
                            "a top-k entry (token {id}, probability {p}) outside the vocabulary or 0..1"
                        ));
                    }
                }
            }
            FrameData::Generated { id, probability } => {
                if !vocab_ok(*id) || !(0.0..=1.0001).contains(probability) {
                    return Err(format!("a generated token {id} with probability {probability}"));
                }
            }
            FrameData::Truncated { .. } => {}
            FrameData::Done | FrameData::Failed(_) => self.ended = true,
        }
        Ok(Verdict::Pass)
    }
}

fn check_tensor(d: Dims, heads: usize, len: usize, tap: Tap, from: usize, dims: &[usize]) -> Result<(), String> {
    let rows_ok = |rows: usize| rows > 0 && from.checked_add(rows).is_some_and(|end| end <= len);
    let bad = |expected: String| {
        Err(format!(
            "a {tap:?} tensor of shape {dims:?} at row {from} (expected {expected} for {len} tokens)"
        ))
    };
    let block_ok = |i: usize| i < d.blocks;
    match (tap, dims) {
        (Tap::Hidden(i), _) if i > d.blocks => Err(format!("hidden state {i} of a {}-block model", d.blocks)),
        (Tap::Attention(i) | Tap::Mlp(i) | Tap::Router(i), _) if !block_ok(i) => {
            Err(format!("{tap:?} of a {}-block model", d.blocks))
        }
        (Tap::Hidden(_), &[rows, w]) if rows_ok(rows) && w == d.hidden => Ok(()),
        (Tap::Hidden(_), _) => bad(format!("[rows, {}]", d.hidden)),
        // A query row sees keys up to itself (causal) or all of them (encoders).
        (Tap::Attention(_), &[h, rows, keys])
            if h == heads && rows_ok(rows) && (keys == from + rows || keys == len) =>
        {
            Ok(())
        }
        (Tap::Attention(_), _) => bad(format!("[{heads}, rows, keys]")),
        (Tap::Mlp(_), &[rows, w]) if rows_ok(rows) && w > 0 && w <= MAX_WIDTH => Ok(()),
        (Tap::Mlp(_), _) => bad(format!("[rows, width <= {MAX_WIDTH}]")),
        (Tap::Router(_), &[rows, e]) if rows_ok(rows) && e > 0 && e <= MAX_EXPERTS => Ok(()),
        (Tap::Router(_), _) => bad(format!("[rows, experts <= {MAX_EXPERTS}]")),
        (Tap::Logits, &[rows, v]) if rows_ok(rows) && v == d.vocab => Ok(()),
        (Tap::Logits, _) => bad(format!("[rows, {}]", d.vocab)),
        (Tap::Lens, _) => Err("a logit-lens tensor (the lens travels as top-k frames)".into()),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;

    const DIMS: Dims = Dims {
        blocks: 2,
        heads: 4,
        hidden: 8,
        vocab: 50,
        context: 16,
        causal: true,
    };

    fn frame(run: u64, data: FrameData) -> ActivationFrame {
        ActivationFrame { run, data }
    }

    fn tensor(tap: Tap, from: usize, shape: &[usize]) -> FrameData {
        FrameData::Activation {
            tap,
            from,
            tensor: Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap(),
        }
    }

    fn started() -> RunCheck {
        let mut c = RunCheck::new(DIMS);
        c.start(3, None);
        assert_eq!(c.frame(&frame(3, FrameData::Tokens(vec![1, 2, 3]))), Ok(Verdict::Pass));
        c
    }

    #[test]
    fn a_run_and_its_cached_steps_pass() {
        let mut c = started();
        for data in [
            tensor(Tap::Hidden(0), 0, &[3, 8]),
            tensor(Tap::Attention(1), 0, &[4, 3, 3]),
            tensor(Tap::Mlp(0), 0, &[3, 32]),
            tensor(Tap::Logits, 0, &[3, 50]),
            FrameData::Generated {
                id: 7,
                probability: 0.9,
            },
            FrameData::Tokens(vec![1, 2, 3, 7]),
            tensor(Tap::Attention(0), 3, &[4, 1, 4]),
            tensor(Tap::Hidden(2), 3, &[1, 8]),
            FrameData::Done,
        ] {
            assert_eq!(c.frame(&frame(3, data.clone())), Ok(Verdict::Pass), "{data:?}");
        }
        assert!(c.ended());
        // The old run's frames after a new request are dropped quietly.
        c.start(4, Some(2));
        assert_eq!(c.frame(&frame(3, FrameData::Done)), Ok(Verdict::Stale));
    }

    #[test]
    fn every_bad_frame_is_named() {
        let cases: Vec<(u64, FrameData, &str)> = vec![
            (9, FrameData::Done, "never requested"),
            (
                3,
                tensor(Tap::Hidden(0), 0, &[3, 9]),
                "Hidden(0) tensor of shape [3, 9]",
            ),
            (
                3,
                tensor(Tap::Hidden(3), 0, &[3, 8]),
                "hidden state 3 of a 2-block model",
            ),
            (3, tensor(Tap::Attention(0), 0, &[3, 3, 3]), "expected [4, rows, keys]"),
            (3, tensor(Tap::Attention(0), 2, &[4, 2, 4]), "at row 2"),
            (3, tensor(Tap::Mlp(2), 0, &[3, 8]), "Mlp(2) of a 2-block model"),
            (3, tensor(Tap::Logits, 0, &[3, 51]), "[rows, 50]"),
            (3, tensor(Tap::Router(0), 0, &[3, 5000]), "experts <= 4096"),
            (3, FrameData::Tokens(vec![1, 99]), "token id 99"),
            (3, FrameData::Tokens(vec![1; 17]), "17 tokens (the context is 16)"),
            (
                3,
                FrameData::Generated {
                    id: 50,
                    probability: 0.5,
                },
                "generated token 50",
            ),
            (
                3,
                FrameData::TopK {
                    layer: Some(2),
                    from: 2,
                    top: vec![vec![(1, 0.5)]],
                },
                "block Some(2)",
            ),
            (
                3,
                FrameData::TopK {
                    layer: None,
                    from: 3,
                    top: vec![vec![(1, 0.5)]],
                },
                "beyond the run's tokens",
            ),
        ];
        for (run, data, expected) in cases {
            let message = started().frame(&frame(run, data.clone())).unwrap_err();
            assert!(message.contains(expected), "{data:?}: {message}");
        }
        let mut fresh = RunCheck::new(DIMS);
        fresh.start(1, None);
        let early = fresh.frame(&frame(1, tensor(Tap::Hidden(0), 0, &[3, 8]))).unwrap_err();
        assert!(early.contains("before the run's tokens"), "{early}");
        let mut done = started();
        done.frame(&frame(3, FrameData::Done)).unwrap();
        assert!(
            done.frame(&frame(3, FrameData::Done))
                .unwrap_err()
                .contains("after run 3 had ended")
        );
        assert!(started().texts(3, &[(50, "x".into())]).is_err());
    }
}
