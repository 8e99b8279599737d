//! The weights lens's throughput (`cargo bench --profile dev --bench weights`):
//! `stats` over a 1.07 GB safetensors file (16 f32 matrices of 4096 x 4096,
//! random) and `diff` of that file against itself (2.15 GB read), from the
//! page cache, median of 3 after a warm-up, 2 threads; the process's peak RSS;
//! and numpy doing the same statistics over a memory map of the same file in
//! the same run (`tests/benches/weights_numpy.py`; `TENSORCITY_PYTHON`, else
//! the cached venv). Then the zoom plane: the overview and a full-resolution
//! tile of the largest tensor of a Llama-3.2-1B-shaped file (the 128,256 x
//! 2,048 bf16 embedding, 525 MB). `TENSORCITY_BENCH_ONLY=zoom` runs that alone.

#[path = "common/mod.rs"]
mod common;
use common::peak_rss_mib;
use std::io::Write;
use std::time::Instant;

const TENSORS: usize = 16;
const SIDE: usize = 4096;

fn write_file(path: &std::path::Path) -> u64 {
    let mut header = String::from("{");
    let bytes = (SIDE * SIDE * 4) as u64;
    for i in 0..TENSORS {
        let (a, b) = (i as u64 * bytes, (i as u64 + 1) * bytes);
        header += &format!(
            "{}\"layers.{i}.weight\":{{\"dtype\":\"F32\",\"shape\":[{SIDE},{SIDE}],\"data_offsets\":[{a},{b}]}}",
            if i > 0 { "," } else { "" }
        );
    }
    header += "}";
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    f.write_all(&(header.len() as u64).to_le_bytes()).expect("write");
    f.write_all(header.as_bytes()).expect("write");
    // A cheap normal-ish generator (sum of uniforms), one row at a time.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut row = vec![0u8; SIDE * 4];
    for _ in 0..TENSORS * SIDE {
        for c in row.chunks_exact_mut(4) {
            let mut s = 0f32;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s += (state >> 40) as f32 / (1u64 << 24) as f32;
            }
            c.copy_from_slice(&((s - 2.0) * 0.03).to_le_bytes());
        }
        f.write_all(&row).expect("write");
    }
    f.flush().expect("flush");
    8 + header.len() as u64 + TENSORS as u64 * bytes
}

fn median(mut f: impl FnMut() -> f64) -> f64 {
    f();
    let mut t: Vec<f64> = (0..3).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t[1]
}

/// A safetensors file of one bf16 `[rows, cols]` tensor of small random values.
fn write_embedding(path: &std::path::Path, rows: usize, cols: usize) {
    let header = format!(
        "{{\"model.embed_tokens.weight\":{{\"dtype\":\"BF16\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{}]}}}}",
        rows * cols * 2
    );
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    f.write_all(&(header.len() as u64).to_le_bytes()).expect("write");
    f.write_all(header.as_bytes()).expect("write");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut row = vec![0u8; cols * 2];
    for _ in 0..rows {
        for c in row.chunks_exact_mut(2) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
            c.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes());
        }
        f.write_all(&row).expect("write");
    }
    f.flush().expect("flush");
}

fn zoom(dir: &std::path::Path) {
    use tensorcity::weights::plane;
    let path = dir.join("llama-3.2-1b-embedding.safetensors");
    write_embedding(&path, 128_256, 2048);
    let tensors = tensorcity::weights::source::open(&path).expect("open");
    let t = &tensors[0];
    let mut level = 0;
    let open_s = median(|| {
        let s = Instant::now();
        let (l, texels) = plane::overview(t).expect("overview");
        level = l;
        assert!(texels.width.max(texels.height) <= plane::OVERVIEW_MAX);
        s.elapsed().as_secs_f64()
    });
    let tile_s = median(|| {
        let s = Instant::now();
        plane::tile(t, 0, 3, 200).expect("tile");
        s.elapsed().as_secs_f64()
    });
    let (rows, cols) = plane::PlaneShape::of(&t.shape).texels(level);
    println!(
        "zoom plane of a 128,256 x 2,048 bf16 embedding (525 MB): overview (level {level}, {cols} x {rows} texels) in {:.0} ms; a full-resolution {} x {} tile in {:.1} ms; peak RSS {:.0} MiB",
        open_s * 1e3,
        plane::TILE,
        plane::TILE,
        tile_s * 1e3,
        peak_rss_mib()
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::var("TENSORCITY_BENCH_ONLY").is_ok_and(|o| o == "zoom") {
        zoom(dir.path());
        return;
    }
    let path = dir.path().join("big.safetensors");
    let size = write_file(&path);
    let gb = size as f64 / 1e9;
    let rss_before = peak_rss_mib();
    let tensors = tensorcity::weights::source::open(&path).expect("open");
    let stats_s = median(|| {
        let t = Instant::now();
        let s = tensorcity::weights::statistics(&tensors);
        assert_eq!(s.len(), TENSORS);
        t.elapsed().as_secs_f64()
    });
    println!(
        "stats: {gb:.2} GB in {:.2} s = {:.2} GB/s on {} threads; peak RSS {:.0} MiB (before: {rss_before:.0} MiB)",
        stats_s,
        gb / stats_s,
        rayon::current_num_threads(),
        peak_rss_mib()
    );
    let diff_s = median(|| {
        let t = Instant::now();
        let d = tensorcity::weights::diff::diff(&tensors, &tensors);
        assert_eq!(d.tensors.len(), TENSORS);
        t.elapsed().as_secs_f64()
    });
    println!(
        "diff (the file against itself): {:.2} GB read in {diff_s:.2} s = {:.2} GB/s; peak RSS {:.0} MiB",
        2.0 * gb,
        2.0 * gb / diff_s,
        peak_rss_mib()
    );
    let home = std::env::var("HOME").unwrap_or_default();
    let python = std::env::var("TENSORCITY_PYTHON").unwrap_or(format!("{home}/.cache/tensorcity/venv/bin/python"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/benches/weights_numpy.py");
    match std::process::Command::new(python).arg(script).arg(&path).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let secs: f64 = text.trim().parse().unwrap_or(f64::NAN);
            println!(
                "numpy, the same statistics over a memory map: {secs:.2} s = {:.2} GB/s (tensorcity {:.1}x faster)",
                gb / secs,
                secs / stats_s
            );
        }
        Ok(o) => println!(
            "numpy: failed ({})",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("numpy: not measured ({e})"),
    }
    zoom(dir.path());
}
