//! The activation-stream protocol, version 1 (specified in
//! `src/python/PROTOCOL.md`): every WebSocket message is binary, its first
//! byte says what it is. Control messages (the engine's hello, the viewer's
//! run and cancel requests) are UTF-8 JSON after that byte; frames are a
//! small little-endian header plus raw tensor bytes. Pure: no sockets here.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::inference::Tap;
use crate::inference::stream::{ActivationFrame, Decoding, FrameData};
use crate::inference::wire::{Reader, WireError, Writer};

pub const PROTOCOL_VERSION: u32 = 1;

/// Engine -> viewer: the handshake (JSON).
pub const HELLO: u8 = 0x01;
/// Engine -> viewer: one frame of a run (binary).
pub const FRAME: u8 = 0x02;
/// Viewer -> engine: start a run (JSON), cancelling the one still running.
pub const RUN: u8 = 0x10;
/// Viewer -> engine: stop a run (JSON).
pub const CANCEL: u8 = 0x11;

/// The largest message the viewer accepts (a 128-token pass of a
/// 150k-vocabulary model's logits is 77 MB in f32).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The longest token string the viewer keeps.
pub const MAX_TOKEN_TEXT_BYTES: usize = 1024;

/// The engine's handshake.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub protocol: u32,
    /// Free text naming the engine and its versions, shown in the model panel.
    #[serde(default)]
    pub engine: String,
    pub model: HelloModel,
    /// What the viewer needs to check frames against.
    pub dims: Dims,
    #[serde(default)]
    pub can: Can,
}

/// The model the engine serves: enough to draw its architecture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HelloModel {
    /// A Hugging Face id or a local name.
    pub name: String,
    #[serde(default)]
    pub revision: Option<String>,
    /// The model's `config.json`.
    pub config: serde_json::Value,
    /// Every tensor of its checkpoint.
    pub tensors: Vec<HelloTensor>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HelloTensor {
    pub name: String,
    pub shape: Vec<u64>,
    /// Safetensors dtype name (`F32`, `BF16`, ...).
    pub dtype: String,
}

/// Sizes that every frame is checked against.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dims {
    /// Transformer blocks (hidden states are `0..=blocks`).
    pub blocks: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Residual-stream width.
    pub hidden: usize,
    pub vocab: usize,
    /// Longest sequence the engine runs.
    pub context: usize,
    /// A causal language model (logits, generation) or an encoder.
    pub causal: bool,
}

/// What the engine can do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Can {
    /// Tokenizes `text` requests itself.
    #[serde(default)]
    pub text: bool,
    #[serde(default)]
    pub generate: bool,
    /// Taps it can send: any of `hidden`, `attention`, `mlp`, `router`, `logits`, `lens`.
    #[serde(default)]
    pub taps: Vec<String>,
    /// Transport dtypes: `f32`, `f16`.
    #[serde(default)]
    pub dtypes: Vec<String>,
}

impl Default for Can {
    fn default() -> Self {
        Can {
            text: false,
            generate: false,
            taps: vec!["hidden".into(), "attention".into()],
            dtypes: vec!["f32".into()],
        }
    }
}

/// The viewer's run request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub run: u64,
    /// Token ids to run, or `text` for the engine to tokenize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tokens to generate after the input (0: one forward pass).
    #[serde(default)]
    pub generate: usize,
    #[serde(default)]
    pub decoding: WireDecoding,
    #[serde(default)]
    pub want: Want,
}

/// `"greedy"` or `{"top_k": 40, "temperature": 0.8, "seed": 1}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(untagged)]
pub enum WireDecoding {
    #[default]
    #[serde(with = "greedy")]
    Greedy,
    TopK {
        top_k: usize,
        temperature: f64,
        seed: u64,
    },
}

mod greedy {
    pub fn serialize<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("greedy")
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        if s == "greedy" {
            Ok(())
        } else {
            Err(serde::de::Error::custom(format!("unknown decoding `{s}`")))
        }
    }
}

impl From<Decoding> for WireDecoding {
    fn from(d: Decoding) -> Self {
        match d {
            Decoding::Greedy => WireDecoding::Greedy,
            Decoding::TopK { k, temperature, seed } => WireDecoding::TopK {
                top_k: k,
                temperature,
                seed,
            },
        }
    }
}

