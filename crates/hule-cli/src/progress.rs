//! Progress on stderr with `indicatif`: bars and spinners drawn only when stderr is a terminal (hidden otherwise,
//! so logs and pipes get no control characters), cleared when the work ends.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress is drawn at all.
pub fn drawn() -> bool {
    std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if drawn() {
        ProgressDrawTarget::stderr_with_hz(8)
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar of `len` steps: `replayed [=====>   ] 40/100 12/s 0:00:03`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let pb = ProgressBar::with_draw_target(Some(len), target()).with_style(style);
    pb.set_prefix(what.to_owned());
    pb
}

/// A spinner with a message, ticking by itself.
pub fn spinner(message: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::with_draw_target(None, target()).with_style(style);
    pb.set_message(message.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
