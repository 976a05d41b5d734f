//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a thread panicked while holding it: the elements' settings and state
/// stay usable (every field is valid on its own), so one panic does not turn every later
/// property read or buffer into another panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
