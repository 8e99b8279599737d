//! The zoom into the weights (pure, no Bevy): a tensor as a 2-D plane of its
//! values (rows = every dimension but the last, columns = the last; a 1-D
//! tensor is a one-row strip), as a pyramid of levels. At level `L` one texel
//! stands for a `2^L x 2^L` block of elements and shows the block's element
//! of largest magnitude, sign kept, so an outlier stays visible however far
//! out the camera is; level 0 is one texel per element. Texels come in
//! [`TILE`] x [`TILE`] tiles, built from the weights on demand (a background
//! task in the app) and at most [`MAX_RESIDENT_TILES`] kept at once: the
//! texture budget is 64 tiles of 256 x 256 RGBA8 texels = 16 MiB per plane,
//! whatever the tensor's size. The first picture is the overview
//! ([`overview`]): the coarsest level that still fits [`OVERVIEW_MAX`]
//! texels on its longer side, built in one streaming pass over the tensor.

use std::ops::Range;

use super::source::Tensor;

/// What a plane shows: a tensor's values, or the difference of two.
pub trait Values: Send + Sync {
    fn shape(&self) -> &[u64];
    /// The values of elements `range` (flat, row-major) as f32.
    fn read(&self, range: Range<u64>) -> Result<Vec<f32>, String>;
    /// Whether only whole rows can be read (GGUF dequantizes rows).
    fn reads_whole_rows(&self) -> bool;
}

impl Values for Tensor {
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn read(&self, range: Range<u64>) -> Result<Vec<f32>, String> {
        Tensor::read(self, range)
    }
    fn reads_whole_rows(&self) -> bool {
        Tensor::reads_whole_rows(self)
    }
}

/// `b - a` of two tensors of one shape (the plane of `view A --diff B`).
pub struct Delta {
    pub a: Tensor,
    pub b: Tensor,
}

impl Delta {
    /// The difference of two same-named tensors, if their shapes agree.
    pub fn new(a: Tensor, b: Tensor) -> Result<Delta, String> {
        if a.shape != b.shape {
            return Err(format!(
                "`{}` has shape {:?} here and {:?} in the checkpoint compared with: no difference to draw",
                a.name, a.shape, b.shape
            ));
        }
        Ok(Delta { a, b })
    }
}

impl Values for Delta {
    fn shape(&self) -> &[u64] {
        &self.a.shape
    }
    fn read(&self, range: Range<u64>) -> Result<Vec<f32>, String> {
        let (a, b) = (self.a.read(range.clone())?, self.b.read(range)?);
        Ok(a.iter().zip(&b).map(|(a, b)| b - a).collect())
    }
    fn reads_whole_rows(&self) -> bool {
        self.a.reads_whole_rows() || self.b.reads_whole_rows()
    }
}

/// Texels on a tile's side.
pub const TILE: u64 = 256;
/// Tiles kept per plane (16 MiB of RGBA8 texels).
pub const MAX_RESIDENT_TILES: usize = 64;
/// The overview's longer side is at most this many texels.
pub const OVERVIEW_MAX: u64 = 2048;

/// A tensor's plane: rows x columns of elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneShape {
    pub rows: u64,
    pub cols: u64,
}

impl PlaneShape {
    pub fn of(shape: &[u64]) -> PlaneShape {
        let cols = shape.last().copied().unwrap_or(1).max(1);
        let rows = shape[..shape.len().saturating_sub(1)]
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d))
            .max(1);
        PlaneShape { rows, cols }
    }

    /// Texels of level `level`: `(rows, cols)`, each rounded up.
    pub fn texels(self, level: u32) -> (u64, u64) {
        let side = 1u64 << level.min(63);
        (self.rows.div_ceil(side), self.cols.div_ceil(side))
    }

    /// The finest level whose `(rows, cols)` of texels `fits`.
    fn finest(self, fits: impl Fn(u64, u64) -> bool) -> u32 {
        (0..63)
            .find(|&l| {
                let (r, c) = self.texels(l);
                fits(r, c)
            })
            .unwrap_or(63)
    }

    /// The finest level whose longer side fits `max` texels.
    pub fn level_fitting(self, max: u64) -> u32 {
        self.finest(|r, c| r.max(c) <= max.max(1))
    }

    /// The finest level with at most `max` texels in all.
    pub fn level_within_texels(self, max: u64) -> u32 {
        self.finest(|r, c| r.saturating_mul(c) <= max.max(1))
    }

    /// Levels from 0 (one texel per element) to the one that fits one tile.
    pub fn levels(self) -> u32 {
        self.level_fitting(TILE) + 1
    }

    /// Tiles of level `level`: `(down, across)`.
    pub fn tiles(self, level: u32) -> (u64, u64) {
        let (r, c) = self.texels(level);
        (r.div_ceil(TILE), c.div_ceil(TILE))
    }
}

/// A rectangle of texels: values row by row, NaN where no element lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Texels {
    pub width: u64,
    pub height: u64,
    pub values: Vec<f32>,
}

