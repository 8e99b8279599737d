//! Where recorded frames go: an MP4 through ffmpeg (raw RGB piped to its
//! stdin, H.264 yuv420p, no temporary files), a GIF written in Rust (a
//! palette per frame, delays that keep true speed), or a PNG sequence.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, bail};

/// The output kind, from the `--out` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Mp4(PathBuf),
    Gif(PathBuf),
    /// A folder of `frame_00000.png`, ...
    Frames(PathBuf),
}

impl Output {
    /// `clip.mp4`, `clip.gif`, or a folder (`frames/`, an existing folder or a
    /// name without extension); anything else is refused.
    pub fn from_path(path: &Path) -> anyhow::Result<Output> {
        let text = path.to_string_lossy();
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        if text.ends_with('/') || path.is_dir() {
            return Ok(Output::Frames(path.to_path_buf()));
        }
        match ext.as_deref() {
            None => Ok(Output::Frames(path.to_path_buf())),
            Some("mp4") => Ok(Output::Mp4(path.to_path_buf())),
            Some("gif") => Ok(Output::Gif(path.to_path_buf())),
            Some(other) => bail!(
                "{}: unsupported output type `.{other}`; use .mp4, .gif or a folder for PNG frames (e.g. frames/)",
                path.display()
            ),
        }
    }

    /// Checks everything that can be checked before rendering: the folder
    /// exists and is writable (a frames folder is created), ffmpeg with
    /// libx264 is installed for MP4.
    pub fn prepare(&self) -> anyhow::Result<()> {
        match self {
            Output::Frames(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("{}: cannot create the frames folder", dir.display()))?;
                crate::offscreen::check_writable_folder(dir, dir)?;
            }
            Output::Mp4(path) | Output::Gif(path) => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                crate::offscreen::check_writable_folder(dir, path)?;
            }
        }
        if matches!(self, Output::Mp4(_)) {
            check_ffmpeg()?;
        }
        Ok(())
    }
}

/// ffmpeg must be on PATH and have the libx264 encoder.
pub fn check_ffmpeg() -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(_) => bail!(
            "MP4 needs ffmpeg, which is not installed (Debian/Ubuntu: `apt-get install ffmpeg`, macOS: `brew install ffmpeg`); or record a .gif or a folder of PNG frames"
        ),
        Ok(o) if !String::from_utf8_lossy(&o.stdout).contains("libx264") => bail!(
            "this ffmpeg has no H.264 encoder (libx264); install a full ffmpeg build (Debian/Ubuntu: `apt-get install ffmpeg`), or record a .gif or PNG frames"
        ),
        Ok(_) => Ok(()),
    }
}

/// Takes frames (tightly packed RGB8, `width * height * 3` bytes) in order.
pub trait FrameSink {
    fn push(&mut self, rgb: &[u8]) -> anyhow::Result<()>;
    /// Flushes and closes the output.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Opens the sink for `output`.
pub fn open(output: &Output, size: (u32, u32), fps: u32) -> anyhow::Result<Box<dyn FrameSink>> {
    Ok(match output {
        Output::Mp4(path) => Box::new(Mp4Sink::spawn(path, size, fps)?),
        Output::Gif(path) => Box::new(GifSink::create(path, size, fps)?),
        Output::Frames(dir) => Box::new(PngSink {
            dir: dir.clone(),
            size,
            next: 0,
        }),
    })
}

/// ffmpeg reading raw frames on stdin.
pub struct Mp4Sink {
    child: Child,
    stdin: Option<ChildStdin>,
    path: PathBuf,
    /// What ffmpeg writes; renamed to `path` when it has written the trailer.
    partial: tempfile::NamedTempFile,
}

impl Mp4Sink {
    pub fn spawn(path: &Path, size: (u32, u32), fps: u32) -> anyhow::Result<Mp4Sink> {
        let partial = crate::output::beside(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let mut child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
            ])
            .args([
                "-s",
                &format!("{}x{}", size.0, size.1),
                "-framerate",
                &fps.to_string(),
                "-i",
                "-",
            ])
            // yuv420p needs even dimensions: pad odd ones by a pixel.
            .args([
                "-vf",
                "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                "-c:v",
                "libx264",
                "-preset",
                "medium",
                "-crf",
                "20",
            ])
            .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart"])
            .arg(partial.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ffmpeg")?;
        let stdin = child.stdin.take();
        Ok(Mp4Sink {
            child,
            stdin,
            path: path.to_path_buf(),
            partial,
        })
    }

