//! The Hugging Face path against a local server that answers the Hub's URL
//! shapes (`/{repo}/resolve/{revision}/{file}`, HEAD with ETag and
//! X-Repo-Commit, GET with Range): only headers cross the wire, the HF cache
//! and our header cache make later offline runs work, gated repos fall back to
//! the catalogue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tensorcity::arch::hub::{HubFailure, HubOptions, load};
use tensorcity::arch::{self, LoadOptions, ModelRef};

use crate::support::write_tiny_gpt2;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A minimal Hub: serves files per repo, records requests and body bytes sent.
pub(crate) struct FakeHub {
    pub(crate) url: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    weight_bytes_sent: Arc<AtomicU64>,
}

impl FakeHub {
    pub(crate) fn start(repos: HashMap<String, HashMap<String, Vec<u8>>>, gated: Vec<String>) -> FakeHub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (srv, lg, st) = (server.clone(), log.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            for request in srv.incoming_requests() {
                let range = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Range"))
                    .map(|h| h.value.as_str().to_string());
                let line = format!(
                    "{} {} {}",
                    request.method(),
                    request.url(),
                    range.clone().unwrap_or_default()
                );
                lg.lock().unwrap().push(line);
                let response = answer(&repos, &gated, request.method(), request.url(), range.as_deref(), &st);
                let _ = request.respond(response);
            }
        });
        FakeHub {
            url,
            server,
            thread: Some(thread),
            log,
            weight_bytes_sent: sent,
        }
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn answer(
    repos: &HashMap<String, HashMap<String, Vec<u8>>>,
    gated: &[String],
    method: &tiny_http::Method,
    url: &str,
    range: Option<&str>,
    sent: &AtomicU64,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let not_found = || {
        tiny_http::Response::from_data(b"not found".to_vec())
            .with_status_code(404)
            .with_header(header("X-Error-Code", "EntryNotFound"))
            .with_header(header("X-Repo-Commit", COMMIT))
    };
    // /{owner}/{name}/resolve/{revision}/{file}
    // A browser's CORS preflight (the page reads headers with Range requests).
    if *method == tiny_http::Method::Options {
        return tiny_http::Response::from_data(Vec::new())
            .with_status_code(204)
            .with_header(header("Access-Control-Allow-Origin", "*"))
            .with_header(header("Access-Control-Allow-Headers", "Range"));
    }
    // The repo info endpoint: /api/models/{owner}/{name}/revision/{revision}, its file list.
    if let Some(rest) = url.strip_prefix("/api/models/") {
        let repo = rest.split("/revision/").next().unwrap_or_default();
        let Some(files) = repos.get(repo) else {
            return tiny_http::Response::from_data(b"{\"error\":\"Repository not found\"}".to_vec())
                .with_status_code(404)
                .with_header(header("X-Error-Code", "RepoNotFound"));
        };
        let siblings: Vec<_> = files.keys().map(|f| serde_json::json!({"rfilename": f})).collect();
        let body = serde_json::json!({"id": repo, "sha": COMMIT, "siblings": siblings});
        return tiny_http::Response::from_data(body.to_string().into_bytes())
            .with_header(header("Content-Type", "application/json"));
    }
    let Some((repo, rest)) = url.trim_start_matches('/').split_once("/resolve/") else {
        return not_found();
    };
    if gated.iter().any(|g| g == repo) {
        return tiny_http::Response::from_data(b"gated".to_vec()).with_status_code(401);
    }
    let Some((_revision, file)) = rest.split_once('/') else {
        return not_found();
    };
    let Some(data) = repos.get(repo).and_then(|files| files.get(file)) else {
        return not_found();
    };
    let etag = format!("\"{:016x}{}\"", data.len(), file.len());
    let base = |body: Vec<u8>, status: u16| {
        tiny_http::Response::from_data(body)
            .with_status_code(status)
            .with_header(header("ETag", &etag))
            .with_header(header("X-Repo-Commit", COMMIT))
            .with_header(header("Accept-Ranges", "bytes"))
    };
    if *method == tiny_http::Method::Head {
        // The Hub names an LFS file's size in X-Linked-Size.
        return base(data.clone(), 200).with_header(header("X-Linked-Size", &data.len().to_string()));
    }
    let mut content_range = None;
    let body = match range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
    {
        Some((a, b)) => {
            let a: usize = a.parse().unwrap();
            let b: usize = b.parse::<usize>().unwrap().min(data.len() - 1);
            content_range = Some(format!("bytes {a}-{b}/{}", data.len()));
            data[a..=b].to_vec()
        }
        None => data.clone(),
    };
    if file.ends_with(".safetensors") || file.ends_with(".gguf") || file.ends_with(".bin") {
        sent.fetch_add(body.len() as u64, Ordering::SeqCst);
    }
    let status = if range.is_some() { 206 } else { 200 };
    let mut response = base(body, status)
        .with_header(header("Access-Control-Allow-Origin", "*"))
        .with_header(header("Access-Control-Expose-Headers", "Content-Range"));
    if let Some(cr) = content_range {
        response = response.with_header(header("Content-Range", &cr));
    }
    response
}

