//! Sampled statistics of a Hub model: a local Hub serving safetensors files
//! whose values are generated on the fly (so a multi-GB model needs no disk or
//! memory), each tensor uniform in [-a, a] (RMS a/sqrt(3)). `stats ID` reads
//! about 1 % of the bytes by Range requests and its estimates are within a
//! few standard errors of the truth; `--sample 100` over Range requests and
//! `--full` (a download) both equal the statistics of the same file on disk.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A generated safetensors file: tensors (name, elements, amplitude), F32.
struct Synthetic {
    header: Vec<u8>,
    tensors: Vec<(String, u64, f32)>,
    len: u64,
}

impl Synthetic {
    fn new(tensors: &[(&str, &[u64], f32)]) -> Synthetic {
        let mut at = 0u64;
        let mut map = serde_json::Map::new();
        let mut list = Vec::new();
        for (name, shape, a) in tensors {
            let n: u64 = shape.iter().product();
            map.insert(
                name.to_string(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [at, at + 4 * n]}),
            );
            at += 4 * n;
            list.push((name.to_string(), n, *a));
        }
        let json = Value::Object(map).to_string().into_bytes();
        let mut header = (json.len() as u64).to_le_bytes().to_vec();
        header.extend(json);
        let len = header.len() as u64 + at;
        Synthetic {
            header,
            tensors: list,
            len,
        }
    }

    /// Element `i` of tensor `t`: a hash of (t, i) spread over [-a, a).
    fn value(t: usize, i: u64, a: f32) -> f32 {
        let mut x = (i ^ ((t as u64) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 29;
        let unit = (x >> 40) as f32 / (1u64 << 24) as f32;
        a * (2.0 * unit - 1.0)
    }

    /// Bytes `from..to` of the file.
    fn bytes(&self, from: u64, to: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((to - from) as usize);
        let h = self.header.len() as u64;
        let mut o = from;
        while o < to {
            if o < h {
                out.push(self.header[o as usize]);
                o += 1;
                continue;
            }
            let mut d = o - h;
            let mut t = 0;
            while d >= 4 * self.tensors[t].1 {
                d -= 4 * self.tensors[t].1;
                t += 1;
            }
            let (_, n, a) = self.tensors[t];
            let (i, k) = (d / 4, d % 4);
            let end_i = n.min((to - o + k).div_ceil(4) + i);
            for e in i..end_i {
                let b = Self::value(t, e, a).to_le_bytes();
                let skip = if e == i { k as usize } else { 0 };
                let room = (to - o) as usize;
                let take = (4 - skip).min(room);
                out.extend_from_slice(&b[skip..skip + take]);
                o += take as u64;
                if o >= to {
                    break;
                }
            }
        }
        out
    }
}

/// A Hub serving one generated `model.safetensors` per repo; counts the body
/// bytes of the weights file it sends.
struct SyntheticHub {
    url: String,
    sent: Arc<AtomicU64>,
}

fn start(repos: Vec<(&'static str, Synthetic)>) -> SyntheticHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let repos = Arc::new(repos);
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (repos, sent) = (repos.clone(), counter.clone());
            std::thread::spawn(move || serve(stream, &repos, &sent));
        }
    });
    SyntheticHub { url, sent }
}

