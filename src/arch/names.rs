//! Tensor-name processing: numeric path segments are indices (block, expert),
//! not part of what a tensor *is*, so clean names drop them.

/// Drops every purely numeric path segment:
/// `h.0.attn.c_attn.weight` -> `h.attn.c_attn.weight`,
/// `model.layers.3.block_sparse_moe.experts.7.w1.weight` ->
/// `model.layers.block_sparse_moe.experts.w1.weight`.
pub fn clean_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for seg in name.split('.').filter(|s| !is_index(s)) {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// The numeric path segments of a name, in order (`[3, 7]` for the expert above).
/// Segments too large for `u32` are not indices and are skipped.
pub fn numeric_segments(name: &str) -> Vec<u32> {
    name.split('.')
        .filter(|s| is_index(s))
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn is_index(seg: &str) -> bool {
    !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_every_numeric_segment() {
        assert_eq!(clean_name("h.0.attn.c_attn.weight"), "h.attn.c_attn.weight");
        assert_eq!(
            clean_name("model.layers.31.block_sparse_moe.experts.3.w1.weight"),
            "model.layers.block_sparse_moe.experts.w1.weight"
        );
        assert_eq!(clean_name("a.0.1.b"), "a.b");
        assert_eq!(clean_name("wte.weight"), "wte.weight");
        assert_eq!(clean_name("layer2.weight"), "layer2.weight");
        assert_eq!(
            numeric_segments("model.layers.31.block_sparse_moe.experts.3.w1.weight"),
            vec![31, 3]
        );
        assert!(numeric_segments("lm_head.weight").is_empty());
    }
}