pub(crate) fn repo_files(dir: &std::path::Path) -> HashMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn header_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            8 + u64::from_le_bytes(b[..8].try_into().unwrap())
        })
        .sum()
}

fn options(hub: &FakeHub, tmp: &std::path::Path) -> HubOptions {
    HubOptions {
        endpoint: Some(hub.url.clone()),
        cache_dir: Some(tmp.join("hub")),
        header_cache_dir: Some(tmp.join("headers")),
        token: None,
        revision: None,
        offline: false,
    }
}

fn names_and_shapes(a: &arch::Architecture) -> Vec<(String, Vec<u64>)> {
    a.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect()
}

#[test]
fn sharded_repo_reads_only_headers_then_works_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_tiny_gpt2(&model, 3);
    let hub = FakeHub::start(
        HashMap::from([("acme/tiny-gpt2".to_string(), repo_files(&model))]),
        vec![],
    );
    let opts = options(&hub, tmp.path());

    let remote = load("acme/tiny-gpt2", &opts).unwrap();
    let local = arch::load_folder(&model).unwrap();
    assert_eq!(names_and_shapes(&remote), names_and_shapes(&local));
    assert_eq!(remote.total_params(), local.total_params());
    assert_eq!(remote.source, "hub");
    assert!(
        remote
            .tensors
            .iter()
            .all(|t| t.shard.as_deref().is_some_and(|s| s.ends_with("-of-00003.safetensors")))
    );
    // Exactly the 8-byte prefixes and the JSON headers, never a weight byte.
    assert_eq!(hub.weight_bytes_sent.load(Ordering::SeqCst), header_bytes(&model));
    let requests = hub.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /acme/tiny-gpt2/resolve/main/model-00001-of-00003.safetensors bytes=0-7")),
        "{requests:#?}"
    );

    // Offline afterwards: config from the HF cache, headers from our cache, no request.
    drop(hub);
    let offline = HubOptions {
        offline: true,
        endpoint: Some("http://127.0.0.1:9".into()),
        ..opts
    };
    let again = load("acme/tiny-gpt2", &offline).unwrap();
    assert_eq!(names_and_shapes(&again), names_and_shapes(&local));
    // The HF cache has the standard layout other tools share.
    assert!(tmp.path().join("hub/models--acme--tiny-gpt2/refs/main").is_file());
}

#[test]
fn single_file_repo_and_revision_in_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_tiny_gpt2(&model, 1);
    let hub = FakeHub::start(HashMap::from([("tiny".to_string(), repo_files(&model))]), vec![]);
    let opts = HubOptions {
        revision: Some("v1.0".into()),
        ..options(&hub, tmp.path())
    };
    let remote = load("tiny", &opts).unwrap();
    assert_eq!(remote.total_params(), arch::load_folder(&model).unwrap().total_params());
    assert!(
        hub.requests().iter().all(|r| r.contains("/resolve/v1.0/")),
        "{:#?}",
        hub.requests()
    );
    assert_eq!(hub.weight_bytes_sent.load(Ordering::SeqCst), header_bytes(&model));
}

