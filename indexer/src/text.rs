//! The `message` tokenizer: words as tantivy's `default` analyzer splits them, with runs
//! of Hangul (and Han, Hiragana, Katakana) turned into overlapping bigrams.
//!
//! Korean glues particles and endings to nouns (`예약` → `예약을`, `예약했습니다`), so whole
//! words never match the noun alone. Bigrams do: `예약을` is indexed as `예약`, `약을`, and
//! the noun `예약` is one of them. This is what Elasticsearch's `standard` tokenizer with
//! the `cjk_width`, `lowercase` and `cjk_bigram` filters produces (Lucene's
//! CJKBigramFilter), which the Elasticsearch backend installs under [`ES_ANALYZER`], so
//! both backends index the same terms at the same positions and answer the same queries.
//!
//! How a word is cut follows Lucene's StandardTokenizer (UAX#29) for the common cases:
//! - a run of Hangul alone is one token, bigrammed;
//! - Hangul glued to Latin letters or digits (`3건`, `API호출`) is one ordinary token,
//!   not bigrammed (UAX#29 joins letters and digits of any alphabetic script);
//! - each Han or Hiragana character and each Katakana run is cut off from its
//!   neighbours; adjacent ones (and an adjacent pure Hangul run) are bigrammed together;
//! - a lone CJK character stays a unigram.
//!
//! Everything else is as the `default` analyzer did: words are runs of alphanumeric
//! characters, lowercased, and a token of 40 bytes or more is dropped (its position is
//! kept, so phrases do not jump over it).
//!
//! The tokenizer works on tantivy's `Token`, so it needs the `tantivy` feature; the names
//! and [`quote_cjk_terms`] (the Elasticsearch query side) do not.

#[cfg(feature = "tantivy")]
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name the tokenizer is registered under on every tantivy index.
pub const TOKENIZER_NAME: &str = "tix_message";
/// Name of the equivalent analyzer in the Elasticsearch index template.
pub const ES_ANALYZER: &str = "tix_message";
/// Registers the `message` tokenizer on `index`: needed on every opened index, writing or
/// reading, since tantivy keeps tokenizers out of the index files.
#[cfg(feature = "tantivy")]
pub fn register(index: &tantivy::Index) {
    index.tokenizers().register(TOKENIZER_NAME, MessageTokenizer::default());
}

/// Tokens this long (bytes) or longer are dropped, as by tantivy's `default` analyzer.
pub const MAX_TOKEN_BYTES: usize = 40;

/// The tokenizer of `message`. It keeps its token buffers between documents, so
/// indexing allocates only when a document has more or longer tokens than any before.
#[cfg(feature = "tantivy")]
#[derive(Clone, Default)]
pub struct MessageTokenizer {
    tokens: Vec<Token>,
    len: usize,
}

/// The tokens of one text, handed out one by one.
#[cfg(feature = "tantivy")]
pub struct MessageTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

#[cfg(feature = "tantivy")]
impl Tokenizer for MessageTokenizer {
    type TokenStream<'a> = MessageTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MessageTokenStream<'a> {
        self.len = 0;
        let mut sink = Sink { tokens: &mut self.tokens, len: &mut self.len, position: 0 };
        tokenize(text, &mut sink);
        MessageTokenStream { tokens: &mut self.tokens[..self.len], next: 0 }
    }
}

#[cfg(feature = "tantivy")]
impl TokenStream for MessageTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next.saturating_sub(1)]
    }
}

/// The tokens of `text` as (text, position) pairs: for tests and diagnostics.
#[cfg(feature = "tantivy")]
pub fn tokens(text: &str) -> Vec<(String, usize)> {
    let mut tokenizer = MessageTokenizer::default();
    let mut stream = tokenizer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push((stream.token().text.clone(), stream.token().position));
    }
    out
}

/// The token texts of `text`, in order.
#[cfg(feature = "tantivy")]
pub fn token_texts(text: &str) -> Vec<String> {
    tokens(text).into_iter().map(|(t, _)| t).collect()
}

/// Whether a character is one `cjk_bigram` pairs up (Hangul, Han, Hiragana, Katakana).
pub fn is_cjk(c: char) -> bool {
    script(c) != Script::Other
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Han,
    Hiragana,
    Katakana,
    Hangul,
    Other,
}

