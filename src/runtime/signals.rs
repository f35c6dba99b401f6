//! SIGINT and SIGTERM: the first runs a clean stop, a second exits at once.
//!
//! No protocol or file logic here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs `f` on the first SIGINT or SIGTERM, from a thread that sleeps until then; a second
/// signal exits at once with status 130, like most tools.
pub fn on_signal(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let first_seen = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&first_seen))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    super::spawn("signals", move || {
        if signals.forever().next().is_some() {
            first_seen.store(true, Ordering::SeqCst);
            f();
        }
    })
}
