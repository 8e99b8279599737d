//! Requests and frames as bytes, for the browser's inference Web Worker (one
//! `postMessage` of a transferable buffer each). Little-endian, no framing:
//! one message is one value. Pure, so it is tested natively.

use candle_core::{DType, Device, Tensor};

use super::Tap;
use super::stream::{ActivationFrame, Decoding, FrameData, RunRequest};

/// A message that does not decode (a bundle built from mismatched sources).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the inference worker sent a malformed message ({0}); reload the page")]
pub struct WireError(pub(crate) &'static str);

/// Little-endian writing (shared with the engine protocol).
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        v.iter().for_each(|&x| self.u32(x));
    }
}

/// Little-endian reading that never reads past the message (shared with the engine protocol).
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn f32(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    /// A count, refused when the rest of the message cannot hold `min_size`-byte items.
    pub(crate) fn len(&mut self, min_size: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.0.len() {
            return Err(WireError("count beyond the message"));
        }
        Ok(n)
    }
    pub(crate) fn u32s(&mut self) -> Result<Vec<u32>, WireError> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32()).collect()
    }
    pub(crate) fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError("trailing bytes"))
        }
    }
}

/// A run request (with its run id) as bytes.
pub fn encode_request(run: u64, request: &RunRequest) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(run);
    w.u32s(&request.tokens);
    w.u64(request.new_tokens as u64);
    match request.decoding {
        Decoding::Greedy => w.u8(0),
        Decoding::TopK { k, temperature, seed } => {
            w.u8(1);
            w.u64(k as u64);
            w.f64(temperature);
            w.u64(seed);
        }
    }
    w.0
}

pub fn decode_request(bytes: &[u8]) -> Result<(u64, RunRequest), WireError> {
    let mut r = Reader(bytes);
    let run = r.u64()?;
    let tokens = r.u32s()?;
    let new_tokens = r.u64()? as usize;
    let decoding = match r.u8()? {
        0 => Decoding::Greedy,
        1 => Decoding::TopK {
            k: r.u64()? as usize,
            temperature: r.f64()?,
            seed: r.u64()?,
        },
        _ => return Err(WireError("unknown decoding")),
    };
    r.end()?;
    Ok((
        run,
        RunRequest {
            tokens,
            new_tokens,
            decoding,
            text: None,
        },
    ))
}

pub(crate) fn tap_code(tap: Tap) -> (u8, u32) {
    match tap {
        Tap::Hidden(i) => (0, i as u32),
        Tap::Attention(i) => (1, i as u32),
        Tap::Mlp(i) => (2, i as u32),
        Tap::Logits => (3, 0),
        Tap::Router(i) => (4, i as u32),
        Tap::Lens => (5, 0),
    }
}

/// A frame as bytes; tensors travel as f32.
pub fn encode_frame(frame: &ActivationFrame) -> Result<Vec<u8>, candle_core::Error> {
    let mut w = Writer::default();
    w.u64(frame.run);
    match &frame.data {
        FrameData::Tokens(ids) => {
            w.u8(0);
            w.u32s(ids);
        }
        FrameData::Activation { tap, from, tensor } => {
            w.u8(1);
            let (kind, index) = tap_code(*tap);
            w.u8(kind);
            w.u32(index);
            w.u64(*from as u64);
            w.len(tensor.dims().len());
            tensor.dims().iter().for_each(|&d| w.u32(d as u32));
            let values = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            w.0.reserve(values.len() * 4);
            values.iter().for_each(|&v| w.f32(v));
        }
        FrameData::TopK { layer, from, top } => {
            w.u8(2);
            w.u64(layer.map_or(u64::MAX, |l| l as u64));
            w.u64(*from as u64);
            w.len(top.len());
            for row in top {
                w.len(row.len());
                for &(id, p) in row {
                    w.u32(id);
                    w.f32(p);
                }
            }
        }
        FrameData::Generated { id, probability } => {
            w.u8(3);
            w.u32(*id);
            w.f32(*probability);
        }
        FrameData::Truncated { kept, dropped } => {
            w.u8(4);
            w.u64(*kept as u64);
            w.u64(*dropped as u64);
        }
        FrameData::Done => w.u8(5),
        FrameData::Failed(message) => {
            w.u8(6);
            w.len(message.len());
            w.0.extend_from_slice(message.as_bytes());
        }
    }
    Ok(w.0)
}

