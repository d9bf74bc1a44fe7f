//! Comparative judgement: a deterministic judge compares pairs of essays (hidden quality plus noise), a
//! Bradley-Terry model is fitted to the outcomes, and the fit gives scores, ranks, grades and confidence.

use crate::essays::hash_unit;

/// One comparison: the winner's and loser's indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// Index of the winner.
    pub winner: usize,
    /// Index of the loser.
    pub loser: usize,
}

/// The judge: P(a beats b) = logistic(k · (quality_a − quality_b)), decided by a hash of (seed, a, b), so the same
/// pair always gets the same verdict.
pub fn judge(seed: u64, qualities: &[f64], a: usize, b: usize, sharpness: f64) -> Comparison {
    let p = 1.0 / (1.0 + (-(sharpness * (qualities[a] - qualities[b]))).exp());
    let u = hash_unit(&[seed, a as u64, b as u64]);
    if u < p {
        Comparison {
            winner: a,
            loser: b,
        }
    } else {
        Comparison {
            winner: b,
            loser: a,
        }
    }
}

/// The pairs to compare: every pair for up to `full_up_to` essays, otherwise each essay against `per_essay`
/// neighbours on a ring with growing strides (every essay gets the same number of comparisons).
pub fn pairs(n: usize, full_up_to: usize, per_essay: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if n <= full_up_to {
        for a in 0..n {
            for b in a + 1..n {
                out.push((a, b));
            }
        }
        return out;
    }
    let strides = (per_essay / 2).max(1);
    for s in 1..=strides.min(n / 2) {
        for a in 0..n {
            let b = (a + s) % n;
            if s * 2 == n && a >= b {
                continue;
            }
            out.push((a, b));
        }
    }
    out
}

/// A fitted essay.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Bradley-Terry log-strength, centred on 0.
    pub bt_score: f64,
    /// Approximate standard error of `bt_score`.
    pub std_error: f64,
    /// Comparisons the essay took part in.
    pub comparisons: usize,
}

/// Fits Bradley-Terry strengths by the MM algorithm (Hunter 2004). Each essay gets one virtual draw (half a win,
/// half a loss) against a reference of strength 1, which keeps the fit finite when an essay wins or loses
/// everything. Returns `None` for fewer than two essays.
pub fn fit(n: usize, comparisons: &[Comparison]) -> Option<Vec<Fitted>> {
    if n < 2 {
        return None;
    }
    let mut wins = vec![0.5f64; n];
    let mut games = vec![vec![0u32; n]; n];
    let mut count = vec![0usize; n];
    for c in comparisons {
        wins[c.winner] += 1.0;
        games[c.winner][c.loser] += 1;
        games[c.loser][c.winner] += 1;
        count[c.winner] += 1;
        count[c.loser] += 1;
    }
    let mut p = vec![1.0f64; n];
    for _ in 0..1000 {
        let mut next = vec![0.0; n];
        for i in 0..n {
            let mut denom = 1.0 / (p[i] + 1.0); // the virtual reference game
            for j in 0..n {
                if games[i][j] > 0 {
                    denom += f64::from(games[i][j]) / (p[i] + p[j]);
                }
            }
            next[i] = wins[i] / denom;
        }
        let gm = (next.iter().map(|x| x.ln()).sum::<f64>() / n as f64).exp();
        let mut change = 0.0f64;
        for i in 0..n {
            let v = next[i] / gm;
            change = change.max((v - p[i]).abs());
            p[i] = v;
        }
        if change < 1e-10 {
            break;
        }
    }
    Some(
        (0..n)
            .map(|i| {
                let mut info = p[i] / (p[i] + 1.0).powi(2);
                for j in 0..n {
                    if games[i][j] > 0 {
                        info += f64::from(games[i][j]) * p[i] * p[j] / (p[i] + p[j]).powi(2);
                    }
                }
                Fitted {
                    bt_score: p[i].ln(),
                    std_error: 1.0 / info.sqrt(),
                    comparisons: count[i],
                }
            })
            .collect(),
    )
}

/// Scores mapped to [0, 1] (min-max).
pub fn normalize(scores: &[f64]) -> Vec<f64> {
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .map(|s| if hi > lo { (s - lo) / (hi - lo) } else { 0.5 })
        .collect()
}

/// The letter grade of a normalised score.
pub fn grade(normalized: f64) -> &'static str {
    match normalized {
        x if x >= 0.9 => "A",
        x if x >= 0.8 => "A-",
        x if x >= 0.7 => "B+",
        x if x >= 0.6 => "B",
        x if x >= 0.5 => "B-",
        x if x >= 0.4 => "C+",
        x if x >= 0.3 => "C",
        x if x >= 0.2 => "D",
        x if x >= 0.1 => "E",
        _ => "F",
    }
}

/// Confidence in [0, 1] from the standard error, and its label.
pub fn confidence(std_error: f64) -> (f64, &'static str) {
    let c = (1.0 / (1.0 + std_error)).clamp(0.0, 1.0);
    let label = if c >= 0.7 {
        "HIGH"
    } else if c >= 0.5 {
        "MID"
    } else {
        "LOW"
    };
    (c, label)
}

/// Ranks (1 = best) by descending score; ties keep index order.
pub fn ranks(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let mut rank = vec![0; scores.len()];
    for (r, i) in order.into_iter().enumerate() {
        rank[i] = r + 1;
    }
    rank
}

/// Kendall's tau-a between two score lists (pairs tied in either count as neither concordant nor discordant).
pub fn kendall_tau(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let a = (x[i] - x[j]).signum() * (y[i] - y[j]).signum();
            if a > 0.0 {
                s += 1;
            } else if a < 0.0 {
                s -= 1;
            }
        }
    }
    Some(s as f64 / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_the_order_of_hidden_qualities() {
        let q: Vec<f64> = (0..16).map(|i| f64::from(i) / 4.0 - 2.0).collect();
        let comps: Vec<Comparison> = pairs(q.len(), 30, 0)
            .into_iter()
            .map(|(a, b)| judge(1, &q, a, b, 1.7))
            .collect();
        let fitted = fit(q.len(), &comps).expect("fit");
        let scores: Vec<f64> = fitted.iter().map(|f| f.bt_score).collect();
        let tau = kendall_tau(&q, &scores).expect("tau");
        assert!(tau > 0.6, "tau {tau}");
        assert!(scores.iter().sum::<f64>().abs() < 1e-6, "centred");
    }

    #[test]
    fn perfect_separation_stays_finite_and_single_essays_do_not_fit() {
        let comps = vec![
            Comparison {
                winner: 0,
                loser: 1
            };
            5
        ];
        let f = fit(2, &comps).expect("fit");
        assert!(f[0].bt_score.is_finite() && f[0].bt_score > f[1].bt_score);
        assert!(fit(1, &[]).is_none());
    }

    #[test]
    fn ring_pairs_give_every_essay_the_same_count() {
        let p = pairs(40, 20, 8);
        let mut count = [0; 40];
        for (a, b) in &p {
            count[*a] += 1;
            count[*b] += 1;
        }
        assert!(count.iter().all(|c| *c == 8), "{count:?}");
        assert_eq!(pairs(4, 20, 8).len(), 6);
    }

    #[test]
    fn helpers() {
        assert_eq!(ranks(&[0.1, 0.9, 0.5]), vec![3, 1, 2]);
        assert_eq!(normalize(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(grade(0.95), "A");
        assert_eq!(grade(0.0), "F");
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(confidence(0.1).1, "HIGH");
    }
}