/// Which activations to send; the engine reduces before sending.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Want {
    pub hidden: bool,
    pub attention: bool,
    pub mlp: bool,
    pub router: bool,
    /// Full `[rows, vocab]` logits.
    pub logits: bool,
    /// Next-token top-k entries per position (0: none).
    pub top_k: usize,
    /// Which positions of each pass get top-k entries: `last` or `all`.
    #[serde(default)]
    pub top_k_rows: TopKRows,
    /// The logit lens (top-k of every block's output) at the last position.
    pub lens: bool,
    /// Only these blocks' taps (`null`: all). Hidden state `i + 1` belongs to block `i`, 0 always comes.
    pub layers: Option<Vec<usize>>,
    /// Only these heads of each attention map, in this order (`null`: all).
    pub heads: Option<Vec<usize>>,
    /// Transport dtype of tensors: `f32` or `f16`.
    pub dtype: String,
}

impl Default for Want {
    fn default() -> Self {
        Want {
            hidden: true,
            attention: true,
            mlp: true,
            router: true,
            logits: true,
            top_k: crate::inference::stream::TOP_K,
            top_k_rows: TopKRows::Last,
            lens: true,
            layers: None,
            heads: None,
            dtype: "f32".into(),
        }
    }
}

/// Positions of a pass that get next-token top-k entries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopKRows {
    #[default]
    Last,
    /// Every row of the pass: the viewer's predictions for each token without the full logits.
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cancel {
    pub run: u64,
}

/// A message from the engine.
#[derive(Debug, Clone)]
pub enum EngineMessage {
    Hello(Box<Hello>),
    Frame(ActivationFrame),
    /// Display strings of token ids, sent before the first frame that uses them.
    Texts {
        run: u64,
        texts: Vec<(u32, String)>,
    },
}

/// A message that breaks the protocol; the text names what is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl From<WireError> for ProtocolError {
    fn from(e: WireError) -> Self {
        ProtocolError(format!("a malformed frame ({})", e.0))
    }
}

fn json_message<T: Serialize>(kind: u8, value: &T) -> Vec<u8> {
    let mut out = vec![kind];
    // Serializing these plain structs cannot fail; an empty body would be refused by the peer.
    if let Ok(body) = serde_json::to_vec(value) {
        out.extend(body);
    }
    out
}

pub fn encode_hello(hello: &Hello) -> Vec<u8> {
    json_message(HELLO, hello)
}

pub fn encode_run(run: &Run) -> Vec<u8> {
    json_message(RUN, run)
}

pub fn encode_cancel(run: u64) -> Vec<u8> {
    json_message(CANCEL, &Cancel { run })
}

/// A viewer message, for engines written in Rust (and the tests' engines).
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerMessage {
    Run(Box<Run>),
    Cancel(u64),
}

pub fn decode_viewer_message(bytes: &[u8]) -> Result<ViewerMessage, ProtocolError> {
    let bad = |e: serde_json::Error| ProtocolError(format!("a malformed request ({e})"));
    match bytes.split_first() {
        Some((&RUN, body)) => Ok(ViewerMessage::Run(Box::new(serde_json::from_slice(body).map_err(bad)?))),
        Some((&CANCEL, body)) => Ok(ViewerMessage::Cancel(
            serde_json::from_slice::<Cancel>(body).map_err(bad)?.run,
        )),
        Some((kind, _)) => Err(ProtocolError(format!("an unknown request type 0x{kind:02x}"))),
        None => Err(ProtocolError("an empty message".into())),
    }
}

/// Tensor transport dtypes.
const DTYPE_F32: u8 = 0;
const DTYPE_F16: u8 = 1;

/// A frame as an engine sends it (tensors in `f16` when `half`).
pub fn encode_frame(frame: &ActivationFrame, half: bool) -> Result<Vec<u8>, candle_core::Error> {
    let mut w = Writer(vec![FRAME]);
    w.u64(frame.run);
    match &frame.data {
        FrameData::Activation { tap, from, tensor } => {
            w.u8(1);
            let (kind, index) = crate::inference::wire::tap_code(*tap);
            w.u8(kind);
            w.u32(index);
            w.u64(*from as u64);
            w.u8(if half { DTYPE_F16 } else { DTYPE_F32 });
            w.u8(tensor.rank() as u8);
            tensor.dims().iter().for_each(|&d| w.u32(d as u32));
            let values = tensor
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if half {
                values
                    .iter()
                    .for_each(|&v| w.0.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()));
            } else {
                values.iter().for_each(|&v| w.f32(v));
            }
        }
        other => {
            // Every other kind has the browser worker's layout.
            let bytes = crate::inference::wire::encode_frame(&ActivationFrame {
                run: frame.run,
                data: other.clone(),
            })?;
            w.0.extend_from_slice(bytes.get(8..).unwrap_or_default());
        }
    }
    Ok(w.0)
}