/// The script classes Lucene's StandardTokenizer gives its own token types. Ranges are
/// the alphanumeric blocks of each script (the tokenizer only sees alphanumerics).
fn script(c: char) -> Script {
    match c {
        '\u{1100}'..='\u{11FF}'
        | '\u{3131}'..='\u{318E}'
        | '\u{A960}'..='\u{A97F}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{D7B0}'..='\u{D7FF}'
        | '\u{FFA0}'..='\u{FFDC}' => Script::Hangul,
        '\u{3041}'..='\u{309F}' | '\u{1B001}'..='\u{1B11F}' => Script::Hiragana,
        '\u{30A0}'..='\u{30FF}'
        | '\u{31F0}'..='\u{31FF}'
        | '\u{32D0}'..='\u{32FE}'
        | '\u{3300}'..='\u{3357}'
        | '\u{FF66}'..='\u{FF9F}'
        | '\u{1B000}' => Script::Katakana,
        '\u{2E80}'..='\u{2FDF}'
        | '\u{3005}'
        | '\u{3007}'
        | '\u{3021}'..='\u{3029}'
        | '\u{3038}'..='\u{303B}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{323AF}' => Script::Han,
        _ => Script::Other,
    }
}

/// Writes tokens into reused buffers, numbering positions.
#[cfg(feature = "tantivy")]
struct Sink<'a> {
    tokens: &'a mut Vec<Token>,
    len: &'a mut usize,
    position: usize,
}

#[cfg(feature = "tantivy")]
impl Sink<'_> {
    /// Emits `text[from..to]` folded (`cjk_width`) and lowercased, unless too long; the
    /// position advances either way.
    fn push(&mut self, text: &str, from: usize, to: usize) {
        let position = self.position;
        self.position += 1;
        let word = &text[from..to];
        if *self.len == self.tokens.len() {
            self.tokens.push(Token::default());
        }
        let token = &mut self.tokens[*self.len];
        token.text.clear();
        if word.is_ascii() {
            token.text.push_str(word);
            token.text.make_ascii_lowercase();
        } else {
            for c in word.chars() {
                token.text.extend(fold_width(c).to_lowercase());
            }
        }
        if token.text.len() >= MAX_TOKEN_BYTES {
            return;
        }
        token.offset_from = from;
        token.offset_to = to;
        token.position = position;
        token.position_length = 1;
        *self.len += 1;
    }
}

/// `cjk_width` for full-width ASCII variants (`Ｐａｙ` → `Pay`). Half-width Katakana is
/// left as written (see the README's list of differences).
#[cfg(feature = "tantivy")]
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

