//! Frame scripts for the windowed viewer (`tensorcity view --script FILE`):
//! reproducible demos and end-to-end tests under Xvfb. One command per line,
//! `#` starts a comment:
//!
//! ```text
//! wait-ready              # model loaded and cubes actually drawn (or the load failed)
//! frames 30               # let 30 frames pass
//! orbit 120 25            # glide to yaw 120°, pitch 25°
//! zoom 0.5                # half the current distance
//! focus h.5.mlp.c_fc.weight   # select a tensor and glide to it
//! layout floors           # switch arrangement
//! hide norm               # hide a kind (legend label)
//! prompt ROMEO:\nBut soft  # run a prompt (`\n` is a newline)
//! generate 20 ROMEO:      # run a prompt and generate 20 tokens (greedy)
//! wait-run                # until the run is done (or failed)
//! select 3                # select token 3 (logit lens, panels)
//! speed 0.5               # city animation: layers per second
//! playhead 2.5            # pause the city at hidden state 2.5 (a pulse half way up)
//! tokens 4                # show the first 4 token columns (`tokens all`: every one)
//! arcs-layer 3            # arcs of block 3 only (`arcs-layer all`: every block)
//! threshold 0.3           # hide arcs below this weight
//! pca3d 4                 # tokens on PC1-3 of hidden state 4 in the scene (`pca3d off`)
//! record                  # start / stop recording the window (as F9)
//! shot 2                  # a PNG screenshot at 1, 2 or 4 times the view (as F12)
//! screenshot shot.png     # save the window; waits until written
//! exit
//! ```

mod steps;
pub use steps::{Heads, Step, parse};

#[cfg(feature = "app")]
mod run;
#[cfg(feature = "app")]
pub use run::*;