/// Keeps the element of larger magnitude (NaN loses to any number).
fn larger(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.abs() > a.abs() { b } else { a }
}

/// Elements read at once while pooling (16 MB as f32 per worker).
const BATCH_ELEMENTS: u64 = 1 << 22;

/// Pools texels `(x0..x0 + width, y0..y0 + height)` of level `level`
/// from the tensor's values, reading only the element rows they cover (each
/// row's covered columns), bands of texel rows in parallel.
pub fn texels(t: &dyn Values, level: u32, x0: u64, y0: u64, width: u64, height: u64) -> Result<Texels, String> {
    use rayon::prelude::*;
    let plane = PlaneShape::of(t.shape());
    let side = 1u64 << level.min(63);
    let (rows, cols) = plane.texels(level);
    let (width, height) = (width.min(cols.saturating_sub(x0)), height.min(rows.saturating_sub(y0)));
    let mut values = vec![f32::NAN; (width * height) as usize];
    if values.is_empty() {
        return Ok(Texels { width, height, values });
    }
    let (first_col, last_col) = (x0 * side, ((x0 + width) * side).min(plane.cols));
    // GGUF tensors are dequantized by whole rows; the columns outside are skipped.
    let whole_rows = (first_col == 0 && last_col == plane.cols) || t.reads_whole_rows();
    let read_cols = if whole_rows { plane.cols } else { last_col - first_col };
    // Texel rows per band: each band's element rows are read in one go.
    let band = (BATCH_ELEMENTS / read_cols.saturating_mul(side).max(1)).max(1);
    values
        .par_chunks_mut((width * band) as usize)
        .enumerate()
        .try_for_each(|(b, out)| -> Result<(), String> {
            let ty0 = y0 + b as u64 * band;
            let ty1 = (ty0 + band).min(y0 + height);
            let (r0, r1) = (ty0 * side, (ty1 * side).min(plane.rows));
            let pool = |r: u64, elements: &[f32], offset: u64, out: &mut [f32]| {
                let ty = (r / side - ty0) as usize;
                for (i, &v) in elements.iter().enumerate() {
                    let c = i as u64 + offset;
                    if c < first_col || c >= last_col {
                        continue;
                    }
                    let at = ty * width as usize + (c / side - x0) as usize;
                    if let Some(slot) = out.get_mut(at) {
                        *slot = larger(*slot, v);
                    }
                }
            };
            if whole_rows {
                let v = t.read(r0 * plane.cols..r1 * plane.cols)?;
                for (i, row) in v.chunks(plane.cols as usize).enumerate() {
                    pool(r0 + i as u64, row, 0, out);
                }
            } else {
                for r in r0..r1 {
                    let row = t.read(r * plane.cols + first_col..r * plane.cols + last_col)?;
                    pool(r, &row, first_col, out);
                }
            }
            Ok(())
        })?;
    Ok(Texels { width, height, values })
}

/// The overview: the finest level that fits [`OVERVIEW_MAX`], whole, and its level.
pub fn overview(t: &dyn Values) -> Result<(u32, Texels), String> {
    overview_within(t, OVERVIEW_MAX, OVERVIEW_MAX * OVERVIEW_MAX)
}

/// The finest level whose longer side fits `max` texels and that has at
/// most `max_texels` texels in all, whole, and its level.
pub fn overview_within(t: &dyn Values, max: u64, max_texels: u64) -> Result<(u32, Texels), String> {
    let plane = PlaneShape::of(t.shape());
    let level = plane.level_fitting(max).max(plane.level_within_texels(max_texels));
    let (rows, cols) = plane.texels(level);
    Ok((level, texels(t, level, 0, 0, cols, rows)?))
}

/// Tile `(tx, ty)` of level `level`.
pub fn tile(t: &dyn Values, level: u32, tx: u64, ty: u64) -> Result<Texels, String> {
    texels(t, level, tx * TILE, ty * TILE, TILE, TILE)
}