#[cfg(feature = "tantivy")]
fn tokenize(text: &str, sink: &mut Sink<'_>) {
    let mut word_start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), word_start) {
            (true, None) => word_start = Some(i),
            (false, Some(start)) => {
                word(text, start, i, sink);
                word_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = word_start {
        word(text, start, text.len(), sink);
    }
}

/// Cuts one alphanumeric run as StandardTokenizer does and bigrams its CJK parts.
#[cfg(feature = "tantivy")]
fn word(text: &str, start: usize, end: usize, sink: &mut Sink<'_>) {
    let word = &text[start..end];
    // Fast path: no CJK at all is one plain token, as before.
    if !word.chars().any(is_cjk) {
        sink.push(text, start, end);
        return;
    }
    // Segments as StandardTokenizer emits them: (start, end, bigrammed?).
    let mut cjk_run: Option<usize> = None; // start of the current run of CJK segments
    let mut chars = word.char_indices().map(|(i, c)| (start + i, c)).peekable();
    while let Some((at, c)) = chars.next() {
        let kind = script(c);
        let mut seg_end = at + c.len_utf8();
        let is_cjk_segment = match kind {
            Script::Han | Script::Hiragana => true,
            Script::Katakana => {
                while let Some(&(next_at, next)) = chars.peek() {
                    if script(next) != Script::Katakana {
                        break;
                    }
                    seg_end = next_at + next.len_utf8();
                    chars.next();
                }
                true
            }
            Script::Hangul | Script::Other => {
                // Letters and digits of any alphabetic script join (UAX#29 WB5, WB9,
                // WB10); the segment is Korean only if it is Hangul throughout.
                let mut all_hangul = kind == Script::Hangul;
                while let Some(&(next_at, next)) = chars.peek() {
                    let next_kind = script(next);
                    if !matches!(next_kind, Script::Hangul | Script::Other) {
                        break;
                    }
                    all_hangul &= next_kind == Script::Hangul;
                    seg_end = next_at + next.len_utf8();
                    chars.next();
                }
                all_hangul
            }
        };
        if is_cjk_segment {
            cjk_run.get_or_insert(at);
        } else {
            if let Some(run_start) = cjk_run.take() {
                bigrams(text, run_start, at, sink);
            }
            sink.push(text, at, seg_end);
        }
    }
    if let Some(run_start) = cjk_run {
        bigrams(text, run_start, end, sink);
    }
}

/// Overlapping bigrams of a CJK run with consecutive positions; one character alone is
/// a unigram (CJKBigramFilter's defaults: no unigrams beside bigrams).
#[cfg(feature = "tantivy")]
fn bigrams(text: &str, start: usize, end: usize, sink: &mut Sink<'_>) {
    let run = &text[start..end];
    let mut bounds = run.char_indices().map(|(i, _)| start + i).chain(std::iter::once(end));
    let Some(mut first) = bounds.next() else { return };
    let Some(mut second) = bounds.next() else { return };
    match bounds.next() {
        None => sink.push(text, first, second),
        Some(mut third) => loop {
            sink.push(text, first, third);
            match bounds.next() {
                Some(next) => {
                    first = second;
                    second = third;
                    third = next;
                }
                None => break,
            }
        },
    }
}

/// Puts double quotes around every bare query term that holds CJK text and searches
/// `message` (no field, or `message:`), so Elasticsearch's `query_string` asks for the
/// term's bigrams as a phrase, as tantivy's query parser does on its own. Quoted
/// phrases, ranges, other fields, and terms with wildcard, fuzzy, boost, regex or escape
/// syntax are left as written; a query without CJK comes back unchanged.
pub fn quote_cjk_terms(query: &str) -> std::borrow::Cow<'_, str> {
    if !query.chars().any(is_cjk) {
        return std::borrow::Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len() + 8);
    let mut rest = query;
    while let Some(c) = rest.chars().next() {
        let taken = match c {
            '"' => quoted_len(rest),
            '[' | '{' => rest.find([']', '}']).map_or(rest.len(), |i| i + 1),
            '\\' => rest.chars().take(2).map(char::len_utf8).sum(),
            c if c.is_whitespace() || c == '(' || c == ')' => c.len_utf8(),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"' | '[' | '{'))
                    .unwrap_or(rest.len());
                push_term(&rest[..len], &mut out);
                rest = &rest[len..];
                continue;
            }
        };
        out.push_str(&rest[..taken]);
        rest = &rest[taken..];
    }
    std::borrow::Cow::Owned(out)
}

/// Length of the quoted phrase at the start of `text` (to its unescaped closing quote,
/// or to the end if it is never closed: the engine reports that error itself).
fn quoted_len(text: &str) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return i + 1,
            _ => escaped = false,
        }
    }
    text.len()
}

fn push_term(term: &str, out: &mut String) {
    let body = term.trim_start_matches(['+', '-', '!']);
    let (prefix, body) = term.split_at(term.len() - body.len());
    let (field, value) = match body.split_once(':') {
        Some((field, value)) => (Some(field), value),
        None => (None, body),
    };
    let searches_message = field.is_none_or(|f| f == crate::schema::MESSAGE);
    let plain = !value.contains(['*', '?', '~', '^', '\\', '/', ':']);
    if searches_message && plain && value.chars().any(is_cjk) {
        out.push_str(prefix);
        if let Some(field) = field {
            out.push_str(field);
            out.push(':');
        }
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(term);
    }
}