    fn failure(&mut self) -> anyhow::Error {
        self.stdin = None;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let _ = self.child.wait();
        anyhow::anyhow!("ffmpeg failed writing {}: {}", self.path.display(), err.trim())
    }
}

impl FrameSink for Mp4Sink {
    fn push(&mut self, rgb: &[u8]) -> anyhow::Result<()> {
        let ok = self.stdin.as_mut().is_some_and(|s| s.write_all(rgb).is_ok());
        if ok { Ok(()) } else { Err(self.failure()) }
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.stdin = None; // EOF: ffmpeg writes the trailer
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let status = self.child.wait().context("waiting for ffmpeg")?;
        if !status.success() {
            bail!("ffmpeg failed writing {}: {}", self.path.display(), err.trim());
        }
        crate::output::finish(self.partial, &self.path)
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}

/// GIF delays in hundredths of a second for frame `i` at `fps`, rounded so
/// that the total after each frame stays as close as possible to true time.
pub fn gif_delay(i: u64, fps: u32) -> u16 {
    let at = |n: u64| (n * 100 + fps as u64 / 2) / fps.max(1) as u64;
    (at(i + 1) - at(i)) as u16
}

/// An animated GIF, each frame quantised to its own 256-colour palette.
pub struct GifSink {
    encoder: gif::Encoder<std::io::BufWriter<std::fs::File>>,
    /// The file being written; renamed to `path` by `finish`.
    partial: tempfile::NamedTempFile,
    size: (u16, u16),
    fps: u32,
    next: u64,
    path: PathBuf,
}

impl GifSink {
    pub fn create(path: &Path, size: (u32, u32), fps: u32) -> anyhow::Result<GifSink> {
        let (w, h) = (u16::try_from(size.0), u16::try_from(size.1));
        let (Ok(w), Ok(h)) = (w, h) else {
            bail!("a GIF is at most 65535 pixels on each side");
        };
        let cannot = || format!("{}: cannot create", path.display());
        let partial = crate::output::beside(path).with_context(cannot)?;
        let file = partial.reopen().with_context(cannot)?;
        let mut encoder = gif::Encoder::new(std::io::BufWriter::new(file), w, h, &[])
            .with_context(|| format!("{}: writing the GIF header", path.display()))?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .with_context(|| format!("{}: writing the GIF header", path.display()))?;
        Ok(GifSink {
            encoder,
            partial,
            size: (w, h),
            fps,
            next: 0,
            path: path.to_path_buf(),
        })
    }
}

impl FrameSink for GifSink {
    fn push(&mut self, rgb: &[u8]) -> anyhow::Result<()> {
        // NeuQuant at speed 10: a good palette per frame, deterministic.
        let mut frame = gif::Frame::from_rgb_speed(self.size.0, self.size.1, rgb, 10);
        frame.delay = gif_delay(self.next, self.fps);
        self.next += 1;
        self.encoder
            .write_frame(&frame)
            .with_context(|| format!("{}: writing frame {}", self.path.display(), self.next))
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let path = self.path.clone();
        let mut writer = self
            .encoder
            .into_inner()
            .with_context(|| format!("{}: finishing the GIF", path.display()))?;
        writer
            .flush()
            .with_context(|| format!("{}: finishing the GIF", path.display()))?;
        drop(writer);
        crate::output::finish(self.partial, &path).with_context(|| format!("{}: cannot write", path.display()))
    }
}

/// `frame_00000.png`, `frame_00001.png`, ... in a folder.
pub struct PngSink {
    dir: PathBuf,
    size: (u32, u32),
    next: u64,
}

impl FrameSink for PngSink {
    fn push(&mut self, rgb: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(format!("frame_{:05}.png", self.next));
        self.next += 1;
        let image =
            image::RgbImage::from_raw(self.size.0, self.size.1, rgb.to_vec()).context("a frame of the wrong size")?;
        crate::output::write_whole(&path, |tmp| image.save_with_format(tmp, image::ImageFormat::Png))
            .with_context(|| format!("{}: cannot write", path.display()))
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_follow_the_extension() {
        assert_eq!(
            Output::from_path(Path::new("a/clip.MP4")).unwrap(),
            Output::Mp4("a/clip.MP4".into())
        );
        assert_eq!(
            Output::from_path(Path::new("clip.gif")).unwrap(),
            Output::Gif("clip.gif".into())
        );
        assert_eq!(
            Output::from_path(Path::new("frames/")).unwrap(),
            Output::Frames("frames/".into())
        );
        assert_eq!(
            Output::from_path(Path::new("frames")).unwrap(),
            Output::Frames("frames".into())
        );
        let err = Output::from_path(Path::new("clip.avi")).unwrap_err().to_string();
        assert!(err.contains("unsupported output type `.avi`"), "{err}");
    }

    #[test]
    fn gif_delays_keep_true_time() {
        // 10 fps: exactly 10 cs each. 30 fps: 3 or 4 cs, 100 cs per 30 frames.
        assert!((0..20).all(|i| gif_delay(i, 10) == 10));
        let total: u32 = (0..30).map(|i| gif_delay(i, 30) as u32).sum();
        assert_eq!(total, 100);
        assert!((0..30).all(|i| (3..=4).contains(&gif_delay(i, 30))));
    }
}