/// Token strings as an engine sends them.
pub fn encode_texts(run: u64, texts: &[(u32, String)]) -> Vec<u8> {
    let mut w = Writer(vec![FRAME]);
    w.u64(run);
    w.u8(7);
    w.len(texts.len());
    for (id, text) in texts {
        w.u32(*id);
        w.len(text.len());
        w.0.extend_from_slice(text.as_bytes());
    }
    w.0
}

/// Decodes one message from an engine. Sizes are bounded by the message
/// itself (no count can claim more than the bytes that follow).
pub fn decode_engine_message(bytes: &[u8]) -> Result<EngineMessage, ProtocolError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError(format!(
            "a {} MB message, over the {} MB limit",
            bytes.len() >> 20,
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    match bytes.split_first() {
        Some((&HELLO, body)) => {
            let hello: Hello =
                serde_json::from_slice(body).map_err(|e| ProtocolError(format!("a malformed handshake ({e})")))?;
            Ok(EngineMessage::Hello(Box::new(hello)))
        }
        Some((&FRAME, body)) => decode_frame(body),
        Some((kind, _)) => Err(ProtocolError(format!("an unknown message type 0x{kind:02x}"))),
        None => Err(ProtocolError("an empty message".into())),
    }
}

fn tap_of(kind: u8, index: usize) -> Result<Tap, ProtocolError> {
    Ok(match kind {
        0 => Tap::Hidden(index),
        1 => Tap::Attention(index),
        2 => Tap::Mlp(index),
        3 => Tap::Logits,
        4 => Tap::Router(index),
        _ => return Err(ProtocolError(format!("an unknown tap kind {kind}"))),
    })
}

/// Little-endian f32 or f16 values as f32: a copy (f32 on little-endian
/// machines) or the half crate's SIMD conversion.
fn decode_values(data: &[u8], half: bool) -> Vec<f32> {
    if half {
        let halves: Vec<half::f16> = if cfg!(target_endian = "little") {
            bytemuck::pod_collect_to_vec(data)
        } else {
            data.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let mut out = vec![0f32; halves.len()];
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(halves.as_slice(), &mut out);
        out
    } else if cfg!(target_endian = "little") {
        bytemuck::pod_collect_to_vec(data)
    } else {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

fn decode_frame(body: &[u8]) -> Result<EngineMessage, ProtocolError> {
    let mut r = Reader(body);
    let run = r.u64()?;
    let kind = r.u8()?;
    match kind {
        1 => {
            let tap = tap_of(r.u8()?, r.u32()? as usize)?;
            let from = usize::try_from(r.u64()?).map_err(|_| ProtocolError("a row offset beyond memory".into()))?;
            let dtype = r.u8()?;
            let rank = r.u8()? as usize;
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let width = match dtype {
                DTYPE_F32 => 4,
                DTYPE_F16 => 2,
                other => return Err(ProtocolError(format!("an unknown tensor dtype code {other}"))),
            };
            let count = crate::arch::element_count_usize(&dims);
            let Some(count) = count.filter(|&n| n.checked_mul(width) == Some(r.0.len())) else {
                return Err(ProtocolError(format!(
                    "a {tap:?} tensor of shape {dims:?} with {} data bytes (the shape needs a different size)",
                    r.0.len()
                )));
            };
            let data = r.take(count * width)?;
            let values = decode_values(data, width == 2);
            let tensor = Tensor::from_vec(values, dims, &Device::Cpu)
                .map_err(|e| ProtocolError(format!("a tensor that does not build ({e})")))?;
            Ok(EngineMessage::Frame(ActivationFrame {
                run,
                data: FrameData::Activation { tap, from, tensor },
            }))
        }
        7 => {
            let n = r.len(8)?;
            let mut texts = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.u32()?;
                let len = r.len(1)?;
                let text = r.take(len)?;
                if len > MAX_TOKEN_TEXT_BYTES {
                    return Err(ProtocolError(format!(
                        "a {len}-byte string for token {id} (the limit is {MAX_TOKEN_TEXT_BYTES})"
                    )));
                }
                texts.push((id, String::from_utf8_lossy(text).into_owned()));
            }
            r.end()?;
            Ok(EngineMessage::Texts { run, texts })
        }
        _ => {
            // The other kinds share the browser worker's layout.
            let mut bytes = Vec::with_capacity(body.len());
            bytes.extend_from_slice(&run.to_le_bytes());
            bytes.push(kind);
            bytes.extend_from_slice(r.0);
            let frame = crate::inference::wire::decode_frame(&bytes).map_err(|e| match e.0 {
                "unknown frame" => ProtocolError(format!("an unknown frame kind {kind}")),
                _ => ProtocolError::from(e),
            })?;
            Ok(EngineMessage::Frame(frame))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_in_both_dtypes() {
        let t = Tensor::new(&[[0.5f32, -1.25, 3.0], [7.0, 0.0, -2.5]], &Device::Cpu).unwrap();
        for half in [false, true] {
            let frame = ActivationFrame {
                run: 3,
                data: FrameData::Activation {
                    tap: Tap::Mlp(1),
                    from: 4,
                    tensor: t.clone(),
                },
            };
            let bytes = encode_frame(&frame, half).unwrap();
            assert_eq!(
                bytes.len(),
                1 + 8 + 1 + 1 + 4 + 8 + 1 + 1 + 8 + 6 * if half { 2 } else { 4 }
            );
            let Ok(EngineMessage::Frame(back)) = decode_engine_message(&bytes) else {
                panic!("no frame")
            };
            let FrameData::Activation { tap, from, tensor } = back.data else {
                panic!("{back:?}")
            };
            assert_eq!((back.run, tap, from), (3, Tap::Mlp(1), 4));
            assert_eq!(tensor.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        }
    }

    #[test]
    fn other_frames_and_texts_round_trip() {
        for data in [
            FrameData::Tokens(vec![1, 2, 3]),
            FrameData::Generated {
                id: 9,
                probability: 0.5,
            },
            FrameData::Done,
            FrameData::Failed("out of memory".into()),
            FrameData::TopK {
                layer: Some(2),
                from: 5,
                top: vec![vec![(4, 0.75)]],
            },
        ] {
            let expected = format!("{data:?}");
            let bytes = encode_frame(&ActivationFrame { run: 8, data }, false).unwrap();
            let Ok(EngineMessage::Frame(back)) = decode_engine_message(&bytes) else {
                panic!("{expected}")
            };
            assert_eq!((back.run, format!("{:?}", back.data)), (8, expected));
        }
        let texts = vec![(5, " the".to_string()), (7, "✓".to_string())];
        match decode_engine_message(&encode_texts(2, &texts)) {
            Ok(EngineMessage::Texts { run: 2, texts: back }) => assert_eq!(back, texts),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_and_hello_are_json() {
        let run = Run {
            run: 4,
            tokens: None,
            text: Some("Hello".into()),
            generate: 3,
            decoding: Decoding::TopK {
                k: 5,
                temperature: 0.5,
                seed: 1,
            }
            .into(),
            want: Want::default(),
        };
        let bytes = encode_run(&run);
        assert_eq!(bytes[0], RUN);
        assert_eq!(decode_viewer_message(&bytes), Ok(ViewerMessage::Run(Box::new(run))));
        assert_eq!(decode_viewer_message(&encode_cancel(4)), Ok(ViewerMessage::Cancel(4)));
        let greedy: Run = serde_json::from_str(r#"{"run":1,"tokens":[1],"decoding":"greedy"}"#).unwrap();
        assert_eq!(greedy.decoding, WireDecoding::Greedy);
        assert!(serde_json::from_str::<Run>(r#"{"run":1,"decoding":"beam"}"#).is_err());
        let hello = br#"{"protocol":1,"model":{"name":"m","config":{},"tensors":[]},
            "dims":{"blocks":2,"heads":4,"hidden":32,"vocab":101,"context":64,"causal":true}}"#;
        let mut message = vec![HELLO];
        message.extend_from_slice(hello);
        assert!(matches!(decode_engine_message(&message), Ok(EngineMessage::Hello(h)) if h.dims.blocks == 2));
    }

    #[test]
    fn broken_messages_name_the_problem() {
        let t = Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let frame = ActivationFrame {
            run: 1,
            data: FrameData::Activation {
                tap: Tap::Hidden(0),
                from: 0,
                tensor: t,
            },
        };
        let bytes = encode_frame(&frame, false).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_engine_message(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_tap = bytes.clone();
        bad_tap[10] = 9;
        assert_eq!(decode_engine_message(&bad_tap).unwrap_err().0, "an unknown tap kind 9");
        assert!(
            decode_engine_message(&[0x7f])
                .unwrap_err()
                .0
                .contains("unknown message type 0x7f")
        );
        assert!(
            decode_engine_message(&[HELLO, b'{'])
                .unwrap_err()
                .0
                .contains("malformed handshake")
        );
        let mut bad_kind = encode_frame(
            &ActivationFrame {
                run: 1,
                data: FrameData::Done,
            },
            false,
        )
        .unwrap();
        bad_kind[9] = 42;
        assert_eq!(
            decode_engine_message(&bad_kind).unwrap_err().0,
            "an unknown frame kind 42"
        );
    }
}
