//! A fixed colour per kind. Built from the colour-blind-safe Okabe-Ito and Paul
//! Tol palettes, with hues grouped by component (attention blues/greens, MLP
//! oranges/yellows, embeddings reds/pinks, heads purples, norms greys) so related
//! kinds read together and the groups stay apart under deuteranopia/protanopia.

use super::TensorKind;

/// `(kind, sRGB hex)` in legend order.
pub const KIND_COLORS: [(TensorKind, u32); 17] = [
    (TensorKind::Embedding, 0xD55E00),         // Okabe-Ito vermillion
    (TensorKind::PositionEmbedding, 0xCC79A7), // Okabe-Ito reddish purple
    (TensorKind::AttentionQuery, 0x56B4E9),    // Okabe-Ito sky blue
    (TensorKind::AttentionKey, 0x0072B2),      // Okabe-Ito blue
    (TensorKind::AttentionValue, 0x009E73),    // Okabe-Ito bluish green
    (TensorKind::AttentionQkv, 0x33BBEE),      // Tol vibrant cyan
    (TensorKind::AttentionOutput, 0x332288),   // Tol muted indigo
    (TensorKind::MlpGate, 0xF0E442),           // Okabe-Ito yellow
    (TensorKind::MlpGateUp, 0xEE7733),         // Tol vibrant orange
    (TensorKind::MlpUp, 0xE69F00),             // Okabe-Ito orange
    (TensorKind::MlpDown, 0x999933),           // Tol muted olive
    (TensorKind::Expert, 0xDDCC77),            // Tol muted sand
    (TensorKind::Router, 0xAA4499),            // Tol muted purple
    (TensorKind::Norm, 0xBBBBBB),              // Tol grey
    (TensorKind::LmHead, 0x882255),            // Tol muted wine
    (TensorKind::Pooler, 0x44AA99),            // Tol muted teal
    (TensorKind::Other, 0x777777),             // dark grey
];

/// sRGB hex colour of a kind.
pub fn kind_color(kind: TensorKind) -> u32 {
    KIND_COLORS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0x777777, |&(_, c)| c)
}

/// `0xRRGGBB` as sRGB floats in `0..=1`.
pub fn hex_to_rgb(hex: u32) -> [f32; 3] {
    [
        ((hex >> 16) & 0xFF) as f32 / 255.0,
        ((hex >> 8) & 0xFF) as f32 / 255.0,
        (hex & 0xFF) as f32 / 255.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_colour() {
        for kind in TensorKind::ALL {
            assert_eq!(KIND_COLORS.iter().filter(|(k, _)| *k == kind).count(), 1, "{kind:?}");
        }
        let mut colours: Vec<u32> = KIND_COLORS.iter().map(|&(_, c)| c).collect();
        colours.sort_unstable();
        colours.dedup();
        assert_eq!(colours.len(), KIND_COLORS.len());
        assert_eq!(hex_to_rgb(0xFF8000), [1.0, 128.0 / 255.0, 0.0]);
    }
}