// The cases name tokens, which only the tantivy tokenizer produces.
#[cfg(all(test, feature = "tantivy"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(text: &str) -> Vec<String> {
        token_texts(text)
    }

    #[test]
    fn hangul_runs_become_overlapping_bigrams_with_consecutive_positions() {
        assert_eq!(
            tokens("고객이 예약을 취소했습니다"),
            [
                ("고객", 0),
                ("객이", 1),
                ("예약", 2),
                ("약을", 3),
                ("취소", 4),
                ("소했", 5),
                ("했습", 6),
                ("습니", 7),
                ("니다", 8)
            ]
            .map(|(t, p)| (t.to_string(), p))
        );
    }

    #[test]
    fn the_table_of_cuts() {
        let cases: &[(&str, &[&str])] = &[
            // A one-syllable word stays a unigram; two syllables are one bigram.
            ("약", &["약"]),
            ("예약", &["예약"]),
            ("예약 요청", &["예약", "요청"]),
            // Latin text as the default analyzer: split on non-alphanumerics, lowercased.
            ("Payment FAILED for BK-20240205-000101", &["payment", "failed", "for", "bk", "20240205", "000101"]),
            // Hangul glued to digits or Latin letters is one token (UAX#29), not bigrammed.
            ("3건 API호출", &["3건", "api호출"]),
            (
                "BK-20240205-000101 예약이 확정되었습니다",
                &["bk", "20240205", "000101", "예약", "약이", "확정", "정되", "되었", "었습", "습니", "니다"],
            ),
            // Han and Hiragana characters are cut apart, and adjacent CJK is bigrammed together.
            ("東京abc", &["東京", "abc"]),
            ("예약漢字", &["예약", "약漢", "漢字"]),
            // Full-width Latin folds to ASCII before lowercasing.
            ("ＰＡＹ", &["pay"]),
            // Punctuation between Hangul breaks the run.
            ("예약,취소", &["예약", "취소"]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(texts(text), expected.to_vec(), "{text:?}");
        }
    }

    #[test]
    fn bare_cjk_terms_are_quoted_for_query_string_and_nothing_else_is() {
        let cases = [
            ("예약을", "\"예약을\""),
            ("취소 AND 예약", "\"취소\" AND \"예약\""),
            ("message:예약을", "message:\"예약을\""),
            ("-예약을 (결제 OR 좌석)", "-\"예약을\" (\"결제\" OR \"좌석\")"),
            ("\"예약 요청\"", "\"예약 요청\""),
            ("venue:서울아레나 AND 예약", "venue:서울아레나 AND \"예약\""),
            ("venue:\"서울 아레나\"", "venue:\"서울 아레나\""),
            ("예약* OR 예약~1 OR 예약^2", "예약* OR 예약~1 OR 예약^2"),
            ("venue:[가 TO 나]", "venue:[가 TO 나]"),
            ("Payment AND type:booking.cancelled", "Payment AND type:booking.cancelled"),
            ("\"unclosed 예약", "\"unclosed 예약"),
        ];
        for (query, expected) in cases {
            assert_eq!(quote_cjk_terms(query), expected, "{query:?}");
        }
    }

    #[test]
    fn long_tokens_are_dropped_but_keep_their_position() {
        let long = "x".repeat(MAX_TOKEN_BYTES);
        let out = tokens(&format!("a {long} b"));
        assert_eq!(out, [("a".to_string(), 0), ("b".to_string(), 2)]);
        // A long Hangul run is not dropped: its bigrams are short.
        let run = "가".repeat(30);
        assert_eq!(texts(&run).len(), 29);
    }

    #[test]
    fn the_stream_reuses_its_buffers_across_texts() {
        let mut tokenizer = MessageTokenizer::default();
        let mut first = Vec::new();
        let mut stream = tokenizer.token_stream("예약을 취소 many words here");
        while stream.advance() {
            first.push(stream.token().text.clone());
        }
        let mut second = Vec::new();
        let mut stream = tokenizer.token_stream("결제");
        while stream.advance() {
            second.push(stream.token().text.clone());
        }
        assert_eq!(second, ["결제"], "no token of the previous text leaks");
        assert_eq!(first.len(), 6);
    }

    proptest! {
        #[test]
        fn any_text_gives_lowercase_tokens_in_increasing_positions(
            text in "[가-힣a-zA-Z0-9 .,!ㄱ-ㅎ東京あいカタＡ-Ｚ_-]{0,60}"
        ) {
            let out = tokens(&text);
            let mut last: Option<usize> = None;
            for (token, position) in &out {
                prop_assert!(!token.is_empty());
                prop_assert_eq!(token.to_lowercase(), token.clone());
                prop_assert!(last.is_none_or(|l| *position > l), "{:?}", out);
                last = Some(*position);
                let cjk = token.chars().filter(|c| is_cjk(*c)).count();
                if token.chars().all(is_cjk) {
                    prop_assert!(cjk <= 2, "{:?}", token);
                }
                prop_assert!(token.len() < MAX_TOKEN_BYTES);
            }
        }

        #[test]
        fn every_token_is_a_lowercased_piece_of_the_text(text in "\\PC{0,40}") {
            let mut tokenizer = MessageTokenizer::default();
            let mut stream = tokenizer.token_stream(&text);
            while stream.advance() {
                let token = stream.token();
                prop_assert!(text.is_char_boundary(token.offset_from) && text.is_char_boundary(token.offset_to));
                let piece: String = text[token.offset_from..token.offset_to]
                    .chars()
                    .flat_map(|c| fold_width(c).to_lowercase())
                    .collect();
                prop_assert_eq!(&piece, &token.text);
            }
        }
    }
}
