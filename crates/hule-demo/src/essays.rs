//! Synthetic essays, generated deterministically from a seed: each has a hidden quality (standard normal) that
//! sets its length and how often its words are misspelt. The judge in [`crate::cj`] sees the quality, the
//! spellchecker sees only the text.

/// The word list the essays are written from and the spellchecker checks against (shipped as `words.txt`).
pub const WORDS: &str = include_str!("words.txt");

/// SplitMix64: a small, fast, deterministic generator (no dependency, same sequence on every platform).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A deterministic hash of a few numbers to [0, 1) (the judge's noise).
pub fn hash_unit(parts: &[u64]) -> f64 {
    let mut r = Rng::new(parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, p| {
        (h ^ p).wrapping_mul(0x0100_0000_01b3)
    }));
    r.next_u64();
    r.unit()
}

/// One generated essay.
#[derive(Debug, Clone, PartialEq)]
pub struct Essay {
    /// `essay-<batch>-<n>`.
    pub id: String,
    /// Hidden quality (standard normal).
    pub quality: f64,
    /// The text.
    pub text: String,
    /// Words misspelt on purpose.
    pub misspelt: usize,
}

/// Misspells a word by one edit (swap, drop, double or replace a letter).
fn misspell(word: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 3 {
        chars.push('x');
        return chars.into_iter().collect();
    }
    let i = 1 + rng.below(chars.len() - 2);
    match rng.below(4) {
        0 => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        2 => chars.insert(i, chars[i]),
        _ => chars[i] = (b'a' + rng.below(26) as u8) as char,
    }
    chars.into_iter().collect()
}

/// Generates the essays of one batch.
pub fn generate_batch(seed: u64, batch: usize, count: usize) -> Vec<Essay> {
    let vocab: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng::new(seed ^ (batch as u64).wrapping_mul(0x9E37_79B9));
    (0..count)
        .map(|n| {
            let quality = rng.normal();
            let words = (160.0 + 60.0 * quality + 40.0 * rng.normal()).clamp(40.0, 420.0) as usize;
            let error_rate = (0.07 - 0.03 * quality).clamp(0.005, 0.2);
            let mut text = String::with_capacity(words * 7);
            let mut misspelt = 0;
            for w in 0..words {
                let word = vocab[rng.below(vocab.len())];
                if w > 0 {
                    text.push(if w % 14 == 13 { '.' } else { ' ' });
                    if w % 14 == 13 {
                        text.push(' ');
                    }
                }
                if rng.unit() < error_rate {
                    text.push_str(&misspell(word, &mut rng));
                    misspelt += 1;
                } else {
                    text.push_str(word);
                }
            }
            text.push('.');
            Essay {
                id: format!("essay-{batch:04}-{n:03}"),
                quality,
                text,
                misspelt,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_quality_shapes_errors() {
        let a = generate_batch(7, 1, 40);
        assert_eq!(a, generate_batch(7, 1, 40));
        assert_ne!(a, generate_batch(8, 1, 40));
        let rate = |e: &Essay| e.misspelt as f64 / e.text.split_whitespace().count() as f64;
        let (mut good, mut bad): (Vec<&Essay>, Vec<&Essay>) =
            a.iter().partition(|e| e.quality > 0.0);
        good.retain(|e| e.quality > 0.5);
        bad.retain(|e| e.quality < -0.5);
        let mean = |v: &[&Essay]| v.iter().map(|e| rate(e)).sum::<f64>() / v.len().max(1) as f64;
        assert!(
            mean(&good) < mean(&bad),
            "better essays have fewer misspellings"
        );
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = Rng::new(1);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let n = (0..10_000).map(|_| r.normal()).sum::<f64>() / 10_000.0;
        assert!(n.abs() < 0.05, "{n}");
    }
}