/// The diverging colour of `v` scaled to `max_abs`: blue (negative) through
/// near-white (zero) to red (positive), perceptually even steps (the
/// endpoints of ColorBrewer's RdBu); NaN and infinities are bright green so
/// they are never mistaken for a weight.
pub fn diverging(v: f32, max_abs: f32) -> [u8; 4] {
    if !v.is_finite() {
        return [0, 255, 64, 255];
    }
    let t = if max_abs > 0.0 {
        (v / max_abs).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (end, mid) = if t < 0.0 {
        ([33.0, 102.0, 172.0], [247.0, 247.0, 247.0])
    } else {
        ([178.0, 24.0, 43.0], [247.0, 247.0, 247.0])
    };
    // sqrt: small weights (most of a matrix) still take visible colour.
    let s = t.abs().sqrt();
    let c = |i: usize| (mid[i] + (end[i] - mid[i]) * s).round() as u8;
    [c(0), c(1), c(2), 255]
}

/// The largest finite magnitude among the texels (each texel keeps its
/// block's largest element, so over an overview this is the tensor's max |x|
/// unless a block also holds an infinity); 0 when there is none.
pub fn max_abs(texels: &Texels) -> f32 {
    texels
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The texels as sRGB RGBA8 bytes, row by row, coloured by [`diverging`].
pub fn rgba(texels: &Texels, max_abs: f32) -> Vec<u8> {
    texels.values.iter().flat_map(|&v| diverging(v, max_abs)).collect()
}

/// Tiles to keep: those of `level` covering the view rectangle `(x0, y0,
/// x1, y1)` in texels of that level, nearest the centre first, at most
/// [`MAX_RESIDENT_TILES`].
pub fn visible_tiles(plane: PlaneShape, level: u32, view: (f64, f64, f64, f64)) -> Vec<(u64, u64)> {
    let (down, across) = plane.tiles(level);
    let tile = TILE as f64;
    let clamp = |v: f64, n: u64| (v / tile).floor().clamp(0.0, n.saturating_sub(1) as f64) as u64;
    let (x0, x1) = (clamp(view.0, across), clamp(view.2, across));
    let (y0, y1) = (clamp(view.1, down), clamp(view.3, down));
    let (cx, cy) = ((view.0 + view.2) / 2.0 / tile, (view.1 + view.3) / 2.0 / tile);
    let mut tiles: Vec<(u64, u64)> = (y0..=y1).flat_map(|y| (x0..=x1).map(move |x| (x, y))).collect();
    tiles.sort_by(|a, b| {
        let d = |&(x, y): &(u64, u64)| (x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2);
        d(a).total_cmp(&d(b))
    });
    tiles.truncate(MAX_RESIDENT_TILES);
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tensor of `shape` with these f32 values, held in memory.
    fn tensor(shape: &[u64], values: &[f32]) -> Tensor {
        let json = format!(
            r#"{{"w":{{"dtype":"F32","shape":{shape:?},"data_offsets":[0,{}]}}}}"#,
            values.len() * 4
        );
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend(json.as_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        super::super::source::open_static(leaked, "test").unwrap().remove(0)
    }

    #[test]
    fn a_128256_row_embedding_has_a_bounded_overview_and_tiles() {
        let p = PlaneShape::of(&[128256, 4096]);
        assert_eq!(p.level_fitting(OVERVIEW_MAX), 6);
        assert_eq!(p.texels(6), (2004, 64));
        assert_eq!(p.levels(), 10, "level 9 fits one tile: 251 x 8");
        assert_eq!(p.tiles(0), (501, 16));
        assert_eq!(PlaneShape::of(&[768]), PlaneShape { rows: 1, cols: 768 });
        assert_eq!(PlaneShape::of(&[8, 3, 5]), PlaneShape { rows: 24, cols: 5 });
        let view = visible_tiles(p, 0, (0.0, 0.0, 1e9, 1e9));
        assert_eq!(view.len(), MAX_RESIDENT_TILES, "the budget holds");
        let near = visible_tiles(p, 0, (300.0, 300.0, 700.0, 700.0));
        assert_eq!(near.len(), 4, "texels 300..700 lie on tiles 1 and 2 each way");
        assert_eq!(near[0], (1, 1), "the centre tile first");
    }

    #[test]
    fn texels_keep_each_blocks_largest_magnitude_with_its_sign() {
        #[rustfmt::skip]
        let v = [
            1.0, -2.0,  0.5, 0.0,  3.0, 0.0,
            0.1,  0.2, -4.0, 1.0,  0.0, 0.0,
            0.0,  0.0,  0.0, 0.0,  0.0, -0.5,
            9.0,  0.0,  0.0, 0.0,  0.0, 0.0,
        ];
        let t = tensor(&[4, 6], &v);
        let whole = texels(&t, 1, 0, 0, 3, 2).unwrap();
        assert_eq!((whole.width, whole.height), (3, 2));
        assert_eq!(whole.values, [-2.0, -4.0, 3.0, 9.0, 0.0, -0.5]);
        // A window reads only its columns and gives the same texels.
        let part = texels(&t, 1, 1, 1, 2, 1).unwrap();
        assert_eq!(part.values, [0.0, -0.5]);
        assert_eq!(texels(&t, 0, 0, 0, 6, 4).unwrap().values, v, "level 0 is the tensor");
        let (level, over) = overview(&t).unwrap();
        assert_eq!((level, over.values.len()), (0, 24));
        // Past the edge: clipped, not read.
        assert_eq!(tile(&t, 2, 0, 0).unwrap().values, [9.0, 3.0]);
    }

    #[test]
    fn the_colour_map_diverges_around_zero() {
        assert_eq!(diverging(0.0, 1.0), [247, 247, 247, 255]);
        assert_eq!(diverging(-1.0, 1.0), [33, 102, 172, 255]);
        assert_eq!(diverging(5.0, 1.0), [178, 24, 43, 255]);
        assert_eq!(diverging(f32::NAN, 1.0), [0, 255, 64, 255]);
        assert_eq!(diverging(0.3, 0.0), [247, 247, 247, 255]);
    }
}