fn serve(mut stream: TcpStream, repos: &[(&str, Synthetic)], sent: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let Some((method, path, range)) = crate::support::read_request(&mut reader) else {
            return;
        };
        let (method, path) = (method.as_str(), path.as_str());
        let repo = repos.iter().find(|(name, _)| path.contains(&format!("{name}/")));
        let file = path.rsplit('/').next().unwrap_or("");
        let mut respond = |status: &str, headers: &[(&str, String)], body: &[u8], send: bool| {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Repo-Commit: {COMMIT}\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            if send {
                let _ = stream.write_all(body);
            }
        };
        let Some((name, synthetic)) = repo else {
            respond("404 Not Found", &[("X-Error-Code", "RepoNotFound".into())], b"no", true);
            continue;
        };
        if path.starts_with("/api/models/") {
            let body = serde_json::json!({"id": name, "sha": COMMIT, "siblings": [{"rfilename": "model.safetensors"}]});
            respond("200 OK", &[], body.to_string().as_bytes(), true);
            continue;
        }
        if file != "model.safetensors" {
            respond(
                "404 Not Found",
                &[("X-Error-Code", "EntryNotFound".into())],
                b"no",
                true,
            );
            continue;
        }
        let len = synthetic.len;
        let common = [
            ("ETag", format!("\"{len:x}\"")),
            ("X-Linked-Size", len.to_string()),
            ("X-Linked-Etag", format!("\"{len:x}\"")),
            ("Accept-Ranges", "bytes".into()),
        ];
        if method == "HEAD" {
            // Content-Length of the whole file, no body.
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nX-Repo-Commit: {COMMIT}\r\n{}\r\n",
                common.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
            );
            let _ = stream.write_all(head.as_bytes());
            continue;
        }
        let (a, b) = range.map_or((0, len - 1), |(a, b)| (a, b.min(len - 1)));
        let body = synthetic.bytes(a, b + 1);
        sent.fetch_add(body.len() as u64, Ordering::SeqCst);
        let mut headers = common.to_vec();
        if range.is_some() {
            headers.push(("Content-Range", format!("bytes {a}-{b}/{len}")));
            respond("206 Partial Content", &headers, &body, true);
        } else {
            respond("200 OK", &headers, &body, true);
        }
    }
}

fn stats(hub: &SyntheticHub, home: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .arg("stats")
        .args(args)
        .arg("--json")
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["tensors"].as_array().unwrap().clone()
}

#[test]
fn a_multi_gigabyte_hub_model_is_sampled_from_one_percent_of_its_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    // 2.4 GB: two 16384 x 16384 matrices, a 4096 x 16384 one, a norm.
    let big = Synthetic::new(&[
        ("model.embed_tokens.weight", &[16384, 16384], 0.05),
        ("model.layers.0.mlp.down_proj.weight", &[16384, 16384], 0.02),
        ("model.layers.0.self_attn.q_proj.weight", &[4096, 16384], 0.1),
        ("model.norm.weight", &[16384], 1.0),
    ]);
    let (amplitudes, data): (Vec<f32>, u64) = (big.tensors.iter().map(|t| t.2).collect(), big.len);
    let hub = start(vec![("synthetic/big", big)]);
    let tensors = stats(&hub, tmp.path(), &["synthetic/big"]);
    let sent = hub.sent.load(Ordering::SeqCst);
    assert!(
        (sent as f64) < 0.0105 * data as f64,
        "read {sent} of {data} bytes ({:.2} %)",
        100.0 * sent as f64 / data as f64
    );
    for (t, a) in tensors.iter().zip(amplitudes) {
        let truth = f64::from(a) / 3f64.sqrt();
        let rms = t["rms"].as_f64().unwrap();
        let fraction = t["sampled_fraction"].as_f64().unwrap();
        if fraction < 1.0 {
            let se = t["standard_error"]["rms"].as_f64().unwrap();
            assert!(se > 0.0 && se < 0.01 * truth, "{t}");
            assert!(
                (rms - truth).abs() < 3.0 * se,
                "{}: rms {rms} vs {truth} (se {se})",
                t["name"]
            );
            assert!(fraction > 0.009 && fraction < 0.0105, "{t}");
        } else {
            // The norm (16384 elements) is read whole.
            assert!((rms - truth).abs() < 0.01 * truth, "{t}");
            assert!(t.get("standard_error").is_none(), "{t}");
        }
    }
}

#[test]
fn a_full_sample_and_a_download_equal_the_file_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let small = Synthetic::new(&[("a.weight", &[512, 1024], 0.05), ("b.weight", &[3000], 2.0)]);
    let local = tmp.path().join("model.safetensors");
    std::fs::write(&local, small.bytes(0, small.len)).unwrap();
    let hub = start(vec![("synthetic/small", small)]);
    let on_disk = stats(&hub, tmp.path(), &[local.to_str().unwrap()]);
    let ranged = stats(&hub, &tmp.path().join("home1"), &["synthetic/small", "--sample", "100"]);
    let downloaded = stats(&hub, &tmp.path().join("home2"), &["synthetic/small", "--full"]);
    assert_eq!(on_disk, ranged, "every byte over Range requests");
    assert_eq!(on_disk, downloaded, "downloaded");
    assert_eq!(on_disk[0]["sampled_fraction"].as_f64(), Some(1.0));
}
