//! What the web page's URL asks for (`?model=gpt2&layout=city&prompt=...`),
//! parsed without the browser (pure, no Bevy) so that it is tested and fuzzed
//! natively: a URL is anyone's link, so unknown keys and bad values are ignored
//! and sizes are capped.

use crate::layout::LayoutKind;

/// The most tokens a link may ask to generate.
pub const MAX_GENERATE: usize = 1024;

/// What the page's URL asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UrlState {
    pub model: Option<String>,
    pub layout: Option<LayoutKind>,
    pub prompt: Option<String>,
    /// Tokens to generate after the prompt (`&generate=20`, at most [`MAX_GENERATE`]).
    pub generate: usize,
    /// A remote engine to connect to (`&engine=ws://127.0.0.1:7878`).
    pub engine: Option<String>,
}

impl UrlState {
    /// Reads a location's search part (`?model=..&layout=..&prompt=..`, the `?`
    /// optional) as the browser's `URLSearchParams` does: form-urlencoded, the
    /// first value of a key wins; unknown keys and bad layouts are ignored.
    pub fn parse(search: &str) -> UrlState {
        let query = search.strip_prefix('?').unwrap_or(search);
        let mut state = UrlState::default();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(key.clone()) {
                continue;
            }
            match key.as_ref() {
                "model" if !value.is_empty() => state.model = Some(value.into_owned()),
                "prompt" if !value.is_empty() => state.prompt = Some(value.into_owned()),
                "engine" if value.starts_with("ws://") || value.starts_with("wss://") => {
                    state.engine = Some(value.into_owned())
                }
                "generate" => state.generate = value.parse::<usize>().map_or(0, |g| g.min(MAX_GENERATE)),
                "layout" => {
                    state.layout = match value.as_ref() {
                        "trunk" => Some(LayoutKind::Trunk),
                        "floors" => Some(LayoutKind::Floors),
                        "city" => Some(LayoutKind::City),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_keys_as_url_search_params_does() {
        let s = UrlState::parse("?model=openai-community%2Fgpt2&layout=city&prompt=ROMEO%3A+But+soft&generate=20&x=1");
        assert_eq!(s.model.as_deref(), Some("openai-community/gpt2"));
        assert_eq!(s.layout, Some(LayoutKind::City));
        assert_eq!(s.prompt.as_deref(), Some("ROMEO: But soft"));
        assert_eq!(s.generate, 20);
        let s = UrlState::parse("model=a&model=b&generate=99999999999999999999999&engine=http://x&layout=spiral");
        assert_eq!(s.model.as_deref(), Some("a"), "the first value wins");
        assert_eq!(s.generate, 0, "an unparsable count is ignored");
        assert_eq!((s.engine, s.layout), (None, None));
        assert_eq!(UrlState::parse("?generate=5000").generate, MAX_GENERATE);
        assert_eq!(
            UrlState::parse("%FF%FE=%80&prompt=%E2%82"),
            UrlState {
                prompt: Some("\u{fffd}".into()),
                ..Default::default()
            }
        );
    }
}
