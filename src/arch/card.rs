//! A Hub model card's (README.md) YAML front matter, for the one thing the
//! viewer shows of it: what the model was made from (`base_model`, with
//! `base_model_relation`: finetune, adapter, quantized, merge).

/// The `base_model` ids of a model card, and its `base_model_relation`.
pub fn base_models(card: &str) -> (Vec<String>, Option<String>) {
    let mut lines = card.lines();
    if lines.next().map(str::trim) != Some("---") {
        return (Vec::new(), None);
    }
    let (mut bases, mut relation, mut in_list) = (Vec::new(), None, false);
    let clean = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    for line in lines.take(500) {
        if line.trim() == "---" {
            break;
        }
        if in_list {
            if let Some(item) = line.trim_start().strip_prefix("- ") {
                bases.push(clean(item));
                continue;
            }
            in_list = false;
        }
        if let Some(value) = line.strip_prefix("base_model:") {
            let value = value.trim();
            if value.is_empty() {
                in_list = true;
            } else if let Some(inline) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                bases.extend(inline.split(',').map(clean).filter(|s| !s.is_empty()));
            } else {
                bases.push(clean(value));
            }
        } else if let Some(value) = line.strip_prefix("base_model_relation:") {
            relation = Some(clean(value));
        }
    }
    bases.retain(|b| !b.is_empty() && b.len() <= 200);
    (bases, relation)
}

/// The notice the viewer and `info` show, if the card names a base model.
pub fn base_model_notice(card: &str) -> Option<String> {
    let (bases, relation) = base_models(card);
    if bases.is_empty() {
        return None;
    }
    let list = bases.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(", ");
    Some(match relation {
        Some(r) => format!("made from {list} ({r}; the model card's base_model)"),
        None => format!("made from {list} (the model card's base_model)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_forms() {
        let inline = "---\nlicense: mit\nbase_model: meta-llama/Llama-3.1-8B\nbase_model_relation: finetune\n---\n# x";
        assert_eq!(
            base_models(inline),
            (
                vec!["meta-llama/Llama-3.1-8B".to_string()],
                Some("finetune".to_string())
            )
        );
        let list = "---\nbase_model:\n- a/b\n- \"c/d\"\ntags: [x]\n---\n";
        assert_eq!(base_models(list).0, vec!["a/b", "c/d"]);
        assert_eq!(base_models("---\nbase_model: [a/b, c/d]\n---").0, vec!["a/b", "c/d"]);
        assert_eq!(base_models("# no front matter\nbase_model: x").0, Vec::<String>::new());
        assert_eq!(
            base_model_notice(inline).unwrap(),
            "made from `meta-llama/Llama-3.1-8B` (finetune; the model card's base_model)"
        );
    }
}
