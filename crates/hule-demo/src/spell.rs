//! The spellchecker: words missing from the shipped word list are corrected to a dictionary word one edit away
//! (deletion, transposition, replacement or insertion), as Norvig's corrector does.

use crate::essays::WORDS;

/// The dictionary's set: foldhash rather than SipHash, as the corrector looks up some 450 candidates for each unknown
/// word (the demo's words are the service's own list, not an attacker's keys).
type WordSet = foldhash::HashSet<String>;

/// The outcome of checking one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The corrected text.
    pub corrected: String,
    /// Words corrected.
    pub corrections: usize,
    /// Unknown words with no candidate one edit away (left as written).
    pub unknown: usize,
    /// Words checked.
    pub words: usize,
}

/// A dictionary.
#[derive(Debug, Clone)]
pub struct SpellChecker {
    words: WordSet,
}

impl Default for SpellChecker {
    fn default() -> Self {
        SpellChecker {
            words: WORDS.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

impl SpellChecker {
    /// The best correction of `word`, if it is unknown and one edit from a known word: the shortest candidate, then
    /// the first in alphabetical order. Each candidate is written into one reused buffer and looked up there; only
    /// a candidate better than the best so far is copied (`perf` of `hule demo`: the corrector building a string
    /// for every candidate was the largest of the pipeline's own functions).
    pub fn correct(&self, word: &str) -> Option<String> {
        if self.words.contains(word) {
            return None;
        }
        let chars: Vec<char> = word.chars().collect();
        let mut best: Option<String> = None;
        let mut buf = String::with_capacity(word.len() + 4);
        let mut consider = |parts: &[&[char]], middle: Option<char>, parts_after: &[char]| {
            buf.clear();
            for part in parts {
                buf.extend(part.iter());
            }
            buf.extend(middle);
            buf.extend(parts_after.iter());
            let better = match &best {
                None => true,
                Some(b) => (buf.len(), buf.as_str()) < (b.len(), b.as_str()),
            };
            if better && self.words.contains(buf.as_str()) {
                best = Some(buf.clone());
            }
        };
        for i in 0..=chars.len() {
            let (head, tail) = chars.split_at(i);
            if let Some((_, rest)) = tail.split_first() {
                // Deletion of the i-th letter.
                consider(&[head], None, rest);
                // Replacement of the i-th letter.
                for c in 'a'..='z' {
                    consider(&[head], Some(c), rest);
                }
            }
            if i + 1 < chars.len() {
                // Transposition of the i-th and next letters.
                let swapped = [chars[i + 1], chars[i]];
                consider(&[head, &swapped], None, &chars[i + 2..]);
            }
            // Insertion before the i-th letter.
            for c in 'a'..='z' {
                consider(&[head], Some(c), tail);
            }
        }
        best
    }

    /// Checks a text: words are separated by spaces and may end in `.`.
    pub fn check(&self, text: &str) -> Checked {
        let mut out = String::with_capacity(text.len());
        let (mut corrections, mut unknown, mut words) = (0, 0, 0);
        for (i, token) in text.split(' ').enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let (word, tail) = match token.strip_suffix('.') {
                Some(w) => (w, "."),
                None => (token, ""),
            };
            if word.is_empty() {
                out.push_str(token);
                continue;
            }
            words += 1;
            match self.correct(word) {
                Some(fixed) => {
                    corrections += 1;
                    out.push_str(&fixed);
                }
                None => {
                    if !self.words.contains(word) {
                        unknown += 1;
                    }
                    out.push_str(word);
                }
            }
            out.push_str(tail);
        }
        Checked {
            corrected: out,
            corrections,
            unknown,
            words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::essays::generate_batch;

    #[test]
    fn corrects_one_edit_mistakes() {
        let s = SpellChecker::default();
        assert_eq!(s.correct("essya").as_deref(), Some("essay"));
        assert_eq!(s.correct("studnet").as_deref(), Some("student"));
        assert_eq!(s.correct("essay"), None);
        let c = s.check("the studnet made an essya. good");
        assert_eq!(c.corrected, "the student made an essay. good");
        assert_eq!((c.corrections, c.words), (2, 6));
    }

    /// Every word one edit from `word` (deletion, transposition, replacement or insertion of one of `letters`), each
    /// built as its own string.
    fn one_edit_from(word: &str, letters: &[char]) -> Vec<String> {
        let chars: Vec<char> = word.chars().collect();
        let mut edits: Vec<String> = Vec::new();
        for i in 0..=chars.len() {
            if i < chars.len() {
                let mut d = chars.clone();
                d.remove(i);
                edits.push(d.iter().collect());
            }
            if i + 1 < chars.len() {
                let mut t = chars.clone();
                t.swap(i, i + 1);
                edits.push(t.iter().collect());
            }
            for &c in letters {
                if i < chars.len() {
                    let mut r = chars.clone();
                    r[i] = c;
                    edits.push(r.iter().collect());
                }
                let mut ins = chars.clone();
                ins.insert(i, c);
                edits.push(ins.iter().collect());
            }
        }
        edits
    }

    /// Norvig's corrector as written first: every candidate built as its own string, then the best kept.
    fn correct_by_listing(s: &SpellChecker, word: &str) -> Option<String> {
        if s.words.contains(word) {
            return None;
        }
        let letters: Vec<char> = ('a'..='z').collect();
        one_edit_from(word, &letters)
            .into_iter()
            .filter(|c| s.words.contains(c))
            .min_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)))
    }

    #[test]
    fn corrects_as_listing_every_candidate_does() {
        let s = SpellChecker::default();
        let essays = generate_batch(7, 0, 24);
        let mut words: Vec<&str> = essays
            .iter()
            .flat_map(|e| e.text.split(' '))
            .map(|w| w.trim_end_matches('.'))
            .collect();
        words.extend([
            "", "a", "é", "naïve", "xq", "studnet", "essya", "zzzzzzzz", "Essay", "ESSAY",
        ]);
        // Every one-edit variant of every tenth dictionary word, first and last letters too (the generated
        // misspellings never touch those), and with letters outside a–z.
        let variants: Vec<String> = WORDS
            .split_whitespace()
            .step_by(10)
            .flat_map(|w| one_edit_from(w, &['a', 'e', 's', 'z', 'é', 'X']))
            .collect();
        words.extend(variants.iter().map(String::as_str));
        let mut corrected = 0;
        for w in words {
            let fast = s.correct(w);
            corrected += usize::from(fast.is_some());
            assert_eq!(fast, correct_by_listing(&s, w), "{w:?}");
        }
        assert!(
            corrected > 1_000,
            "only {corrected} words corrected: the comparison saw too few corrections"
        );
    }

    #[test]
    fn finds_most_generated_misspellings() {
        let s = SpellChecker::default();
        let essays = generate_batch(3, 0, 20);
        let planted: usize = essays.iter().map(|e| e.misspelt).sum();
        let found: usize = essays
            .iter()
            .map(|e| {
                let c = s.check(&e.text);
                c.corrections + c.unknown
            })
            .sum();
        // A misspelling can land on another dictionary word; nearly all are found.
        assert!(found as f64 >= planted as f64 * 0.8, "{found} of {planted}");
    }
}