pub fn decode_frame(bytes: &[u8]) -> Result<ActivationFrame, WireError> {
    let mut r = Reader(bytes);
    let run = r.u64()?;
    let data = match r.u8()? {
        0 => FrameData::Tokens(r.u32s()?),
        1 => {
            let (kind, index) = (r.u8()?, r.u32()? as usize);
            let tap = match kind {
                0 => Tap::Hidden(index),
                1 => Tap::Attention(index),
                2 => Tap::Mlp(index),
                3 => Tap::Logits,
                4 => Tap::Router(index),
                5 => Tap::Lens,
                _ => return Err(WireError("unknown tap")),
            };
            let from = usize::try_from(r.u64()?).map_err(|_| WireError("row offset"))?;
            let rank = r.len(4)?;
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let count = crate::arch::element_count_usize(&dims);
            let Some(count) = count.filter(|&n| n.checked_mul(4) == Some(r.0.len())) else {
                return Err(WireError("tensor size"));
            };
            let values: Vec<f32> = (0..count).map(|_| r.f32()).collect::<Result<_, _>>()?;
            let tensor = Tensor::from_vec(values, dims, &Device::Cpu).map_err(|_| WireError("tensor shape"))?;
            FrameData::Activation { tap, from, tensor }
        }
        2 => {
            let layer = r.u64()?;
            let from = r.u64()? as usize;
            let rows = r.len(4)?;
            let mut top = Vec::with_capacity(rows);
            for _ in 0..rows {
                let n = r.len(8)?;
                top.push(
                    (0..n)
                        .map(|_| Ok((r.u32()?, r.f32()?)))
                        .collect::<Result<Vec<_>, WireError>>()?,
                );
            }
            FrameData::TopK {
                layer: (layer != u64::MAX).then_some(layer as usize),
                from,
                top,
            }
        }
        3 => FrameData::Generated {
            id: r.u32()?,
            probability: r.f32()?,
        },
        4 => FrameData::Truncated {
            kept: r.u64()? as usize,
            dropped: r.u64()? as usize,
        },
        5 => FrameData::Done,
        6 => {
            let n = r.len(1)?;
            let text = r.take(n)?;
            FrameData::Failed(String::from_utf8_lossy(text).into_owned())
        }
        _ => return Err(WireError("unknown frame")),
    };
    r.end()?;
    Ok(ActivationFrame { run, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: FrameData) -> FrameData {
        let frame = ActivationFrame { run: 7, data };
        let back = decode_frame(&encode_frame(&frame).unwrap()).unwrap();
        assert_eq!(back.run, 7);
        back.data
    }

    #[test]
    fn requests_round_trip() {
        for decoding in [
            Decoding::Greedy,
            Decoding::TopK {
                k: 40,
                temperature: 0.8,
                seed: 299792458,
            },
        ] {
            let request = RunRequest {
                tokens: vec![1, 2, 2047],
                new_tokens: 32,
                decoding,
                text: None,
            };
            let (run, back) = decode_request(&encode_request(12, &request)).unwrap();
            assert_eq!(run, 12);
            assert_eq!(back.tokens, request.tokens);
            assert_eq!(back.new_tokens, 32);
            assert_eq!(back.decoding, decoding);
        }
    }

    #[test]
    fn frames_round_trip() {
        let t = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        match round_trip(FrameData::Activation {
            tap: Tap::Attention(5),
            from: 7,
            tensor: t.clone(),
        }) {
            FrameData::Activation { tap, from, tensor } => {
                assert_eq!((tap, from), (Tap::Attention(5), 7));
                assert_eq!(tensor.dims(), &[2, 3, 4]);
                let diff = (tensor - &t).unwrap().abs().unwrap().sum_all().unwrap();
                assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(round_trip(FrameData::Tokens(vec![3, 1, 4])), FrameData::Tokens(t) if t == [3, 1, 4]));
        let top = vec![vec![(5, 0.5), (9, 0.25)]];
        for layer in [None, Some(3)] {
            match round_trip(FrameData::TopK {
                layer,
                from: 4,
                top: top.clone(),
            }) {
                FrameData::TopK { layer: l, from, top: t } => assert_eq!((l, from, t), (layer, 4, top.clone())),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            round_trip(FrameData::Generated { id: 42, probability: 0.75 }),
            FrameData::Generated { id: 42, probability } if probability == 0.75
        ));
        assert!(matches!(
            round_trip(FrameData::Truncated { kept: 256, dropped: 3 }),
            FrameData::Truncated { kept: 256, dropped: 3 }
        ));
        assert!(matches!(round_trip(FrameData::Done), FrameData::Done));
        assert!(matches!(round_trip(FrameData::Failed("bad ✗".into())), FrameData::Failed(m) if m == "bad ✗"));
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let frame = ActivationFrame {
            run: 1,
            data: FrameData::Activation {
                tap: Tap::Router(0),
                from: 0,
                tensor: Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
            },
        };
        let bytes = encode_frame(&frame).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_frame(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_frame(&longer).is_err());
        // A count claiming more than the message holds.
        let mut huge = 1u64.to_le_bytes().to_vec();
        huge.push(0);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_frame(&huge).is_err());
        assert!(decode_request(&[1, 2, 3]).is_err());
    }
}