#[test]
fn gated_repo_falls_back_to_the_catalogue_with_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(HashMap::new(), vec!["meta-llama/Llama-3.2-1B".into()]);
    let opts = LoadOptions {
        hub: options(&hub, tmp.path()),
        ..Default::default()
    };
    let arch = arch::load_model(&ModelRef::parse("meta-llama/Llama-3.2-1B"), &opts).unwrap();
    assert_eq!(arch.total_params(), 1_235_814_400);
    assert_eq!(arch.source, "catalogue");
    assert!(
        arch.notices.iter().any(|n| n.contains("HF_TOKEN")),
        "{:?}",
        arch.notices
    );
    match load("meta-llama/Llama-3.2-1B", &options(&hub, tmp.path())) {
        Err(HubFailure::Denied(_)) => {}
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[test]
fn unreachable_hub_uses_catalogue_or_names_close_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = HubOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        cache_dir: Some(tmp.path().join("hub")),
        header_cache_dir: Some(tmp.path().join("headers")),
        ..Default::default()
    };
    let opts = LoadOptions {
        hub: dead,
        ..Default::default()
    };
    let gpt2 = arch::load_model(&ModelRef::parse("gpt2"), &opts).unwrap();
    assert_eq!(gpt2.total_params(), 124_439_808);
    assert!(
        gpt2.notices.iter().any(|n| n.contains("unreachable")),
        "{:?}",
        gpt2.notices
    );
    let err = arch::load_model(&ModelRef::parse("meta-llama/Llama-3.1-70B"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("close catalogue names") && err.contains("meta-llama/Llama-3.1-8B"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn missing_repo_is_an_error_not_a_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(HashMap::new(), vec![]);
    let opts = LoadOptions {
        hub: options(&hub, tmp.path()),
        ..Default::default()
    };
    let err = arch::load_model(&ModelRef::parse("nobody/gpt2-typo"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody/gpt2-typo") && err.contains("gpt2"), "{err}");
}

/// A GGUF repo (no safetensors, no config.json): the architecture from the
/// GGUF header read with Range requests — a growing prefix, never the 4 MB
/// of tensor data — then offline from the header cache; a named file of a
/// repo with several (`owner/name:file.gguf`); the repo's file list finds a
/// GGUF that is not `model.gguf`.
#[test]
fn gguf_repos_are_read_from_their_header() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = crate::support::fixtures().join("gguf");
    let mut llama = std::fs::read(fixtures.join("llama-tiny.gguf")).unwrap();
    llama.resize(llama.len() + (4 << 20), 0);
    let moe = std::fs::read(fixtures.join("mixtral-tiny.gguf")).unwrap();
    let hub = FakeHub::start(
        HashMap::from([
            (
                "acme/tiny-GGUF".to_string(),
                HashMap::from([("model.gguf".to_string(), llama.clone())]),
            ),
            (
                "acme/moe-GGUF".to_string(),
                HashMap::from([
                    ("moe-Q8_0.gguf".to_string(), moe.clone()),
                    ("moe-Q4_K_M.gguf".to_string(), moe.clone()),
                ]),
            ),
        ]),
        vec![],
    );
    let opts = options(&hub, tmp.path());
    let local = arch::load_gguf_file(&fixtures.join("llama-tiny.gguf")).unwrap();
    let remote = load("acme/tiny-GGUF", &opts).unwrap();
    assert_eq!(names_and_shapes(&remote), names_and_shapes(&local));
    assert_eq!(remote.source, "hub (GGUF header)");
    let sent = hub.weight_bytes_sent.load(Ordering::SeqCst);
    assert!(
        sent <= 256 << 10,
        "{sent} bytes of a {} byte file crossed the wire",
        llama.len()
    );
    let named = load("acme/moe-GGUF:moe-Q8_0.gguf", &opts).unwrap();
    assert_eq!(named.name, "acme/moe-GGUF:moe-Q8_0.gguf");
    assert_eq!(
        named
            .tensors
            .iter()
            .filter(|t| t.kind == arch::TensorKind::Expert)
            .count(),
        24
    );
    // No model.gguf: the file list (preferring Q4_K_M) names one.
    let listed = load("acme/moe-GGUF", &opts).unwrap();
    assert_eq!(listed.name, "acme/moe-GGUF:moe-Q4_K_M.gguf");
    assert!(matches!(load("acme/tiny-GGUF:nope.gguf", &opts), Err(HubFailure::NotFound(m)) if m.contains("nope.gguf")));
    assert_eq!(
        ModelRef::parse("acme/moe-GGUF:moe-Q8_0.gguf"),
        ModelRef::Id("acme/moe-GGUF:moe-Q8_0.gguf".into())
    );
    // Offline afterwards, from the header cache.
    drop(hub);
    let offline = HubOptions {
        offline: true,
        endpoint: Some("http://127.0.0.1:9".into()),
        ..opts
    };
    let again = load("acme/tiny-GGUF", &offline).unwrap();
    assert_eq!(names_and_shapes(&again), names_and_shapes(&local));
}

/// A PyTorch checkpoint repo (no safetensors): the zip's central directory
/// and `data.pkl` through Range requests — not the 8 MB of storages — the
/// same tensors as the local file, then offline from the cached table.
#[test]
fn pytorch_checkpoint_repos_read_only_the_pickle() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::support::fixtures().join("torch/llama-tiny");
    // The fixture's members again, the first storage padded to 8 MB, as a big checkpoint's are.
    let mut source = zip::ZipArchive::new(std::fs::File::open(dir.join("pytorch_model.bin")).unwrap()).unwrap();
    let mut big = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..source.len() {
        let mut member = source.by_index(i).unwrap();
        let name = member.name().unwrap().to_string();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).unwrap();
        if name.ends_with("/data/0") {
            bytes.resize(8 << 20, 0);
        }
        big.start_file(name, stored).unwrap();
        big.write_all(&bytes).unwrap();
    }
    let big = big.finish().unwrap().into_inner();
    let hub = FakeHub::start(
        HashMap::from([(
            "acme/old-llama".to_string(),
            HashMap::from([
                ("pytorch_model.bin".to_string(), big.clone()),
                (
                    "config.json".to_string(),
                    std::fs::read(dir.join("config.json")).unwrap(),
                ),
                (
                    "README.md".to_string(),
                    b"---\nlicense: mit\nbase_model: acme/llama-base\nbase_model_relation: finetune\n---\n# Old llama\n"
                        .to_vec(),
                ),
            ]),
        )]),
        vec![],
    );
    let opts = options(&hub, tmp.path());
    let local = arch::load_folder(&dir).unwrap();
    let remote = load("acme/old-llama", &opts).unwrap();
    // The model card's base_model is shown.
    assert!(
        remote
            .notices
            .iter()
            .any(|n| n == "made from `acme/llama-base` (finetune; the model card's base_model)"),
        "{:?}",
        remote.notices
    );
    assert_eq!(names_and_shapes(&remote), names_and_shapes(&local));
    assert_eq!(
        (remote.source.as_str(), remote.family.clone()),
        ("hub (PyTorch checkpoint)", local.family.clone())
    );
    let sent = hub.weight_bytes_sent.load(Ordering::SeqCst);
    eprintln!("PyTorch checkpoint over the fake Hub: {sent} of {} bytes", big.len());
    assert!(
        sent <= 3 * (64 << 10),
        "{sent} bytes of a {} byte file crossed the wire",
        big.len()
    );
    drop(hub);
    let offline = HubOptions {
        offline: true,
        endpoint: Some("http://127.0.0.1:9".into()),
        ..opts
    };
    let again = load("acme/old-llama", &offline).unwrap();
    assert_eq!(names_and_shapes(&again), names_and_shapes(&local));
}
