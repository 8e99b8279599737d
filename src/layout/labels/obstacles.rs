//! What labels must not cover: the screen rectangles of the cubes, bucketed
//! in a coarse grid over the view so a label asks only the cubes near it
//! (a 47,000-tensor model has as many rectangles). A cube's own layer label
//! may touch it (the label stands beside its own layer).

/// One cube on screen: its rectangle `[left, top, right, bottom]` and the
/// group (layer) it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obstacle {
    pub rect: [f32; 4],
    pub owner: Option<usize>,
}

/// Edge of one bucket in pixels.
const BUCKET: f32 = 48.0;
/// Buckets a side at most (a huge view is bucketed more coarsely).
const MAX_BUCKETS: usize = 256;

/// [`Obstacle`]s inside a view, bucketed.
#[derive(Debug, Clone)]
pub struct Obstacles {
    items: Vec<Obstacle>,
    origin: [f32; 2],
    bucket: [f32; 2],
    columns: usize,
    rows: usize,
    buckets: Vec<Vec<u32>>,
}

impl Obstacles {
    /// Buckets the finite rectangles of `items` that reach into `view`.
    pub fn new(items: impl IntoIterator<Item = Obstacle>, view: [f32; 4]) -> Obstacles {
        let (w, h) = ((view[2] - view[0]).max(1.0), (view[3] - view[1]).max(1.0));
        let columns = ((w / BUCKET).ceil() as usize).clamp(1, MAX_BUCKETS);
        let rows = ((h / BUCKET).ceil() as usize).clamp(1, MAX_BUCKETS);
        let mut index = Obstacles {
            items: Vec::new(),
            origin: [view[0], view[1]],
            bucket: [w / columns as f32, h / rows as f32],
            columns,
            rows,
            buckets: vec![Vec::new(); columns * rows],
        };
        for o in items {
            let r = o.rect;
            let visible =
                r.iter().all(|v| v.is_finite()) && r[0] < view[2] && r[2] > view[0] && r[1] < view[3] && r[3] > view[1];
            if !visible || index.items.len() >= u32::MAX as usize {
                continue;
            }
            let id = index.items.len() as u32;
            let ([c0, r0], [c1, r1]) = index.span(r);
            for row in r0..=r1 {
                for column in c0..=c1 {
                    index.buckets[row * columns + column].push(id);
                }
            }
            index.items.push(o);
        }
        index
    }

    /// No obstacles at all.
    pub fn none() -> Obstacles {
        Obstacles::new([], [0.0, 0.0, 1.0, 1.0])
    }

    /// The bucket range `[column, row]` first and last that `rect` covers (clamped to the grid).
    fn span(&self, rect: [f32; 4]) -> ([usize; 2], [usize; 2]) {
        let cell =
            |v: f32, origin: f32, size: f32, n: usize| (((v - origin) / size).floor().max(0.0) as usize).min(n - 1);
        (
            [
                cell(rect[0], self.origin[0], self.bucket[0], self.columns),
                cell(rect[1], self.origin[1], self.bucket[1], self.rows),
            ],
            [
                cell(rect[2], self.origin[0], self.bucket[0], self.columns),
                cell(rect[3], self.origin[1], self.bucket[1], self.rows),
            ],
        )
    }

    /// Whether `rect` overlaps a cube other than one of group `owner`'s.
    pub fn blocks(&self, rect: [f32; 4], owner: Option<usize>) -> bool {
        if self.items.is_empty() {
            return false;
        }
        let ([c0, r0], [c1, r1]) = self.span(rect);
        (r0..=r1).any(|row| {
            (c0..=c1).any(|column| {
                self.buckets[row * self.columns + column].iter().any(|&id| {
                    let o = &self.items[id as usize];
                    (owner.is_none() || o.owner != owner)
                        && o.rect[0] < rect[2]
                        && rect[0] < o.rect[2]
                        && o.rect[1] < rect[3]
                        && rect[1] < o.rect[3]
                })
            })
        })
    }

    /// How many obstacles reach into the view.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_is_blocked_by_the_cubes_it_overlaps_but_not_its_own_groups() {
        let view = [0.0, 0.0, 640.0, 360.0];
        let cubes = [
            Obstacle {
                rect: [100.0, 100.0, 110.0, 110.0],
                owner: Some(0),
            },
            Obstacle {
                rect: [600.0, 300.0, 700.0, 400.0],
                owner: Some(1),
            },
            Obstacle {
                rect: [f32::NAN, 0.0, 1.0, 1.0],
                owner: None,
            },
            Obstacle {
                rect: [-50.0, -50.0, -10.0, -10.0],
                owner: None,
            },
        ];
        let index = Obstacles::new(cubes, view);
        assert_eq!(index.len(), 2, "the broken and the off-view one are dropped");
        assert!(index.blocks([105.0, 105.0, 200.0, 120.0], None));
        assert!(index.blocks([105.0, 105.0, 200.0, 120.0], Some(1)));
        assert!(!index.blocks([105.0, 105.0, 200.0, 120.0], Some(0)), "its own layer");
        assert!(!index.blocks([111.0, 100.0, 200.0, 110.0], None), "beside, not over");
        // A wide label reaching over several buckets finds the cube far along it.
        assert!(index.blocks([0.0, 290.0, 639.0, 305.0], None));
        // Rectangles partly off the view are clamped to its edge buckets.
        assert!(index.blocks([630.0, 350.0, 2000.0, 2000.0], None));
        assert!(!Obstacles::none().blocks([0.0, 0.0, 1e9, 1e9], None));
    }
}
